"""Shared fixtures: offline, 2 threads, small seeded models, real sample photos."""

from __future__ import annotations

import os

os.environ.setdefault("FEDVST_OFFLINE", "1")  # tests never download anything

import numpy as np
import pytest
import torch

from fedvst.samples import sample_photo
from stylizer import StylizerConfig, build_model
from stylizer.encoder_weights import seeded_weights
from stylizer.images import load_image

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def encoder_weights():
    return seeded_weights(0, announce=False)


@pytest.fixture()
def small_model(encoder_weights):
    """A freshly initialised relu3_1 stylizer with a narrow decoder (fast on CPU)."""
    torch.manual_seed(0)
    return build_model(StylizerConfig(decoder_width=0.25, matrix_dim=16), encoder_weights)


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """A few real photos from scikit-image, (H, W, 3) uint8. Tests that train use only the training split's
    (``fedvst.samples.TRAINING_PHOTOS``); ``chelsea`` is held out and only ever stylized or measured."""
    names = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left")
    return {name: load_image(sample_photo(name)) for name in names}
