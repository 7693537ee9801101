"""``bench_learning --figure``: held-out pairs as round 0, the last round and the built-in draw them."""

import numpy as np
import pytest
from PIL import Image

from fedvst.samples import write_heldout
from simulations.bench_learning import draw_rounds
from simulations.federated import untrained_builtin_checkpoint
from simulations.learning_figure import sheet_pairs
from stylizer.factory import builtin_checkpoint_path


def test_the_sheet_draws_one_row_a_pair_and_a_column_a_checkpoint(tmp_path):
    kept = tmp_path / "run"
    checkpoints = kept / "cloud" / "checkpoints"
    checkpoints.mkdir(parents=True)
    untrained_builtin_checkpoint(checkpoints / "round_000000.safetensors", 0)
    (checkpoints / "round_000003.safetensors").write_bytes(builtin_checkpoint_path().read_bytes())
    (checkpoints / "round_000003.json").write_bytes(builtin_checkpoint_path().with_suffix(".json").read_bytes())
    write_heldout(kept / "heldout")

    pairs = sheet_pairs(kept / "heldout", 3)
    assert len(pairs) == 3 and len({c for c, _ in pairs}) == 3 and sheet_pairs(kept / "heldout", 3) == pairs

    figure = draw_rounds(kept, tmp_path / "rounds.png", count=2)
    drawn = np.asarray(Image.open(figure).convert("RGB"))
    assert drawn.shape[0] > 200 and drawn.shape[1] > 5 * 150  # content, style, round 0, round 3, built-in
    assert drawn.std() > 10  # pictures, not a blank canvas


def test_an_empty_heldout_folder_is_one_clear_error(tmp_path):
    from simulations.learning_figure import round_sheet

    (tmp_path / "heldout" / "content").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no content/ and style/ pictures"):
        round_sheet(tmp_path / "heldout", {"built-in": builtin_checkpoint_path()}, tmp_path / "x.png")
