"""``bench_learning --rescore``: a kept run's checkpoints scored again on more held-out pairs."""

import pytest

from fedvst.samples import write_heldout
from simulations.bench_learning import CLOUD_BASE_SIZE, kept_checkpoint_rounds, kept_heldout, rescore
from simulations.federated import fresh_checkpoint


def test_rescore_scores_the_kept_checkpoints_on_the_clouds_own_pairs(tmp_path):
    from cloud_server.heldout import HeldOutSet
    from stylizer import load_checkpoint
    from stylizer.factory import model_from_checkpoint
    from stylizer.training import evaluate

    kept = tmp_path / "run"
    checkpoints = kept / "cloud" / "checkpoints"
    checkpoints.mkdir(parents=True)
    for number, seed in ((0, 0), (1, 1), (2, 2)):  # three different models standing in for rounds
        fresh_checkpoint(checkpoints / f"round_{number:06d}.safetensors", "image", 0.25, seed)
    write_heldout(kept / "heldout")
    assert kept_checkpoint_rounds(kept / "cloud") == [1, 2] and kept_heldout(kept) == kept / "heldout"

    result = rescore(kept, 6)

    assert result["heldout_pairs"] == 6 and set(result["heldout_loss_per_round"]) == {"0", "1", "2"}
    first = load_checkpoint(checkpoints / "round_000000.safetensors")
    held = HeldOutSet(kept / "heldout", {"encoder": first.metadata["encoder"], "config": first.metadata["config"]},
                      CLOUD_BASE_SIZE, 6)
    totals = {}
    for number in (0, 1, 2):  # what the cloud's own scoring gives on the same batches
        model = model_from_checkpoint(load_checkpoint(checkpoints / f"round_{number:06d}.safetensors"),
                                      allow_download=False)
        totals[number] = evaluate(model, held.batches).total
        assert result["heldout_loss_per_round"][str(number)] == pytest.approx(totals[number], rel=1e-5)
    assert len({round(t) for t in totals.values()}) == 3  # the three models do score differently
    step = result["paired_noise_vs_previous_round"]["2"]
    assert step["batches"] == 3 and step["standard_error"] > 0
    assert step["mean"] == pytest.approx(totals[2] - totals[1], rel=1e-4)
    assert result["minus_round_0_paired"]["2"]["mean"] == pytest.approx(totals[2] - totals[0], rel=1e-4)
