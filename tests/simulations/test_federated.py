"""The N-edge simulation end to end (tiny profile): curves, axis, learning, crash and rejoin."""

import csv
import json

import pytest

from simulations.federated import (
    CSV_COLUMNS,
    SLICES,
    default_target,
    edge_seed,
    edge_slices,
    images_to_target,
    main,
    server_learning_rate,
    server_momentum,
)
from stylizer import load_checkpoint


@pytest.mark.slow
def test_two_edges_learn_and_a_crashed_edge_rejoins(tmp_path):
    summary = main(["--edges", "2", "--profile", "tiny", "--rounds", "3", "--out", str(tmp_path),
                    "--crash-edge", "1", "--at-round", "2"])
    with (tmp_path / "curves.csv").open() as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == CSV_COLUMNS
        rows = list(reader)
    assert [int(r["round"]) for r in rows] == [0, 1, 2, 3]
    assert [int(r["images_per_edge"]) for r in rows] == [0, 4, 8, 12]  # tiny: 4 images per sync
    assert all(r["edges"] == "2" for r in rows)
    assert float(rows[-1]["total"]) < float(rows[0]["total"])
    for r in rows:
        assert float(r["total"]) == pytest.approx(float(r["content"]) + float(r["style"]), rel=1e-5)
    assert "edge 1 crashed" in rows[2]["event"] and "edge 1 restored (registry round 2)" in rows[2]["event"]
    history = [json.loads(line) for line in (tmp_path / "edges_2" / "cloud" / "history.jsonl").read_text()
               .splitlines()]
    assert [len(h["nodes"]) for h in history] == [0, 2, 1, 2]  # round 2 went on without the crashed edge
    final = load_checkpoint(tmp_path / "edges_2" / "cloud" / "checkpoints" / "round_000003.safetensors")
    for edge in (0, 1):  # both edges serve exactly the global model after the last round
        slot = load_checkpoint(tmp_path / "edges_2" / "edges" / f"edge_{edge}" / "model" / "current.safetensors")
        assert slot.sha256 == final.sha256
    assert (tmp_path / "figure7.png").stat().st_size > 10_000
    totals = [float(r["total"]) for r in rows]
    smoothed = [sum(totals[max(0, i - 2):i + 1]) / len(totals[max(0, i - 2):i + 1]) for i in range(len(totals))]
    assert summary["target_loss"] == pytest.approx(min(smoothed), rel=1e-5)  # trailing 3-round mean
    assert summary["images_to_target"]["2"] == 4 * smoothed.index(min(smoothed))


def test_images_to_target_picks_the_first_round_at_or_below_target():
    rows = [{"edges": n, "round": r, "images_per_edge": 10 * r, "total": loss}
            for n, losses in {1: [5, 4, 3, 2.5], 4: [5, 3, 2, 1.5]}.items() for r, loss in enumerate(losses)]
    assert default_target(rows, window=1) == 2.5
    assert images_to_target(rows, 2.5, window=1) == {"1": 30, "4": 20}
    assert images_to_target(rows, 1.0, window=1) == {"1": None, "4": None}
    # smoothed over 3 rounds: 1 edge gets to (4 + 3 + 2.5) / 3; 4 edges are at (5 + 3 + 2) / 3 in round 2
    assert default_target(rows) == pytest.approx(9.5 / 3)
    assert images_to_target(rows, 9.5 / 3) == {"1": 30, "4": 30}
    assert images_to_target(rows, 3.4) == {"1": 30, "4": 20}


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
])
def test_a_request_the_run_could_not_honour_is_refused_before_anything_runs(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exited:
        main([*args, "--profile", "tiny", "--out", str(out)])
    assert exited.value.code == 2 and message in capsys.readouterr().err
    assert not out.exists()


def test_non_iid_edges_hold_disjoint_slices_and_iid_edges_hold_everything():
    own = [edge_slices(i, iid=False) for i in range(len(SLICES))]
    assert all(len(slices) == 1 for slices in own)
    assert len({slices[0]["clip"] for slices in own}) == len(SLICES)  # no two edges share a clip segment
    assert all(edge_slices(i, iid=True) == SLICES for i in range(4))
