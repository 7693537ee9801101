"""The N-edge simulation end to end (tiny profile): curves, axis, learning, crash and rejoin."""

import csv
import json
import socket

import pytest

from fedvst.cli import run_command
from fedvst.processes import free_port
from simulations.federated import (
    CSV_COLUMNS,
    SLICES,
    edge_seed,
    edge_slices,
    images_per_edge,
    sampled_edges,
    server_learning_rate,
    server_momentum,
    write_csv,
)
from simulations.figure7 import band, default_target, final_loss, images_to_target, plot
from simulations.figure7 import main as figure7_main
from stylizer import load_checkpoint


def simulate_cli(args: list[str]) -> dict:
    """``fedvst simulate ARGS`` in this process; returns the summary."""
    return run_command(["simulate", *args])


@pytest.mark.slow
def test_two_edges_learn_and_a_crashed_edge_rejoins(tmp_path):
    # the image head: an untrained affine head already outputs its colour prior, so its held-out
    # loss moves too little in 3 tiny rounds to show learning
    summary = simulate_cli(["--edges", "2", "--profile", "tiny", "--rounds", "3", "--out", str(tmp_path),
                    "--crash-edge", "1", "--at-round", "2", "--head", "image"])
    with (tmp_path / "curves.csv").open() as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == CSV_COLUMNS
        rows = list(reader)
    assert [int(r["round"]) for r in rows] == [0, 1, 2, 3]
    assert [int(r["images_per_edge"]) for r in rows] == [0, 4, 8, 12]  # tiny: 4 images per sync
    assert all(r["edges"] == "2" and r["seed"] == "0" for r in rows)
    assert float(rows[-1]["total"]) < float(rows[0]["total"])
    for r in rows:
        assert float(r["total"]) == pytest.approx(float(r["content"]) + float(r["style"]), rel=1e-5)
    assert "edge 1 crashed" in rows[2]["event"] and "edge 1 restored (registry round 2)" in rows[2]["event"]
    history = [json.loads(line) for line in (tmp_path / "seed_0" / "edges_2" / "cloud" / "history.jsonl").read_text()
               .splitlines()]
    assert [len(h["nodes"]) for h in history] == [0, 2, 1, 2]  # round 2 went on without the crashed edge
    final = load_checkpoint(tmp_path / "seed_0" / "edges_2" / "cloud" / "checkpoints" / "round_000003.safetensors")
    for edge in (0, 1):  # both edges serve exactly the global model after the last round
        slot = load_checkpoint(tmp_path / "seed_0" / "edges_2" / "edges" / f"edge_{edge}" / "model"
                               / "current.safetensors")
        assert slot.sha256 == final.sha256
    assert (tmp_path / "figure7.png").stat().st_size > 10_000
    totals = [float(r["total"]) for r in rows]
    smoothed = [sum(totals[max(0, i - 2):i + 1]) / len(totals[max(0, i - 2):i + 1]) for i in range(len(totals))]
    assert summary["target_loss"] == pytest.approx(min(smoothed[1:]), rel=1e-5)  # trailing 3-round mean, trained
    reached = summary["images_to_target"]["2"]
    assert reached["mean"] == reached["min"] == reached["max"] == 4 * smoothed.index(min(smoothed[1:]))
    assert reached["per_seed"] == {"0": reached["mean"]} and summary["cost"]["2"]["sampled"] == 2
    assert summary["final_loss"]["2"]["mean"] == pytest.approx(smoothed[-1], rel=1e-5)
    assert summary["cost"]["2"]["peak_rss_mb"]["max"] > 100  # this process and its Ray workers
    assert summary["initial_loss"]["mean"] == pytest.approx(float(rows[0]["total"]), rel=1e-5)
    assert summary["encoder"].startswith("sha256:") and summary["data"] == "iid"
    cost = summary["cost"]["2"]
    assert 0 < cost["training_seconds_per_round"]["mean"] < cost["seconds_per_round"]["mean"]
    trained = [sum(h["train_seconds"].values()) for h in history[1:]]
    assert all(seconds > 0 for seconds in trained)  # every counted round's replies said how long they trained


def rows_of(curves: dict[tuple[int, int], list[float]]) -> list[dict]:
    """CSV-like rows of (seed, N) → held-out totals per round, 10 images per edge a round."""
    return [{"seed": seed, "edges": n, "round": r, "images_per_edge": 10 * r, "total": loss, "content": 0.25 * loss,
             "style": 0.75 * loss}
            for (seed, n), losses in curves.items() for r, loss in enumerate(losses)]


def test_images_to_target_picks_the_first_round_at_or_below_target():
    rows = rows_of({(0, 1): [5, 4, 3, 2.5], (0, 4): [5, 3, 2, 1.5]})
    assert default_target(rows, window=1) == 2.5
    reached = images_to_target(rows, 2.5, window=1)
    assert {n: r["mean"] for n, r in reached.items()} == {"1": 30, "4": 20}
    assert images_to_target(rows, 1.0, window=1)["4"] == {"mean": None, "min": None, "max": None, "reached": 0,
                                                         "runs": 1, "per_seed": {"0": None}}
    # smoothed over 3 rounds: 1 edge gets to (4 + 3 + 2.5) / 3; 4 edges are at (5 + 3 + 2) / 3 in round 2
    assert default_target(rows) == pytest.approx(9.5 / 3)
    assert {n: r["mean"] for n, r in images_to_target(rows, 9.5 / 3).items()} == {"1": 30, "4": 30}
    assert {n: r["mean"] for n, r in images_to_target(rows, 3.4).items()} == {"1": 30, "4": 20}


def test_the_target_is_what_training_reaches_not_the_initial_model():
    rows = rows_of({(0, 1): [1.0, 1.4, 1.2, 1.1]})  # training never gets back below the start
    assert default_target(rows, window=1) == 1.1
    assert images_to_target(rows, 1.1, window=1)["1"]["mean"] == 0  # the initial model already is at it


def test_seeds_give_a_mean_curve_a_min_max_band_and_spread_of_images_to_target(tmp_path):
    rows = rows_of({(0, 1): [5, 4, 3, 3], (1, 1): [5, 3, 2, 2], (2, 1): [5, 4, 4, 4],
                    (0, 2): [5, 3, 2, 1], (1, 2): [5, 3, 3, 2], (2, 2): [5, 2, 2, 2]})
    images, mean, low, high = band(rows, 1, window=1)
    assert images == [0, 10, 20, 30]
    assert mean == pytest.approx([5, 11 / 3, 3, 3]) and low == [5, 3, 2, 2] and high == [5, 4, 4, 4]
    assert default_target(rows, window=1) == 4  # seed 2's best: the lowest loss every 1-edge seed reaches
    assert images_to_target(rows, 4, window=1)["1"]["per_seed"] == {"0": 10, "1": 10, "2": 10}
    reached = images_to_target(rows, 3, window=1)
    assert reached["1"] == {"mean": 15, "min": 10, "max": 20, "reached": 2, "runs": 3,
                            "per_seed": {"0": 20, "1": 10, "2": None}}
    assert reached["2"]["per_seed"] == {"0": 10, "1": 10, "2": 10} and reached["2"]["mean"] == 10
    assert final_loss(rows, window=1)["2"] == {"mean": pytest.approx(5 / 3), "min": 1, "max": 2}
    plot(rows, tmp_path / "figure7.png", window=1, target=3)
    assert (tmp_path / "figure7.png").stat().st_size > 10_000


def test_a_finished_run_is_resummarised_from_its_curves_into_another_folder(tmp_path, capsys):
    rows = rows_of({(0, 1): [5, 4, 3, 3], (1, 1): [5, 3, 2, 2], (2, 1): [5, 4, 4, 4],
                    (0, 4): [5, 3, 2, 1], (1, 4): [5, 3, 3, 2], (2, 4): [5, 2, 2, 2]})
    run = tmp_path / "run"
    run.mkdir()
    write_csv(rows, run / "curves.csv")
    written = {"target_loss": 99.0, "cost": {"1": {"sampled": 1}}, "smoothing_rounds": 1, "head": "affine"}
    (run / "summary.json").write_text(json.dumps(written))
    assert figure7_main([str(run), str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["target_loss"] == 4 and summary["cost"] == written["cost"] and summary["head"] == "affine"
    assert summary["images_to_target"]["4"]["per_seed"] == {"0": 10, "1": 10, "2": 10}
    assert (tmp_path / "out" / "figure7.png").stat().st_size > 10_000
    assert json.loads((run / "summary.json").read_text()) == written  # the run is only read
    (run / "curves.csv").write_text("seed,edges\n0,one\n")
    assert figure7_main([str(run), str(tmp_path / "again")]) == 2
    error = capsys.readouterr().err.strip()
    assert "curves.csv, line 2" in error and len(error.splitlines()) == 1


def test_with_sampling_the_images_per_edge_are_the_mean_over_all_edges():
    assert images_per_edge(3, 16, 4, 4) == 48  # every edge trains every round
    assert images_per_edge(4, 8, 4, 100) == 1.28  # each of 100 edges trains in 4 % of the rounds
    assert images_per_edge(5, 8, 4, 16) == 10


def test_sample_is_a_count_capped_at_n_or_a_fraction_of_it():
    assert [sampled_edges(4, n, 0) for n in (1, 4, 16, 100)] == [1, 4, 4, 4]
    assert [sampled_edges(0.25, n, 0) for n in (1, 4, 16, 100)] == [1, 1, 4, 25]
    assert [sampled_edges(None, n, 4) for n in (1, 100)] == [1, 4]  # the profile's K
    assert sampled_edges(None, 7, 0) == 7  # no sampling: every edge


def test_server_step_rules_by_cohort_size():
    assert [server_learning_rate("sqrt", n) for n in (1, 4)] == [1.0, 2.0]
    assert [server_learning_rate("linear", n) for n in (1, 4)] == [1.0, 4.0]
    assert [server_momentum("scaled", n) for n in (1, 2, 4)] == [0.0, 0.5, 0.75]
    assert server_momentum("0.9", 4) == 0.9
    with pytest.raises(ValueError, match="--server-momentum takes"):
        server_momentum("fast", 2)


def test_each_run_seed_gives_every_edge_its_own_sampling_seed():
    assert [edge_seed(0, i) for i in range(4)] == [0, 1, 2, 3]  # the committed curves' seeds
    seeds = {edge_seed(run, i) for run in range(3) for i in range(4)}
    assert len(seeds) == 12
    with pytest.raises(ValueError, match="edge index"):
        edge_seed(1, 1000)


@pytest.mark.parametrize(("args", "message"), [
    (["--edges", "0", "2"], "at least 1"),
    (["--edges", "2", "2"], "distinct"),
    (["--edges", "1", "2", "--crash-edge", "2", "--at-round", "1"], "0 to 1 here, got 2"),
    (["--edges", "2", "--crash-edge", "0", "--at-round", "3", "--rounds", "2"], "within 1…2"),
    (["--edges", "2", "--smoothing", "0"], "--smoothing"),
    (["--edges", "4", "--sample", "5"], "--sample 5 is more than the 4 edges"),
    (["--edges", "4", "--sample", "2.5"], "--sample takes a number of edges K ≥ 1 or a fraction"),
    (["--edges", "2", "--seeds", "0", "1", "0"], "--seeds lists 0 more than once"),
    (["--edges", "2", "--profile", "huge"], "--profile must be one of"),
    (["--edges", "2", "--media", "photos"], "--media must be samples or corpus"),
    (["--edges", "2", "--media", "corpus"], "no photo corpus at"),
])
def test_a_request_the_run_could_not_honour_is_refused_before_anything_runs(tmp_path, capsys, args, message,
                                                                            monkeypatch):
    monkeypatch.setenv("FEDVST_CACHE_DIR", str(tmp_path / "empty-cache"))  # no corpus there
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exited:
        simulate_cli(["--profile", "tiny", *args, "--out", str(out)])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_an_unreachable_ray_address_is_refused_in_one_line_naming_it(tmp_path, capsys, monkeypatch):
    from concurrent import futures

    import grpc

    monkeypatch.setattr("simulations.federated.RAY_CONNECT_S", 2.0)  # the silent listener is waited for this long
    closed = free_port()
    other_grpc = grpc.server(futures.ThreadPoolExecutor(2))  # issue 26: any gRPC server passed as a Ray head
    grpc_port = other_grpc.add_insecure_port("127.0.0.1:0")
    other_grpc.start()
    with socket.socket() as silent:  # accepts connections but is not a Ray head: it never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        for address, message in ((f"127.0.0.1:{closed}", f"cannot reach the Ray head at 127.0.0.1:{closed}"),
                                 (f"127.0.0.1:{silent.getsockname()[1]}", "is not a Ray head"),
                                 (f"127.0.0.1:{grpc_port}", "answers gRPC but is not a Ray head"),
                                 ("nowhere", "--ray-address takes the head's HOST:PORT")):
            with pytest.raises(SystemExit):  # each check waits at most RAY_CONNECT_S; ray.init retries for minutes
                simulate_cli(["--profile", "tiny", "--ray-address", address, "--out", str(tmp_path / "run")])
            assert message in capsys.readouterr().err
    other_grpc.stop(0)
    assert not (tmp_path / "run").exists()


def test_non_iid_edges_hold_disjoint_slices_and_iid_edges_hold_everything():
    own = [edge_slices(i, iid=False) for i in range(len(SLICES))]
    assert all(len(slices) == 1 for slices in own)
    assert len({slices[0]["clip"] for slices in own}) == len(SLICES)  # no two edges share a clip segment
    assert all(edge_slices(i, iid=True) == SLICES for i in range(4))


def test_sigterm_stops_a_running_simulation_and_everything_below_it(tmp_path):
    """Issue 26: SIGTERM did not stop fedvst simulate while Ray was starting or retrying."""
    import os
    import signal
    import time

    from fedvst.processes import descendants, is_zombie
    from tests import procs

    log = tmp_path / "simulate.log"
    process = procs.start(["simulate", "--profile", "tiny", "--out", str(tmp_path / "run"), "--no-progress"], log)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not [p for p in descendants(process.pid) if not is_zombie(p)]:
        time.sleep(0.5)  # until Ray's processes run below it
    assert process.poll() is None, log.read_text()
    tree = descendants(process.pid)
    os.kill(process.pid, signal.SIGTERM)  # the leader alone, as a shell's kill would
    try:  # 130 with our own line; 15 when it lands inside ray.init, whose handler exits with the signal number
        assert process.wait(120) in (130, 15), log.read_text()
    finally:
        procs.stop(process, signal.SIGKILL)
    assert process.returncode == 15 or "simulate stopped before it finished" in log.read_text()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and [p for p in tree if not is_zombie(p)]:
        time.sleep(0.5)
    assert not [p for p in tree if not is_zombie(p)]


def test_sigterm_in_the_middle_of_the_rounds_ends_the_process(tmp_path):
    """A simulation stopped after its first round printed its stop line and then stayed alive: Flower's
    ServerApp thread, waiting for replies from the stopped engine, kept the interpreter from exiting."""
    import os
    import signal
    import time

    from fedvst.processes import descendants, is_zombie
    from tests import procs

    log = tmp_path / "simulate.log"
    out = tmp_path / "run"
    process = procs.start(["simulate", "--profile", "tiny", "--rounds", "40", "--out", str(out), "--no-progress"], log)
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and process.poll() is None:
            histories = list(out.glob("seed_0/*/cloud/history.jsonl"))
            if histories and '"round": 1,' in histories[0].read_text():
                break  # the ServerApp is between rounds 1 and 40
            time.sleep(0.5)
        assert process.poll() is None and histories, log.read_text()
        tree = descendants(process.pid)
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(120) == 130, log.read_text()
    finally:
        procs.stop(process, signal.SIGKILL)
    assert "simulate stopped before it finished" in log.read_text()
    assert '"round": 1,' in histories[0].read_text()  # what was done is kept
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and [p for p in tree if not is_zombie(p)]:
        time.sleep(0.5)
    assert not [p for p in tree if not is_zombie(p)]  # Ray's processes went with it


def test_a_sigterm_whose_handler_swallowed_it_is_still_seen():
    """Ray's SIGTERM handler raises SystemExit, which Python drops inside a fork hook of ray.init;
    ``signals_seen`` still tells start_ray that the signal came."""
    import os
    import signal

    from simulations.federated import signals_seen

    previous = signal.signal(signal.SIGTERM, lambda *_: None)  # a handler whose effect is lost
    try:
        with signals_seen() as seen:
            os.kill(os.getpid(), signal.SIGTERM)
        with signals_seen() as quiet:
            pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert signal.SIGTERM in seen and not quiet
