"""``fedvst status``: the registry's GetStatus, from the checkpoint store and the ServerApp's report."""

import json
import time

import pytest
import torch

from cloud_server.history import append_round, history_path
from cloud_server.readiness import EdgeState
from cloud_server.registry import start_registry
from cloud_server.status import read_status, status_path, write_status
from cloud_server.store import CheckpointStore
from fedvst.cli import run_command
from fedvst.cloud_status import fetch_status


@pytest.fixture
def cloud(tmp_path):
    store = CheckpointStore(tmp_path / "checkpoints")
    sha = store.save(2, {"w": torch.ones(3)}, {"metrics": {}, "nodes": []})
    server, port = start_registry(tmp_path / "checkpoints", "127.0.0.1:0", token="s3cret-token-0123456789")
    yield tmp_path, f"127.0.0.1:{port}", sha
    server.stop(0)


def test_status_gives_rounds_the_newest_checkpoint_and_the_edges_as_last_reported(cloud):
    root, address, sha = cloud
    assert fetch_status(address, token="s3cret-token-0123456789")["federation"] is None  # no report yet
    write_status(status_path(root), "waiting", 3, 2, "waiting: 1 of 2 edges ready, 2 needed (edge1 has 3 of 8)",
                 [EdgeState(11, True, "edge0 has 9 of 8 new images"), EdgeState(12, False, "edge1 has 3 of 8")])
    state = fetch_status(address, token="s3cret-token-0123456789")
    assert state["rounds_done"] == 2
    assert state["newest_checkpoint"]["name"] == "round_000002.safetensors"
    assert state["newest_checkpoint"]["sha256"] == sha
    assert state["federation"]["state"] == "waiting" and state["federation"]["round"] == 3
    assert [(e["node"], e["ready"]) for e in state["federation"]["edges"]] == [(11, True), (12, False)]


def test_status_prints_json_for_scripts_and_one_line_when_refused(cloud, tmp_path, capsys):
    tmp_path, address, sha = cloud
    (tmp_path / "token").write_text("s3cret-token-0123456789\n")
    run_command(["status", "--cloud", address, "--token-file", str(tmp_path / "token"), "--json"])
    assert json.loads(capsys.readouterr().out)["newest_checkpoint"]["sha256"] == sha
    run_command(["status", "--cloud", address, "--token-file", str(tmp_path / "token")])
    assert "2 rounds done" in capsys.readouterr().out
    root = tmp_path  # the cloud fixture's folder: its rounds' scores and a live edge by name
    append_round(history_path(root), {"round": 0, "metrics": {"heldout_total": 0.25}})
    append_round(history_path(root), {"round": 2, "metrics": {"heldout_total": 0.2}, "names": {"7": "lyon:8500"},
                                      "examples": {"7": 64}, "moved_max": 2.5e-4, "moved_rms": 3e-6})
    why = "lyon:8500 has trained on 3 of the 8 new images a round needs since round 2 " * 2  # longer than a terminal
    write_status(status_path(root), "waiting", 3, 1, "waiting: 0 of 1 edges ready, 1 needed (lyon:8500 has 3 of 8)",
                 [EdgeState(7, False, why.strip(), name="lyon:8500", new_images=3, serving_round=2,
                            last_seen=time.time())])
    run_command(["status", "--cloud", address, "--token-file", str(tmp_path / "token")])
    said = capsys.readouterr().out
    assert "held-out total by round: 0: 0.25 → 2: 0.2" in said
    assert "round 2 moved the model by at most 2.50e-04 (RMS 3.00e-06)" in said
    records = [line for line in said.splitlines() if line.startswith("edge: ")]  # not a terminal: a record a line
    assert len(records) == 1, said
    assert records[0].startswith("edge: lyon:8500; node: 7; ready: no; trained since sync: -; serves round: 2; ")
    assert records[0].endswith(f"; why: {why.strip()}")
    run_command(["status", "--cloud", address, "--token-file", str(tmp_path / "token"), "--json"])
    state = json.loads(capsys.readouterr().out)
    assert [(r["round"], r["heldout_total"], r["edges"]) for r in state["rounds"]] == [(0, 0.25, {}),
                                                                                     (2, 0.2, {"lyon:8500": 64})]
    with pytest.raises(SystemExit) as refused:
        run_command(["status", "--cloud", address])  # no token
    err = capsys.readouterr().err
    assert refused.value.code == 2 and "UNAUTHENTICATED" in err and len(err.strip().splitlines()) == 1


def test_an_unreadable_report_reads_as_none(tmp_path):
    status_path(tmp_path).write_text("{not json")
    assert read_status(status_path(tmp_path)) is None
    status_path(tmp_path).write_text("[1, 2]")
    assert read_status(status_path(tmp_path)) is None
