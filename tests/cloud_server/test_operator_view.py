"""What an operator reads: the round line, the held-out score that picks the best round, the edges by
name and only the live ones, the trend in ``fedvst status``, and the dashboard's HTTP contract."""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest
import torch

from cloud_server.dashboard import Dashboard
from cloud_server.history import append_round, history_path, read_history
from cloud_server.readiness import EdgeState, Poll, poll_from_replies, waiting_line
from cloud_server.status import status_path, write_status
from cloud_server.store import CheckpointStore
from cloud_server.strategy import RoundLog, round_line
from edge_client.server import check_edge_name, default_edge_name
from fedvst.cloud_status import trend_line
from fedvst.grpc_noise import explain


def test_the_round_line_names_the_edges_their_images_the_score_the_checkpoint_and_the_gap():
    entry = RoundLog(3, nodes=[12, 34], examples={"12": 64, "34": 60}, names={"12": "paris:8500", "34": "lyon:8500"},
                     metrics={"heldout_total": 0.1234, "eval_total": 0.5}, counted=True,
                     checkpoint="round_000003.safetensors", finished_unix=1000.0, moved_max=3.1e-4, moved_rms=2e-6)
    line = round_line(entry, initial_score=0.13, previous_unix=959.0)
    assert line == ("round 3 counted: paris:8500 (node 12) trained on 64 images, lyon:8500 (node 34) on 60; "
                    "held-out total 0.1234 (round 0: 0.13); model moved by at most 3.10e-04 (RMS 2.00e-06); "
                    "checkpoint round_000003.safetensors; 41 s after round 2")
    unscored = round_line(RoundLog(1, nodes=[5], examples={"5": 8}, counted=True, moved_max=0.0, moved_rms=0.0),
                          initial_score=None, previous_unix=None)
    assert unscored == ("round 1 counted: node 5 trained on 8 images; no held-out score; MODEL UNCHANGED: this "
                        "round changed no learned value; checkpoint (none)")


def test_model_movement_is_the_largest_and_rms_change_of_every_learned_value():
    import numpy as np
    from flwr.app import Array, ArrayRecord

    from cloud_server.strategy import model_movement

    before = ArrayRecord({"a": Array(np.zeros((2, 2), np.float32)), "b": Array(np.ones(4, np.float32))})
    after = ArrayRecord({"a": Array(np.array([[0, 0.5], [0, 0]], np.float32)), "b": Array(np.ones(4, np.float32))})
    largest, rms = model_movement(before, after)
    assert largest == 0.5 and abs(rms - (0.25 / 8) ** 0.5) < 1e-12
    assert model_movement(before, before) == (0.0, 0.0)


def test_the_best_round_is_picked_on_the_held_out_score_not_the_edges_own_frames(tmp_path):
    store = CheckpointStore(tmp_path, keep=1)
    # the case from the field: round 1 looked best on the edges' own (changing) frames, round 2 was better
    store.save(1, {"w": torch.ones(2)}, {"metrics": {"eval_total": 0.111, "heldout_total": 0.30}})
    store.save(2, {"w": torch.ones(2)}, {"metrics": {"eval_total": 0.226, "heldout_total": 0.20}})
    store.save(3, {"w": torch.ones(2)}, {"metrics": {"eval_total": 0.05}})  # not scored: cannot be best
    assert store.best_round() == 2
    assert store.rounds() == [2, 3]  # keep 1: the newest and the best; round 1 went
    old = CheckpointStore(tmp_path / "old")  # a store from before held-out scores keeps its old rule
    old.save(1, {"w": torch.ones(2)}, {"metrics": {"eval_total": 0.3}})
    old.save(2, {"w": torch.ones(2)}, {"metrics": {"eval_total": 0.2}})
    assert old.best_round() == 2


def test_history_reads_the_last_record_of_each_round_and_skips_a_line_cut_by_a_crash(tmp_path):
    path = history_path(tmp_path)
    append_round(path, {"round": 0, "metrics": {"heldout_total": 0.2}})
    append_round(path, {"round": 1, "metrics": {"heldout_total": 0.19}})
    append_round(path, {"round": 1, "metrics": {"heldout_total": 0.18}})  # re-run after a crash
    with path.open("a") as handle:
        handle.write('{"round": 2, "metr')
    assert [(r["round"], r["metrics"]["heldout_total"]) for r in read_history(path)] == [(0, 0.2), (1, 0.18)]
    assert read_history(tmp_path / "none.jsonl") == []


@dataclass
class _Reply:
    src: int
    ready: bool | None  # None: an error reply

    @property
    def metadata(self):
        return type("M", (), {"src_node_id": self.src})()

    def has_error(self) -> bool:
        return self.ready is None

    @property
    def error(self):
        return type("E", (), {"reason": "Error: Node Unavailable"})()

    @property
    def content(self):
        from flwr.app import ConfigRecord, MetricRecord, RecordDict

        return RecordDict({"metrics": MetricRecord({"ready": int(bool(self.ready)), "new-images": 3, "trained": -1,
                                                    "serving-round": 2}),
                           "config": ConfigRecord({"reason": f"edge-{self.src} has 3 of 8 new images",
                                                   "name": f"edge-{self.src}"})})


def test_only_edges_that_answer_are_counted_and_named():
    # the SuperLink still lists node 9 (killed without signing off), which answers with an error, and
    # node 7, which does not answer at all
    poll = poll_from_replies([5, 7, 9], [_Reply(5, False), _Reply(9, None)])
    assert [(e.node, e.name, e.serving_round, e.trained) for e in poll.live] == [(5, "edge-5", 2, None)]
    assert poll.silent == [7, 9]
    line = waiting_line(poll, 2)
    assert line.startswith("waiting: 0 of 1 edges ready, 2 needed (edge-5 has 3 of 8 new images)")
    assert "2 listed nodes did not answer and are not counted (7, 9)" in line
    assert waiting_line(Poll([], []), 1) == "waiting: no edge connected (1 must be ready)"


def test_edge_names_default_to_host_and_port_and_odd_names_are_refused():
    assert default_edge_name("10.0.0.7", 8500) == "10.0.0.7:8500"
    assert default_edge_name("0.0.0.0", 8500).endswith(":8500") and not default_edge_name("0.0.0.0", 1).startswith("0")
    assert default_edge_name("::1", 8500) == "[::1]:8500"
    assert check_edge_name("edge-paris_1.x") == "edge-paris_1.x"
    for bad in ("", "two words", "quote'd", "-lead", "x" * 81):
        with pytest.raises(ValueError, match="--name"):
            check_edge_name(bad)


def test_status_shows_the_held_out_trend_after_round_0():
    rounds = [{"round": r, "heldout_total": 0.2 - r / 100} for r in range(12)]
    line = trend_line(rounds, 11, shown=4)
    assert line == "held-out total by round: 0: 0.2 → 9: 0.11 → 10: 0.1 → 11: 0.09 (best: round 11)"
    assert trend_line([{"round": 1, "heldout_total": None}], None) == ""


def test_grpc_handshake_failures_read_as_one_line_with_the_cause():
    raw = ("I1202 15:43:56.176868    4445 ssl_transport_security.cc:2563] Handshake failed with error SSL_ERROR_SSL: "
           "error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER: Invalid certificate verification "
           "context")
    said = explain(raw, "edge paris:8500", "fedvst stylize --edge-ca")
    assert said == ("edge paris:8500: TLS handshake refused: a client spoke plain text to this TLS port: give it the "
                    "CA certificate (fedvst stylize --edge-ca)")
    assert explain("I1202 something else entirely", "edge", "--ca") is None


def test_a_plaintext_client_leaves_one_clear_line_in_a_tls_servers_output(tmp_path):
    """A real TLS gRPC server behind the filter, called without TLS: its standard error has our line,
    not OpenSSL's."""
    subprocess.run([sys.executable, "-m", "cloud_server.make_certs", "--out", str(tmp_path), "--hosts", "127.0.0.1"],
                   check=True, capture_output=True, timeout=120)
    script = f"""
from fedvst.grpc_noise import watch_handshakes
noise = watch_handshakes("edge test:1", "fedvst stylize --edge-ca")  # first, as in fedvst edge serve
import flwr.app
import grpc, sys, time
from concurrent import futures
from pathlib import Path
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
server = grpc.server(futures.ThreadPoolExecutor(2))
health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
d = Path({str(tmp_path)!r})
port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials(
    [((d / "server.key").read_bytes(), (d / "server.crt").read_bytes())]))
server.start()
channel = grpc.insecure_channel(f"127.0.0.1:{{port}}")
try:
    health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
except grpc.RpcError:
    pass
time.sleep(1)
server.stop(0)
print("still writes to stderr", file=sys.stderr)
noise.stop()
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "GRPC_VERBOSITY": "error"})  # what Flower sets
    assert result.returncode == 0, result.stderr
    assert "edge test:1: TLS handshake refused: a client spoke plain text to this TLS port" in result.stderr
    assert "WRONG_VERSION_NUMBER" not in result.stderr and "SSL_ERROR_SSL" not in result.stderr
    assert "still writes to stderr" in result.stderr
    assert not [line for line in result.stderr.splitlines() if line[:2] in ("I1", "W1")]  # gRPC core's own


def _get(url: str, headers: dict | None = None, method: str = "GET") -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_the_dashboard_serves_state_and_chart_read_only_and_only_with_the_token(tmp_path):
    for number, score, moved in ((0, 0.17, None), (1, 0.16, 3.5e-4), (2, 0.155, 0.0)):
        append_round(history_path(tmp_path), {"round": number, "metrics": {"heldout_total": score},
                                              "names": {"5": "paris:8500"}, "examples": {"5": 8},
                                              "checkpoint": f"round_{number:06d}.safetensors",
                                              "finished_unix": time.time(), "moved_max": moved,
                                              "moved_rms": None if moved is None else moved / 10})
    write_status(status_path(tmp_path), "waiting", 3, 2, "waiting: 1 of 1 edges ready, 2 needed ()",
                 [EdgeState(5, True, "ready", name="paris:8500", trained=8, serving_round=2, last_seen=time.time())])
    before = sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.iterdir())
    dashboard = Dashboard(tmp_path, "127.0.0.1:0", token="s3cret-token-0123456789", heldout="test pictures")
    dashboard.start()
    try:
        base = dashboard.url
        for path in ("", "state.json", "chart.svg"):
            status, body = _get(base + path)
            assert status == 401 and b"token" in body, path
            assert _get(base + path, {"Authorization": "Bearer wrong"})[0] == 401
        status, body = _get(base + "state.json", {"Authorization": "Bearer s3cret-token-0123456789"})
        state = json.loads(body)
        assert status == 200 and [r["round"] for r in state["rounds"]] == [0, 1, 2]
        assert state["rounds"][2]["edges"] == {"paris:8500": 8} and state["heldout"] == "test pictures"
        assert [(e["name"], e["node"]) for e in state["federation"]["edges"]] == [("paris:8500", "5")]
        status, svg = _get(base + "chart.svg?token=s3cret-token-0123456789")
        assert status == 200 and all(f'id="round-{n}"'.encode() in svg for n in range(3))
        assert [(r["round"], r["moved_max"]) for r in state["rounds"]] == [(0, None), (1, 3.5e-4), (2, 0.0)]
        status, page = _get(base + "?token=s3cret-token-0123456789")
        assert status == 200  # the page carries its first state and chart: a screenshot at load shows data
        inline = page.split(b'id="initial-state">', 1)[1].split(b"</script>", 1)[0]
        assert [r["round"] for r in json.loads(inline)["rounds"]] == [0, 1, 2]
        assert b'id="round-2"' in page.split(b'<div id="chart">', 1)[1].split(b"</div>", 1)[0]
        assert _get(base + "state.json?token=s3cret-token-0123456789", method="POST")[0] == 405
        assert _get(base + "state.json", {"Authorization": "Bearer s3cret-token-0123456789"}, "DELETE")[0] == 405
        assert _get(base + "dashboard.js")[0] == 200  # code only: the page's own script needs no token
        assert sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.iterdir()) == before  # read-only
    finally:
        dashboard.stop()
    with pytest.raises(ValueError, match="HOST:PORT"):
        Dashboard(tmp_path, "8090")
    with pytest.raises(ValueError, match="1–65535"):
        Dashboard(tmp_path, "127.0.0.1:99999")


def test_the_chart_starts_at_round_0_whatever_rounds_it_holds():
    from cloud_server.dashboard import chart_figure

    for rounds in ([{"round": 0, "heldout_total": 5.0}], [{"round": 0, "heldout_total": 5.0},
                                                          {"round": 1, "heldout_total": 4.0}], []):
        left, right = chart_figure(rounds).axes[0].get_xlim()
        assert left == 0 and right >= 1, rounds
        assert all(tick >= 0 for tick in chart_figure(rounds).axes[0].get_xticks()), rounds


def test_the_dashboard_drops_a_silent_client_and_keeps_serving(tmp_path, caplog):
    """A connection that sends nothing, or half a request, is closed after CLIENT_TIMEOUT_S (not held for
    good), a client that hangs up early leaves no traceback, and the page still answers."""
    import logging
    import socket

    from cloud_server.dashboard import CLIENT_TIMEOUT_S, Dashboard

    dashboard = Dashboard(tmp_path, "127.0.0.1:0")
    dashboard.start()
    try:
        with caplog.at_level(logging.DEBUG, logger="cloud_server.dashboard"):
            silent = socket.create_connection(("127.0.0.1", dashboard.port))
            half = socket.create_connection(("127.0.0.1", dashboard.port))
            half.sendall(b"GET /state.json HTTP/1.1\r\nHost: x\r\n")  # never finished
            gone = socket.create_connection(("127.0.0.1", dashboard.port))
            gone.sendall(b"GET /state.json HTTP/1.1\r\nHost: x\r\n\r\n")
            gone.close()
            started = time.monotonic()
            for client in (silent, half):
                client.settimeout(CLIENT_TIMEOUT_S * 6)  # bounded, generous: the server must close first
                assert client.recv(4096) == b""  # closed by the server
                client.close()
            assert time.monotonic() - started < CLIENT_TIMEOUT_S * 6
            assert _get(dashboard.url + "state.json")[0] == 200
        assert "Traceback" not in caplog.text
    finally:
        dashboard.stop()


def test_a_held_out_folder_that_is_missing_or_holds_an_unreadable_picture_is_refused_before_anything_starts(
        tmp_path, small_model, photos):
    import subprocess
    import sys

    from PIL import Image

    from cloud_server.heldout import describe_heldout
    from stylizer import save_model
    from tests import procs

    with pytest.raises(ValueError, match="is missing"):
        describe_heldout(tmp_path / "nowhere")
    folder = tmp_path / "heldout"
    for sub in ("content", "style"):
        (folder / sub).mkdir(parents=True)
        Image.fromarray(photos["coffee"][:64, :64]).save(folder / sub / "good.png")
    assert describe_heldout(folder) == f"1 content pictures and 1 styles in {folder}"
    (folder / "style" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(ValueError, match=r"held-out picture .*broken\.jpg is unreadable"):
        describe_heldout(folder)
    initial = tmp_path / "initial.safetensors"
    save_model(initial, small_model)
    done = subprocess.run([sys.executable, "-m", "fedvst.cli", "cloud", "serve", "--data-dir", str(tmp_path / "cloud"),
                           "--port", str(procs.free_port()), "--registry-port", str(procs.free_port()),
                           "--initial-checkpoint", str(initial), "--heldout", str(folder)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.jpg is unreadable" in errors[0], done.stderr
    assert not (tmp_path / "cloud" / "checkpoints").exists()  # nothing started, nothing written


def test_a_serverapp_that_fails_or_dies_is_reported_and_ends_the_cloud(tmp_path, small_model):
    """The ServerApp reporting ``failed`` is read as its reason; one that vanished while waiting for a
    round, killed by -9 in a real cloud, ends ``fedvst cloud serve`` non-zero, saying so in one line."""
    import signal

    from cloud_server.serve import serverapp_failure
    from stylizer import save_model
    from tests import procs
    from tests.cloud_server.test_federation import wait_for

    assert serverapp_failure(None) is None
    assert serverapp_failure({"state": "failed", "line": "the ServerApp failed: ImageError: x.png is unreadable"}) \
        == "the ServerApp failed: ImageError: x.png is unreadable"
    assert serverapp_failure({"state": "waiting", "pid": os.getpid(), "round": 1}) is None  # alive
    assert serverapp_failure({"state": "finished", "pid": 2 ** 22 + 17}) is None  # done, not failed

    initial = tmp_path / "initial.safetensors"
    save_model(initial, small_model)
    log = tmp_path / "cloud.log"
    cloud = procs.start(["cloud", "serve", "--data-dir", str(tmp_path / "cloud"), "--port", str(procs.free_port()),
                         "--registry-port", str(procs.free_port()), "--initial-checkpoint", str(initial),
                         "--run-config", "base-size=32", "--run-config", "heldout-images=2"], log)
    try:
        def serverapp_waiting() -> bool:
            record = json.loads((tmp_path / "cloud" / "status.json").read_text() or "{}")
            return record.get("state") == "waiting"

        wait_for(lambda: (tmp_path / "cloud" / "status.json").exists() and serverapp_waiting(), 300,
                 "the ServerApp waiting for edges", [log])
        serverapp = json.loads((tmp_path / "cloud" / "status.json").read_text())["pid"]
        assert serverapp != cloud.pid
        os.kill(serverapp, signal.SIGKILL)
        code = cloud.wait(timeout=120)  # bounded, generous: the cloud checks every second
    finally:
        procs.stop(cloud)
    said = log.read_text()
    assert code not in (0, None), said
    assert f"the ServerApp (pid {serverapp}) ended while waiting for round 1" in said, said
    assert said.count("error: ") == 1, said
