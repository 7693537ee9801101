"""A real SuperLink (fedvst cloud serve) and two real edges (fedvst edge serve --cloud) on 127.0.0.1."""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from PIL import Image

from edge_client.frame_store import FrameStore
from fedvst.samples import sample_photo
from stylizer import save_model
from tests import procs

EDGE_PHOTOS = (("astronaut", "rocket"), ("coffee", "motorcycle_left"))  # the training split only


def fill_edge(data_dir: Path, names: tuple[str, ...]) -> None:
    store = FrameStore(data_dir)
    for name in names:
        image = Image.open(sample_photo(name)).convert("RGB")
        for i in range(5):
            buffer = io.BytesIO()
            image.crop((i * 30, i * 20, i * 30 + 160, i * 20 + 128)).save(buffer, format="PNG")
            store.add_frame(buffer.getvalue())
    buffer = io.BytesIO()
    Image.open(sample_photo("rocket")).convert("RGB").crop((0, 0, 200, 200)).save(buffer, format="PNG")
    store.add_style(buffer.getvalue())
    store.close()


def wait_for(predicate, timeout_s: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    tails = "\n".join(f"--- {log}\n{log.read_text()[-3000:]}" for log in logs if log.exists())
    pytest.fail(f"timed out waiting for {what}\n{tails}")


def port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def served_model(port: int) -> str:
    """sha256 of the model an edge used for one real request."""
    import numpy as np

    from fedvst.protocol import fedvst_pb2, fedvst_pb2_grpc
    from fedvst.remote import encode_png

    image = encode_png(np.full((32, 32, 3), 128, np.uint8))
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = fedvst_pb2_grpc.StylizerStub(channel)
        handle = stub.UploadStyle(fedvst_pb2.UploadStyleRequest(image=image), timeout=60).handle
        reply = next(stub.Stylize(iter([fedvst_pb2.KeyFrame(style_handle=handle, image=image, target_width=32,
                                                            target_height=32)]), timeout=60))
    return reply.model_sha256


def round_meta(cloud_dir: Path, number: int) -> dict:
    return json.loads((cloud_dir / "checkpoints" / f"round_{number:06d}.json").read_text())


@pytest.mark.slow
def test_two_edges_two_rounds_then_the_cloud_dies_and_resumes(tmp_path, small_model):
    initial = tmp_path / "initial.safetensors"
    save_model(initial, small_model)
    cloud_dir = tmp_path / "cloud"
    port, registry_port = procs.free_port(), procs.free_port()
    cloud_args = ["cloud", "serve", "--data-dir", str(cloud_dir), "--port", str(port), "--registry-port",
                  str(registry_port), "--min-nodes", "2", "--images-per-round", "4", "--initial-checkpoint",
                  str(initial), "--run-config", "base-size=32", "--run-config", "eval-images=2",
                  "--run-config", "wait-for-ready=false"]  # static stores: every round trains on the same frames
    logs = [tmp_path / "cloud.log", tmp_path / "cloud2.log", cloud_dir / "logs" / "superlink.log"]
    edges, edge_ports = [], []
    cloud = procs.start([*cloud_args, "--rounds", "2"], logs[0])
    try:
        procs.wait_port(registry_port, cloud, log=logs[0])
        # a second cloud on this one's folder or ports refuses to start (it would have submitted its run
        # to this SuperLink, or mixed its checkpoints into these) and leaves the first one untouched
        for args, message in ((["--port", str(procs.free_port()), "--registry-port", str(procs.free_port())],
                               f"{cloud_dir.resolve()} is in use by another cloud"),
                              (["--data-dir", str(tmp_path / "cloud-b")], f"cannot listen on 127.0.0.1:{port}")):
            second = subprocess.run([sys.executable, "-m", "fedvst.cli", *cloud_args, *args, "--rounds", "2"],
                                    capture_output=True, text=True, timeout=120, env={**os.environ,
                                                                                      "FEDVST_OFFLINE": "1"})
            errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
            assert second.returncode == 2 and len(errors) == 1 and message in errors[0], second.stderr
        assert cloud.poll() is None and not list((tmp_path / "cloud-b").glob("checkpoints/*"))
        for i, names in enumerate(EDGE_PHOTOS):
            data_dir = tmp_path / f"edge{i}"
            fill_edge(data_dir, names)
            edge_port = procs.free_port()
            edge_ports.append(edge_port)
            log = tmp_path / f"edge{i}.log"
            logs += [log, data_dir / "supernode.log"]
            edges.append(procs.start(["edge", "serve", "--port", str(edge_port), "--data-dir", str(data_dir),
                                      "--cloud", f"127.0.0.1:{port}", "--registry", f"127.0.0.1:{registry_port}",
                                      "--no-train-between-syncs"], log))  # static stores: each round trains
        checkpoints = cloud_dir / "checkpoints"
        wait_for(lambda: (checkpoints / "round_000002.json").exists(), 300, "round 2", logs)
        first, second = round_meta(cloud_dir, 1), round_meta(cloud_dir, 2)
        assert len(first["nodes"]) == 2 and sorted(first["examples"].values()) == [4, 4]
        assert second["resumed_from_round"] == 0 and "train_total" in second["metrics"]
        # both edges received a global model in their slot (evaluate hands it to the service)
        wait_for(lambda: all((tmp_path / f"edge{i}" / "model" / "current.json").exists() for i in range(2)),
                 60, "model slots", logs)
        # after round 2's evaluation the edge's slot holds round 2's global model, and the service
        # serves it (hot swap); the first cloud runs 2 rounds, so the slot stays there
        round2 = round_meta(cloud_dir, 2)["sha256"]
        slot = tmp_path / "edge0" / "model" / "current.json"
        wait_for(lambda: json.loads(slot.read_text())["sha256"] == round2, 120, "round 2 in the slot", logs)
        assert served_model(edge_ports[0]) == round2

        procs.stop(cloud, signal.SIGKILL)  # the cloud dies, and its SuperLink with it
        wait_for(lambda: not port_open(port), 30, "the killed cloud's SuperLink to go away", logs)
        cloud = procs.start([*cloud_args, "--rounds", "3"], logs[1])
        wait_for(lambda: (checkpoints / "round_000003.json").exists(), 300, "round 3 after the restart", logs)
        third = round_meta(cloud_dir, 3)
        assert third["resumed_from_round"] == 2 and len(third["nodes"]) == 2
        assert round_meta(cloud_dir, 2)["sha256"] == round2  # history untouched
        manifest = json.loads((checkpoints / "manifest.json").read_text())
        assert [entry["round"] for entry in manifest["rounds"]] == [0, 1, 2, 3]
    finally:
        codes = [procs.stop(edge) for edge in edges]
        procs.stop(cloud)
    assert codes == [0, 0]  # SIGTERM stops an edge cleanly


@pytest.mark.slow
def test_tls_and_node_authentication_refuse_an_unregistered_edge(tmp_path, small_model, photos):
    """docs/deploy.md's configuration: a phone shares frames with the registered edge over TLS with
    the token; that edge trains on them and syncs, the unregistered one is refused."""
    from cloud_server.make_certs import make_ca_and_server, make_node_keys
    from tests.fedvst.clips import camera_clip, write_clip

    certs = tmp_path / "certs"
    certs.mkdir()
    make_ca_and_server(certs, ["127.0.0.1", "localhost"], edge_hosts=["127.0.0.1"])  # as deploy.md makes them
    keys = [make_node_keys(certs, f"node_{i}") for i in range(2)]
    initial = tmp_path / "initial.safetensors"
    save_model(initial, small_model)
    cloud_dir = tmp_path / "cloud"
    port, registry_port = procs.free_port(), procs.free_port()
    logs = [tmp_path / "cloud.log", cloud_dir / "logs" / "superlink.log"]
    (tmp_path / "token").write_text("deploy-token-0123456789abcdef\n")
    # relative paths, as docs/deploy.md writes them: the SuperLink runs in another working directory
    cloud_args = ["cloud", "serve", "--data-dir", "cloud", "--port", str(port), "--registry-port", str(registry_port),
                  "--rounds", "1", "--images-per-round", "4", "--initial-checkpoint", str(initial), "--run-config",
                  "base-size=32", "--run-config", "eval-images=2", "--run-config", "ready-poll-s=2",
                  "--tls-cert", "certs/server.crt", "--tls-key",
                  "certs/server.key", "--tls-ca", "certs/ca.crt", "--token-file", "token", "--node-key",
                  str(keys[0][1].relative_to(tmp_path))]
    cloud = procs.start(cloud_args, logs[0], cwd=tmp_path)
    edges, edge_args = [], []
    try:
        procs.wait_port(registry_port, cloud, log=logs[0])
        phone_port = procs.free_port()
        for i, names in enumerate(EDGE_PHOTOS):
            data_dir = tmp_path / f"edge{i}"
            if i:  # the unregistered edge has frames of its own: it is refused for its key, not idle
                fill_edge(data_dir, names)
            log = tmp_path / f"edge{i}.log"
            logs += [log, data_dir / "supernode.log"]
            edge_args.append(["edge", "serve", "--port", str(phone_port if i == 0 else procs.free_port()),
                              "--supernode-port", str(procs.free_port()), "--data-dir", str(data_dir), "--cloud",
                              f"127.0.0.1:{port}", "--registry", f"127.0.0.1:{registry_port}", "--tls-ca",
                              str(certs / "ca.crt"), "--node-key", str(keys[i][0]), "--token-file",
                              str(tmp_path / "token")]
                             + (["--tls-cert", str(certs / "edge_0.crt"), "--tls-key", str(certs / "edge_0.key")]
                                if i == 0 else []))
            edges.append(procs.start(edge_args[-1], log))
        procs.wait_port(phone_port, edges[0], log=logs[2])
        write_clip(tmp_path / "clip.mp4", camera_clip(photos["astronaut"], 16, (3.0, 1.0), (96, 160)))
        Image.fromarray(photos["coffee"]).save(tmp_path / "style.png")
        phone = subprocess.run([sys.executable, "-m", "fedvst.cli", "stylize", "clip.mp4", "--style", "style.png",
                                "-o", "out.mp4", "--edge", f"127.0.0.1:{phone_port}", "--edge-ca", "certs/ca.crt",
                                "--edge-token-file", "token", "--share-frames", "--keyframes", "interval",
                                "--interval", "1"], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                               env={**os.environ, "FEDVST_OFFLINE": "1"})
        assert phone.returncode == 0, phone.stderr
        wait_for(lambda: (cloud_dir / "checkpoints" / "round_000001.json").exists(), 300, "round 1", logs)
        first = round_meta(cloud_dir, 1)
        assert len(first["nodes"]) == 1  # only the registered edge took part, on what the phone shared
        assert min(first["examples"].values()) >= 4
        assert "images trained since the last sync" in (tmp_path / "edge0" / "trainer.log").read_text()
        superlink_log = logs[1].read_text()
        assert "No SuperNode found with the given public key" in superlink_log
        refused = (tmp_path / "edge1" / "supernode.log").read_text()  # Flower words it either way
        assert "Connection attempt failed" in refused or "Failed to activate SuperNode" in refused
        # both edges restored their first model from the registry over TLS, with the token
        assert all("restored round 0" in (tmp_path / f"edge{i}.log").read_text() for i in range(2))
        told = subprocess.run([sys.executable, "-m", "fedvst.cli", "status", "--cloud", f"127.0.0.1:{registry_port}",
                               "--ca", "certs/ca.crt", "--token-file", "token", "--json"], capture_output=True,
                              text=True, timeout=120, cwd=tmp_path)
        assert told.returncode == 0 and json.loads(told.stdout)["rounds_done"] == 1, told.stderr
        # killed, the cloud restarts with its own command: the node key is registered already
        procs.stop(cloud, signal.SIGKILL)
        wait_for(lambda: not port_open(port) and not port_open(registry_port), 30, "the killed cloud to go away",
                 logs)
        logs.append(tmp_path / "cloud-restarted.log")
        activated = logs[1].read_text().count("Activated node_id=")
        cloud = procs.start(cloud_args, logs[-1], cwd=tmp_path)
        procs.wait_port(registry_port, cloud, log=logs[-1])
        wait_for(lambda: "resuming after round 1" in logs[-1].read_text(), 120, "the ServerApp resuming", logs)
        assert cloud.poll() is None
        # the registered edge's SuperNode reconnects to the restarted cloud on its own; then the edge is
        # killed with -9 alone and started again: it signs its dead SuperNode off, so the SuperLink
        # activates the new one without the refusals that last up to 60 s otherwise
        # (simulations/bench_rejoin.py times it)
        wait_for(lambda: "Connection successful after" in (tmp_path / "edge0" / "supernode.log").read_text()
                 or logs[1].read_text().count("Activated node_id=") > activated, 120,
                 "the edge's SuperNode to reconnect to the restarted cloud", logs)
        assert procs.kill_leader_only(edges[0]) == []
        supernode_log = tmp_path / "edge0" / "supernode.log"
        offset, activated = supernode_log.stat().st_size, logs[1].read_text().count("Activated node_id=")
        logs.append(tmp_path / "edge0-restarted.log")
        edges[0] = procs.start(edge_args[0], logs[-1])
        wait_for(lambda: logs[1].read_text().count("Activated node_id=") > activated, 120,
                 "the killed edge to rejoin", logs)
        assert "signed off the previous SuperNode" in logs[-1].read_text()
        assert "Failed to activate SuperNode" not in supernode_log.read_bytes()[offset:].decode(errors="replace")
    finally:
        for edge in edges:
            procs.stop(edge)
        procs.stop(cloud)


def cloud_status(registry_port: int, *extra: str) -> dict:
    """``fedvst status --json`` (plus ``extra`` options) as an operator would run it."""
    result = subprocess.run([sys.executable, "-m", "fedvst.cli", "status", "--cloud", f"127.0.0.1:{registry_port}",
                             "--json", *extra], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def start_readme_cloud(cloud_dir: Path, initial: Path, port: int, registry_port: int, rounds: int,
                       log: Path):
    return procs.start(["cloud", "serve", "--data-dir", str(cloud_dir), "--port", str(port), "--registry-port",
                        str(registry_port), "--rounds", str(rounds), "--min-nodes", "2", "--images-per-round", "4",
                        "--initial-checkpoint", str(initial), "--run-config", "base-size=32",
                        "--run-config", "eval-images=2", "--run-config", "ready-poll-s=2"], log)


ROUND_LINE = re.compile(r"round 1 counted: (?P<first>\S+) \(node \d+\) trained on (?P<n1>\d+) images, "
                        r"(?P<second>\S+) \(node \d+\) on (?P<n2>\d+); held-out total (?P<score>[\d.e+]+) "
                        r"\(round 0: (?P<initial>[\d.e+]+)\); model moved by at most (?P<moved>[\d.e+-]+) "
                        r"\(RMS [\d.e+-]+\); checkpoint round_000001\.safetensors; \d+ s after round 0")


def test_the_readme_flow_trains_on_the_frames_phones_share(tmp_path, small_model, photos):
    """README's "Edge servers and the cloud", on 127.0.0.1: edges with empty stores spend no round;
    once a phone shares its key frames through both, a round aggregates both, the cloud says so in one
    line and scores it on its held-out set, and both edges hot-swap it. A cloud restarted after an
    edge was killed counts only the edge that is alive."""
    from tests.fedvst.clips import camera_clip, write_clip

    initial = tmp_path / "initial.safetensors"
    save_model(initial, small_model)
    cloud_dir = tmp_path / "cloud"
    port, registry_port = procs.free_port(), procs.free_port()
    logs = [tmp_path / "cloud.log", cloud_dir / "logs" / "superlink.log"]
    cloud = start_readme_cloud(cloud_dir, initial, port, registry_port, 2, logs[0])
    edges, edge_ports = [], []
    try:
        procs.wait_port(registry_port, cloud, log=logs[0])
        for i in range(2):
            edge_ports.append(procs.free_port())
            logs += [tmp_path / f"edge{i}.log", tmp_path / f"edge{i}" / "supernode.log"]
            named = ["--name", "edge0"] if i == 0 else []  # edge 1 keeps the default name, host:port
            edges.append(procs.start(["edge", "serve", "--port", str(edge_ports[i]), "--data-dir",
                                      str(tmp_path / f"edge{i}"), "--cloud", f"127.0.0.1:{port}", "--registry",
                                      f"127.0.0.1:{registry_port}", *named], logs[-2]))
        names = ["edge0", f"127.0.0.1:{edge_ports[1]}"]
        for edge_port, edge, log in zip(edge_ports, edges, logs[2::2], strict=True):
            procs.wait_port(edge_port, edge, log=log)
        checkpoints = cloud_dir / "checkpoints"
        wait_for(lambda: all(f"{name} has no style stored yet (0 new images)" in logs[0].read_text()
                             for name in names), 300, "the cloud saying why no round starts", logs)
        time.sleep(3 * 2 + 2)  # 3 more polls: the edges have nothing to train on, no round may be spent
        assert not (checkpoints / "round_000001.json").exists()
        history = cloud_dir / "history.jsonl"
        cloud_says = logs[0].read_text()  # one line says why nothing happens
        assert "waiting: 0 of 2 edges ready, 2 needed (" in cloud_says
        assert "edge0 has no style stored yet (0 new images)" in cloud_says
        assert f"{names[1]} has no style stored yet (0 new images)" in cloud_says
        assert "resuming" not in cloud_says and "starting from the initial model" in cloud_says
        waiting = cloud_status(registry_port)  # fedvst status says the same, edges by name
        assert waiting["rounds_done"] == 0 and waiting["federation"]["state"] == "waiting"
        assert [e["ready"] for e in waiting["federation"]["edges"]] == [False, False]
        assert sorted(e["name"] for e in waiting["federation"]["edges"]) == sorted(names)
        assert all(e["serving_round"] == 0 for e in waiting["federation"]["edges"])
        assert "waiting: 0 of 2 edges ready" in waiting["federation"]["line"]
        # round 0, the initial model, is scored on the held-out split before any round
        assert [r["round"] for r in waiting["rounds"]] == [0] and waiting["rounds"][0]["heldout_total"] > 0

        Image.fromarray(photos["coffee"]).save(tmp_path / "style.png")

        def phone_shares(photo: str, name: str) -> None:  # a phone's clip, every frame a key frame
            clip = write_clip(tmp_path / f"{name}.mp4", camera_clip(photos[photo], 24, (3.0, 1.0), (96, 160)))
            phone = subprocess.run([sys.executable, "-m", "fedvst.cli", "stylize", str(clip), "--style",
                                    str(tmp_path / "style.png"), "-o", str(tmp_path / f"{name}-out.mp4"), "--edge",
                                    f"127.0.0.1:{edge_ports[0]}", "--edge", f"127.0.0.1:{edge_ports[1]}",
                                    "--share-frames", "--keyframes", "interval", "--interval", "1"],
                                   capture_output=True, text=True, timeout=300,
                                   env={**os.environ, "FEDVST_OFFLINE": "1"})
            assert phone.returncode == 0, phone.stderr
            said = {m["edge"]: (int(m["keys"]), int(m["kept"])) for m in re.finditer(
                r"edge (?P<edge>\S+) stylized (?P<keys>\d+) key frames and kept (?P<kept>\d+)", phone.stdout)}
            assert sorted(said) == sorted(f"127.0.0.1:{p}" for p in edge_ports), phone.stdout  # who served it
            assert sum(keys for keys, _ in said.values()) == 24 and all(kept > 0 for _, kept in said.values())

        phone_shares("astronaut", "clip")
        wait_for(lambda: (checkpoints / "round_000001.json").exists(), 300, "round 1 on the shared frames", logs)
        first = round_meta(cloud_dir, 1)
        # each edge trained between syncs, one image per frame the phone left, and its reply sent that
        # (a train message training itself would have sent exactly --images-per-round)
        trained = [{int(n) for n in re.findall(r"round 0: (\d+) images trained since the last sync",
                                               (tmp_path / f"edge{i}" / "trainer.log").read_text())}
                   for i in range(2)]
        examples = sorted(first["examples"].values())
        assert len(first["nodes"]) == 2 and min(examples) >= 4
        assert examples in [sorted(pair) for pair in itertools.product(*trained)], (examples, trained)
        assert sorted(first["names"].values()) == sorted(names)
        for i, edge_port in enumerate(edge_ports):  # both edges hot-swap round 1's model, and say so
            slot = tmp_path / f"edge{i}" / "model" / "current.json"
            wait_for(lambda slot=slot: slot.exists() and json.loads(slot.read_text())["sha256"] == first["sha256"],
                     120, f"round 1 in edge {i}'s slot", logs)
            wait_for(lambda i=i: "now serving round 1" in (tmp_path / f"edge{i}.log").read_text(), 60,
                     f"edge {i} logging the swap before any phone asks", logs)
            assert served_model(edge_port) == first["sha256"]
        # the cloud writes the round's history line once the edges' evaluate replies are in
        wait_for(lambda: ROUND_LINE.search(logs[0].read_text()), 120, "the cloud's line for round 1", logs)
        said = ROUND_LINE.search(logs[0].read_text())
        assert sorted([said["first"], said["second"]]) == sorted(names)
        assert sorted([int(said["n1"]), int(said["n2"])]) == examples
        recorded = [json.loads(line) for line in history.read_text().splitlines()]
        assert [r["round"] for r in recorded] == [0, 1]  # round 0 (the initial model), then counted rounds only
        scores = [r["metrics"]["heldout_total"] for r in recorded]
        assert all(score > 0 for score in scores)
        assert float(said["score"]) == pytest.approx(scores[1], rel=1e-4)  # printed to 5 digits
        assert float(said["initial"]) == pytest.approx(scores[0], rel=1e-4)
        assert float(said["moved"]) > 0.0 and recorded[1]["moved_max"] == pytest.approx(float(said["moved"]), rel=0.01)
        assert round_meta(cloud_dir, 1)["metrics"]["heldout_total"] == pytest.approx(scores[1])
        done = cloud_status(registry_port)
        assert done["rounds_done"] == 1 and done["newest_checkpoint"]["sha256"] == first["sha256"]
        assert done["newest_checkpoint"]["name"] == "round_000001.safetensors"
        assert [(r["round"], r["heldout_total"]) for r in done["rounds"]] == [(0, scores[0]), (1, scores[1])]
        assert done["best_round"] == (1 if scores[1] < scores[0] else 0)

        # no new frames after round 1: no round 2 within 3 polls (2 s each), and status says why
        wait_for(lambda: cloud_status(registry_port)["federation"]["round"] == 2, 120, "the wait for round 2", logs)
        time.sleep(3 * 2 + 2)
        assert not (checkpoints / "round_000002.json").exists()
        waiting = cloud_status(registry_port)["federation"]
        assert waiting["state"] == "waiting" and waiting["round"] == 2, waiting
        assert "0 of 2 edges ready" in waiting["line"], waiting["line"]
        assert all("0 of 4 new images" in e["reason"] for e in waiting["edges"]), waiting["edges"]
        # a phone shares new frames: round 2 trains on them, moves the model, and both edges serve it
        phone_shares("chelsea", "clip2")
        wait_for(lambda: (checkpoints / "round_000002.json").exists(), 300, "round 2 on the new frames", logs)
        second = round_meta(cloud_dir, 2)
        assert second["sha256"] != first["sha256"] and min(second["examples"].values()) >= 4
        for i in range(2):
            wait_for(lambda i=i: "now serving round 2" in (tmp_path / f"edge{i}.log").read_text(), 120,
                     f"edge {i} serving round 2", logs)
        wait_for(lambda: len(history.read_text().splitlines()) >= 3, 120, "round 2's history line", logs)
        recorded = [json.loads(line) for line in history.read_text().splitlines()]
        assert [r["round"] for r in recorded] == [0, 1, 2] and recorded[2]["moved_max"] > 0

        # kill -9 edge 1, then restart the cloud for one more round: only edge 0 is counted
        assert procs.kill_leader_only(edges[1]) == []
        old_pid = cloud_status(registry_port)["federation"]["pid"]
        procs.stop(cloud)
        cloud = start_readme_cloud(cloud_dir, initial, port, registry_port, 3, logs[0].with_name("cloud2.log"))
        logs.append(logs[0].with_name("cloud2.log"))
        procs.wait_port(registry_port, cloud, log=logs[-1])
        fresh = cloud_status(registry_port)["federation"]
        assert fresh["pid"] != old_pid and fresh["state"] in ("starting", "waiting"), fresh

        def only_edge0_counted() -> bool:
            federation = cloud_status(registry_port)["federation"]
            return (federation["state"] == "waiting" and [e["name"] for e in federation["edges"]] == ["edge0"]
                    and "of 1 edges ready" in federation["line"])

        wait_for(only_edge0_counted, 240, "the restarted cloud counting edge0 alone", logs)
        assert "resuming after round 2" in logs[-1].read_text()
        # an edge or the cloud killed alone takes its Flower helpers (SuperNode or SuperLink, and the
        # SuperExec below them, which Flower starts in sessions of their own) with it
        assert procs.kill_leader_only(edges[0]) == []
        assert procs.kill_leader_only(cloud) == []
    finally:
        for edge in edges:
            procs.stop(edge)
        procs.stop(cloud)
