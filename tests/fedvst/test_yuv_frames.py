"""Frames read in the decoder's own I420 planes: the same pictures as the RGB decode."""

import numpy as np
import pytest

from fedvst.pipeline import to_working
from fedvst.samples import sample_video
from fedvst.video.flow import to_analysis
from fedvst.video.io import read_frames
from fedvst.video.yuv import PlanarI420
from stylizer.render import working_size
from tests.fedvst.clips import camera_clip, write_clip


def test_planar_frames_are_the_rgb_frames_and_their_gray_is_the_analysis_gray():
    rgb = list(read_frames(sample_video(), step=40, limit=4))
    planar = list(read_frames(sample_video(), step=40, limit=4, planar=True))
    assert [f.index for f in planar] == [f.index for f in rgb] and [f.pts for f in planar] == [f.pts for f in rgb]
    for a, b in zip(planar, rgb, strict=True):
        assert isinstance(a.image, PlanarI420) and a.image.size == b.image.shape[:2]
        assert np.array_equal(a.image.to_rgb(), b.image)  # swscale's conversion, as the RGB decode does it
        size = (b.image.shape[0] // 3, b.image.shape[1] // 3)
        difference = np.abs(a.image.gray(size).astype(int) - to_analysis(b.image, size).astype(int))
        # BT.601's luma expanded to full range; swscale's RGB (clipped, rounded) lands 1–2 levels higher
        assert difference.max() <= 5 and difference.mean() < 2.0, (difference.max(), difference.mean())


def test_a_key_frame_shrunk_in_its_planes_is_the_shrunk_rgb_frame():
    """What the pipeline sends the DNN on the I420 path: the RGB path's working-size frame (same shape,
    odd heights included) within a level or two, and the frame itself when it is already small."""
    frame = next(iter(read_frames(sample_video(), planar=True))).image
    width = frame.size[1]
    rgb = frame.to_rgb()
    for max_width in (width // 4, 128, 100, width // 2 + 2):
        shrunk, reference = frame.shrunk_rgb(working_size(*frame.size, max_width)), to_working(rgb, max_width)
        assert shrunk.shape == reference.shape and shrunk.dtype == np.uint8, (max_width, shrunk.shape)
        difference = np.abs(shrunk.astype(int) - reference.astype(int))
        assert difference.mean() < 2.5 and np.percentile(difference, 99) <= 12, (max_width, difference.mean())
    assert any(to_working(rgb, w).shape[0] % 2 for w in (width // 4, 128, 100, width // 2 + 2))  # an odd height
    assert np.array_equal(frame.shrunk_rgb(frame.size), rgb)


def test_a_video_with_odd_sides_is_not_read_as_planar(tmp_path, photos):
    clip = write_clip(tmp_path / "odd.mp4", camera_clip(photos["astronaut"], 3, (1.0, 0.0), (51, 64)))
    with pytest.raises(ValueError, match="cannot be read as planar I420"):
        next(read_frames(clip, planar=True))
    assert next(read_frames(clip)).image.shape == (51, 64, 3)
