import itertools

import numpy as np
import pytest

from fedvst.video.flow import FlowEstimator, to_analysis
from fedvst.video.keyframes import KeyFramePolicy, KeyFrameSelector
from tests.fedvst.clips import camera_clip

SIZE = (96, 128)


@pytest.fixture(scope="module")
def clip_with_cut(photos):
    """40 frames panning over one photo, then a cut to 20 frames of another; cut at index 40."""
    first = camera_clip(photos["astronaut"], 40, (3.0, 1.0), SIZE)
    second = camera_clip(photos["coffee"], 20, (-2.0, 0.5), SIZE, origin=(150, 100))
    return [to_analysis(f, SIZE) for f in first + second]


def select(grays: list[np.ndarray], policy: KeyFramePolicy, codec: set[int] = frozenset()) -> list[int]:
    selector = KeyFrameSelector(policy)
    flow = FlowEstimator()
    keys: list[int] = []
    for index, gray in enumerate(grays):
        to_key = flow(gray, grays[keys[-1]]) if keys else None
        if selector.decide(index, gray, codec_key=index in codec, flow_to_key=to_key).is_key:
            keys.append(index)
    return keys


@pytest.mark.parametrize("mode", ["adaptive", "interval", "codec"])
def test_key_frames_respect_bounds_and_cuts(clip_with_cut, mode):
    policy = KeyFramePolicy(mode=mode, interval=7, min_interval=3, max_interval=12, max_unexplained=0.02)
    keys = select(clip_with_cut, policy, codec={0, 5, 6, 20, 33, 50})
    assert keys[0] == 0
    assert 40 in keys, keys
    gaps = np.diff([*keys, len(clip_with_cut)])
    assert gaps.max() <= 12, keys
    for a, b in itertools.pairwise(keys):
        assert b - a >= 3 or b == 40, keys
    if mode == "interval":
        assert keys[:4] == [0, 7, 14, 21]


def test_adaptive_follows_motion(clip_with_cut):
    """Faster motion makes the warped key frame explain less, so keys come more often."""
    policy = KeyFramePolicy(min_interval=1, max_interval=60, max_unexplained=0.05)
    calm = select(clip_with_cut[:40:4], policy)  # every 4th frame = 4x faster motion
    calmer = select(clip_with_cut[:40], policy)
    assert len(calm) / 10 >= len(calmer) / 40


def test_bad_policy_is_refused():
    with pytest.raises(ValueError):
        KeyFramePolicy(mode="random")
    with pytest.raises(ValueError):
        KeyFramePolicy(min_interval=5, max_interval=2)
