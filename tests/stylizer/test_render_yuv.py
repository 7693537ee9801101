"""The YUV 4:2:0 renderer against the RGB path it replaces for video frames."""

import numpy as np
import pytest

from fedvst.samples import sample_video
from fedvst.video.io import read_frames
from stylizer.field import ColourField, identity_field
from stylizer.render import render_field
from stylizer.render_yuv import RGB_TO_YUV, YUV_OFFSET, render_field_i420


def _rgb_path(planes: np.ndarray, field: ColourField) -> tuple[np.ndarray, np.ndarray]:
    """What the RGB path does to a decoded I420 frame: chroma upsampled (nearest), converted to RGB,
    rendered, converted back to 4:2:0 with each 2×2 block's chroma averaged; also its RGB output."""
    import cv2

    height, width = planes.shape[0] * 2 // 3, planes.shape[1]
    rendered = render_field(cv2.cvtColor(planes, cv2.COLOR_YUV2RGB_I420), field)
    yuv = rendered.astype(np.float64) @ RGB_TO_YUV.T + YUV_OFFSET
    chroma = yuv[..., 1:].reshape(height // 2, 2, width // 2, 2, 2).mean(axis=(1, 3))
    planar = np.concatenate([yuv[..., 0].reshape(-1), chroma[..., 0].reshape(-1), chroma[..., 1].reshape(-1)])
    return np.clip(np.round(planar), 0, 255).astype(np.uint8).reshape(planes.shape), rendered


def test_rendering_in_yuv_equals_rendering_in_rgb_on_real_frames_clipped_colours_included():
    import cv2

    rng = np.random.default_rng(3)
    frames = [frame.image for frame in read_frames(sample_video(), step=90, limit=3)]  # bikes: door, street, shop
    for number, frame in enumerate(frames):
        planes = cv2.cvtColor(frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2], cv2.COLOR_RGB2YUV_I420)
        grid = ((9, 16), (5, 7), (1, 1))[number]
        field = ColourField((identity_field(grid, 1).coefficients + rng.normal(0, 0.25, (*grid, 1, 12)))
                            .astype(np.float32))  # strong casts and gains: many colours leave the RGB cube
        expected, rendered = _rgb_path(planes, field)
        got = render_field_i420(planes, field)
        difference = np.abs(got.astype(int) - expected.astype(int))
        clipped = ((rendered == 0) | (rendered == 255)).any(axis=2).mean()
        assert clipped > 0.02 or grid == (1, 1), clipped  # the test covers clipping, not only the easy part
        # the RGB path rounds its input to 8-bit RGB (±0.5 a channel) before a gain of up to ~2: a level more
        assert difference.max() <= 2 and (difference > 1).mean() < 1e-4, (grid, difference.max(),
                                                                            (difference > 1).mean())
        assert (difference == 0).mean() > 0.5
    identity = render_field_i420(planes, identity_field((3, 4), 1))
    assert np.abs(identity.astype(int) - planes.astype(int)).max() <= 1  # the identity leaves a frame alone


def test_the_yuv_renderer_refuses_what_it_cannot_render():
    planes = np.zeros((48, 32), np.uint8)  # a 32×32 frame
    with pytest.raises(ValueError, match="plain fields"):
        render_field_i420(planes, identity_field((2, 2), 4))
    with pytest.raises(ValueError, match="planar I420"):
        render_field_i420(np.zeros((32, 32, 3), np.uint8), identity_field((2, 2), 1))
    for shape in ((44, 32), (48, 33)):  # no whole number of chroma rows; an odd width
        with pytest.raises(ValueError, match="planar I420"):
            render_field_i420(np.zeros(shape, np.uint8), identity_field((2, 2), 1))
    with pytest.raises(ValueError, match="overlap"):
        render_field_i420(planes, identity_field((2, 2), 1), out=planes)
