import cv2
import numpy as np
import pytest

from fedvst.video.flow import FlowEstimator, to_analysis, upsample_flow
from fedvst.video.interpolate import Interpolator, to_rgb
from fedvst.video.metrics import ms_ssim, warping_error
from fedvst.video.warp import warp
from tests.fedvst.clips import camera_clip, with_occluder

SIZE = (192, 256)


def interior(a: np.ndarray, margin: int = 12) -> np.ndarray:
    return a[margin:-margin, margin:-margin].astype(np.float32)


def test_warping_with_computed_flow_reproduces_the_true_next_frame(photos):
    step = (2.5, 1.25)
    frames = camera_clip(photos["astronaut"], 2, step, SIZE)
    grays = [to_analysis(f, SIZE) for f in frames]
    flow = FlowEstimator()(grays[1], grays[0])
    assert np.median(flow[..., 0]) == pytest.approx(step[0], abs=0.25)
    assert np.median(flow[..., 1]) == pytest.approx(step[1], abs=0.25)
    predicted = warp(frames[0], flow)
    error = np.abs(interior(predicted) - interior(frames[1])).mean()
    assert error < 4.0, f"mean abs error {error:.2f} gray levels"
    assert ms_ssim(predicted, frames[1]) > 0.9


def test_flow_computed_small_and_upsampled_still_warps_well(photos):
    frames = camera_clip(photos["chelsea"], 2, (3.0, -2.0), (240, 320))
    small = (120, 160)
    flow = FlowEstimator()(to_analysis(frames[1], small), to_analysis(frames[0], small))
    predicted = warp(frames[0], upsample_flow(flow, (240, 320)))
    assert np.abs(interior(predicted, 16) - interior(frames[1], 16)).mean() < 6.0


@pytest.mark.parametrize("yuv", [False, True])
def test_two_sided_beats_one_sided_with_an_occluder(photos, yuv):
    """Identity 'stylization': the true intermediate frames are the ground truth."""
    clip = camera_clip(photos["astronaut"], 9, (2.0, 0.0), SIZE)
    patch = photos["coffee"][100:160, 200:260]
    clip = with_occluder(clip, patch, start=(180, 60), velocity=(-16, 0))
    grays = [to_analysis(f, SIZE) for f in clip]
    flow = FlowEstimator()
    interpolator = Interpolator(SIZE, yuv=yuv)
    key_a, key_b = interpolator.key(clip[0]), interpolator.key(clip[8])
    one_errors, two_errors = [], []
    for i in range(1, 8):
        to_a = flow(grays[i], grays[0])
        one = to_rgb(interpolator.one_sided(key_a, to_a))
        two = to_rgb(interpolator.two_sided(grays[i], i / 8, key_a, grays[0], to_a, key_b, grays[8]))
        one_errors.append(np.abs(interior(one) - interior(clip[i])).mean())
        two_errors.append(np.abs(interior(two) - interior(clip[i])).mean())
    assert np.mean(two_errors) < 0.8 * np.mean(one_errors), (one_errors, two_errors)


def test_metrics_behave(photos):
    image = photos["astronaut"][:200, :200]
    assert ms_ssim(image, image) == pytest.approx(1.0)
    noisy = np.clip(image.astype(int) + np.random.default_rng(0).integers(-40, 40, image.shape), 0, 255)
    assert ms_ssim(image, noisy.astype(np.uint8)) < 0.95
    frames = camera_clip(photos["astronaut"], 3, (2.0, 1.0), SIZE)
    grays = [to_analysis(f, SIZE) for f in frames]
    flicker = [frames[0], np.clip(frames[1].astype(int) + 30, 0, 255).astype(np.uint8), frames[2]]
    assert warping_error(frames, grays) < 0.2 * warping_error(flicker, grays)


def test_yuv_layout_round_trips(photos):
    from fedvst.video.yuv import Frame420

    image = photos["astronaut"][:100, :150]
    back = Frame420.from_rgb(image).to_rgb()
    assert np.abs(back.astype(int) - image.astype(int)).mean() < 3.0
    with pytest.raises(ValueError, match="even"):
        Frame420.from_rgb(photos["astronaut"][:101, :150])


@pytest.mark.parametrize("small,size", [((270, 480), (1080, 1920)), ((68, 160), (97, 151)), ((96, 128), (96, 128))])
def test_flow_to_maps_equals_grid_plus_upsampled_flow(small, size):
    from fedvst.video.warp import FlowToMaps, Grid

    rng = np.random.default_rng(0)
    flow = (rng.standard_normal((*small, 2)) * 3).astype(np.float32)
    grid = Grid(*size)
    up = upsample_flow(flow, size)
    expected = np.dstack([grid.xs + up[..., 0], grid.ys + up[..., 1]])
    np.testing.assert_allclose(FlowToMaps(small, size)(flow), expected, atol=1e-3)


@pytest.mark.parametrize("small,size", [((270, 480), (1080, 1920)), ((270, 480), (720, 1280)),
                                        ((270, 480), (2160, 3840)), ((270, 480), (1078, 1918))])
def test_flow_to_maps_bands_equal_the_whole(small, size):
    from fedvst.video.warp import FlowToMaps

    maps = FlowToMaps(small, size)
    flow = (np.random.default_rng(1).standard_normal((*small, 2)) * 3).astype(np.float32)
    bands = [maps.maps(maps.absolute(flow), stripe) for stripe in maps.stripes]
    assert [s.out0 for s in maps.stripes[1:]] == [s.out1 for s in maps.stripes[:-1]]
    np.testing.assert_allclose(np.concatenate(bands), maps(flow), atol=1e-4)
    if size[0] % small[0] == 0:  # integer scales split into cache-sized bands
        assert len(maps.stripes) > 4


@pytest.mark.parametrize("size", [(1080, 1920), (97, 151)])
def test_banded_warp_equals_whole_frame_remap(photos, size):
    from fedvst.video.flow import analysis_size
    from fedvst.video.warp import FlowToMaps, remap
    from fedvst.video.yuv import Frame420

    image = cv2.resize(photos["astronaut"], (size[1], size[0]))
    small = analysis_size(*size)
    flow = (np.random.default_rng(2).standard_normal((*small, 2)) * 4).astype(np.float32)
    interpolator = Interpolator(size)
    key = interpolator.key(image)
    got = interpolator.one_sided(key, flow)
    if interpolator.yuv:
        half = (size[0] // 2, size[1] // 2)
        np.testing.assert_array_equal(got.y, remap(key.y, FlowToMaps(small, size)(flow)))
        np.testing.assert_array_equal(got.uv, remap(key.uv, FlowToMaps(small, half)(flow)))
        assert isinstance(got, Frame420)
    else:
        np.testing.assert_array_equal(got, remap(key, FlowToMaps(small, size)(flow)))


def test_warp_into_an_output_of_the_wrong_shape_is_refused(photos):
    from fedvst.video.warp import FlowToMaps, remap

    image = photos["astronaut"][:96, :128]
    maps = FlowToMaps((48, 64), (96, 128))(np.ones((48, 64, 2), np.float32))
    out = np.zeros((96, 128, 3), np.uint8)
    assert remap(image, maps, out=out) is not None and np.array_equal(out, remap(image, maps))
    with pytest.raises(ValueError, match="out is"):  # OpenCV would quietly write elsewhere
        remap(image, maps, out=np.zeros((90, 128, 3), np.uint8))
