"""The edge's style bank: what it holds, and one clear line for a bank an edge cannot use."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from edge_client.server import EdgeServer, EdgeSettings
from edge_client.style_bank import BANK_SIDE, bank_pictures, check_style_bank
from fedvst.samples import TRAINING_PHOTOS
from stylizer import save_model
from tests import procs


def test_the_default_bank_is_the_sample_media_training_photos_shrunk(tmp_path):
    assert check_style_bank("samples") == f"{len(TRAINING_PHOTOS)} style pictures (samples)"
    pictures = bank_pictures("samples")
    assert len(pictures) == len(TRAINING_PHOTOS)
    assert all(p.dtype == np.uint8 and p.ndim == 3 and max(p.shape[:2]) <= BANK_SIDE for p in pictures)
    assert bank_pictures("none") == ()


def test_a_folder_bank_holds_its_pictures_shrunk(tmp_path):
    rng = np.random.default_rng(0)
    for name, size in (("wide.png", (300, 1280)), ("small.jpg", (120, 160))):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a picture")
    assert check_style_bank(str(tmp_path)) == f"2 style pictures ({tmp_path})"
    shapes = sorted(p.shape for p in bank_pictures(str(tmp_path)))
    assert shapes == [(120, 160, 3), (150, 640, 3)]


@pytest.mark.parametrize("case", ["missing", "empty", "unreadable"])
def test_an_unusable_bank_is_refused_in_one_line_naming_what_is_wrong(tmp_path, case):
    folder = tmp_path / "bank"
    if case != "missing":
        folder.mkdir()
    if case == "unreadable":
        (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    expected = {"missing": "is missing", "empty": "holds no pictures", "unreadable": "broken.jpg is unreadable"}[case]
    with pytest.raises(ValueError, match=expected):
        check_style_bank(str(folder))
    with pytest.raises(ValueError, match=expected):  # before an edge starts
        EdgeSettings(port=procs.free_port(), data_dir=tmp_path / "edge", style_bank=str(folder))
    refused = subprocess.run([sys.executable, "-m", "fedvst.cli", "edge", "serve", "--port", str(procs.free_port()),
                              "--data-dir", str(tmp_path / "edge"), "--style-bank", str(folder)],
                             capture_output=True, text=True, timeout=300, env={**os.environ, "FEDVST_OFFLINE": "1"})
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.returncode == 2 and len(errors) == 1 and expected in errors[0], refused.stderr
    assert not (tmp_path / "edge").exists()  # refused before any work
    if case == "missing":  # a bank gone after the edge started: training goes on without it
        assert bank_pictures(str(folder)) == ()


def test_the_bank_reaches_the_trainer_and_the_client_app(tmp_path, small_model):
    save_model(tmp_path / "model.safetensors", small_model, round=1)
    bank = tmp_path / "bank"
    bank.mkdir()
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(bank / "style.png")
    edge = EdgeServer(EdgeSettings(port=procs.free_port(), data_dir=tmp_path / "edge", cloud="127.0.0.1:9",
                                   initial_checkpoint=tmp_path / "model.safetensors", style_bank=str(bank)))
    assert edge.trainer_command()[-2:] == ["--style-bank", str(bank.resolve())]
    assert f"style-bank='{bank.resolve()}'" in edge.supernode_command()[4]
