"""area_resize is OpenCV's area resampling, taken by halves where it can."""

import cv2
import numpy as np
import pytest

from fedvst.samples import sample_video
from fedvst.video.io import read_frames
from fedvst.video.shrink import area_resize


@pytest.fixture(scope="module")
def frame_1080p() -> np.ndarray:
    image = next(iter(read_frames(sample_video(), limit=1))).image
    return cv2.resize(image, (1920, 1080), interpolation=cv2.INTER_CUBIC)


def _area(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("size", [(270, 480), (135, 240), (540, 960)])
def test_a_power_of_two_shrink_is_the_area_mean_up_to_rounding(frame_1080p, size):
    ours, theirs = area_resize(frame_1080p, size), _area(frame_1080p, size)
    assert ours.shape == theirs.shape and ours.dtype == np.uint8
    assert np.abs(ours.astype(np.int16) - theirs).max() <= 1


@pytest.mark.parametrize("size", [(288, 512), (72, 128), (601, 1001)])
def test_any_other_shrink_stays_close_to_the_area_mean(frame_1080p, size):
    ours, theirs = area_resize(frame_1080p, size), _area(frame_1080p, size)
    assert ours.shape == theirs.shape
    difference = np.abs(ours.astype(np.int16) - theirs)
    assert difference.mean() < 0.6 and np.percentile(difference, 99) <= 4, (difference.mean(), difference.max())


def test_odd_sides_an_enlargement_and_float_planes_are_resized_as_opencv_does(frame_1080p):
    odd = frame_1080p[:1079, :1917]
    assert np.array_equal(area_resize(odd, (270, 480)), _area(odd, (270, 480)))  # odd: no halving
    small = frame_1080p[:90, :160]
    assert np.array_equal(area_resize(small, (180, 320)), _area(small, (180, 320)))
    flow = np.random.default_rng(0).normal(size=(1080, 1920, 2)).astype(np.float32)
    assert np.allclose(area_resize(flow, (270, 480)), _area(flow, (270, 480)), atol=1e-5)
