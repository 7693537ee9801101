"""bench_keyframes' coarse check sees what a field sees, and its interpolation covers every non-key frame."""

import numpy as np

from fedvst.samples import sample_video
from fedvst.video.flow import analysis_size, to_analysis
from fedvst.video.io import read_frames
from fedvst.video.keyframes import KeyFramePolicy, KeyFrameSelector
from simulations.bench_keyframes import CoarseSelector, interpolated_fields


def _first_frame_gray() -> np.ndarray:
    image = next(iter(read_frames(sample_video(), limit=1))).image
    return to_analysis(image, analysis_size(*image.shape[:2]))


def test_the_coarse_check_ignores_pixel_noise_and_sees_a_changed_region():
    key = _first_frame_gray()
    rng = np.random.default_rng(0)
    noisy = key.astype(np.int16)
    speckled = rng.random(key.shape) < 0.2  # a fifth of the pixels off by ±40 levels: texture, not content
    noisy[speckled] += rng.choice(np.array([-40, 40], dtype=np.int16), size=int(speckled.sum()))
    noisy = np.clip(noisy, 0, 255).astype(np.uint8)
    changed = key.copy()
    changed[40:140, 100:260] = np.clip(changed[40:140, 100:260].astype(np.int16) + 80, 0, 255)  # a region lit up
    still = np.zeros((*key.shape, 2), dtype=np.float32)
    for selector in (KeyFrameSelector(KeyFramePolicy()), CoarseSelector(KeyFramePolicy(), 60)):
        assert selector.decide(0, key).is_key
    fine, coarse = KeyFrameSelector(KeyFramePolicy()), CoarseSelector(KeyFramePolicy(), 60)
    fine.decide(0, key)
    coarse.decide(0, key)
    assert fine.unexplained_fraction(noisy, still) > 0.15
    assert coarse.unexplained_fraction(noisy, still) < 0.01
    assert coarse.unexplained_fraction(changed, still) > 0.15
    assert fine.unexplained_fraction(changed, still) > 0.15


def test_every_frame_but_the_keys_gets_one_blended_field():
    grays = [np.full((27, 48), 100 + i, dtype=np.uint8) for i in range(7)]
    fields = [np.full((3, 4, 1, 12), float(i), dtype=np.float32) for i in range(7)]
    flows = [None] + [np.zeros((27, 48, 2), dtype=np.float32) for _ in range(6)]
    blended = dict(interpolated_fields([0, 4], flows, grays, fields))
    assert sorted(blended) == [1, 2, 3, 5, 6]
    assert np.allclose(blended[5], fields[4]) and np.allclose(blended[6], fields[4])  # after the last key: one-sided
    means = [float(blended[i].mean()) for i in (1, 2, 3)]  # between keys: a mix of keys 0 and 4, nearer the nearer
    assert 0.0 < means[0] < means[1] < means[2] < 4.0, means
