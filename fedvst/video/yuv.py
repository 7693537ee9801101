"""Frames in the encoder's own YUV 4:2:0 layout, so warping moves half the bytes of RGB.

``Frame420`` keeps luma (H, W) and interleaved chroma (H/2, W/2, 4) = U, V and two unused
zero channels, as uint8 with BT.601 limited range (what OpenCV's I420 conversion and FFmpeg's
yuv420p agree on). Sides must be even. The padding is for speed: OpenCV's bilinear remap has
a vectorised path for 4 channels but not for 2 (0.54 ms against 1.85 ms at 960×540).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fedvst.video.shrink import area_resize


@dataclass
class Frame420:
    """One frame as luma (H, W) and interleaved chroma (H/2, W/2, 4): U, V, 0, 0."""

    y: np.ndarray
    uv: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        return self.y.shape[0], self.y.shape[1]

    @classmethod
    def from_rgb(cls, rgb: np.ndarray) -> Frame420:
        """(H, W, 3) uint8 RGB with even sides → Frame420."""
        height, width = rgb.shape[:2]
        if height % 2 or width % 2:
            raise ValueError(f"YUV 4:2:0 needs even sides, got {width}×{height}")
        i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
        quarter = height * width // 4
        chroma = i420[height:].reshape(-1)
        u = chroma[:quarter].reshape(height // 2, width // 2)
        v = chroma[quarter:].reshape(height // 2, width // 2)
        unused = np.zeros_like(u)
        return cls(np.ascontiguousarray(i420[:height]), cv2.merge([u, v, unused, unused]))

    def i420(self) -> np.ndarray:
        """Planar I420 (H·3/2, W) uint8, the layout of ``av.VideoFrame.from_ndarray(..., 'yuv420p')``."""
        height, width = self.size
        u, v = cv2.extractChannel(self.uv, 0), cv2.extractChannel(self.uv, 1)
        return np.concatenate([self.y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(height * 3 // 2, width)

    def to_rgb(self) -> np.ndarray:
        """Back to (H, W, 3) uint8 RGB."""
        return cv2.cvtColor(self.i420(), cv2.COLOR_YUV2RGB_I420)


# BT.601 limited-range luma (16–235) → full-range gray (0–255), as OpenCV's RGB2GRAY would give
_FULL_RANGE = np.clip(np.round((np.arange(256) - 16.0) * (255.0 / 219.0)), 0, 255).astype(np.uint8)


@dataclass
class PlanarI420:
    """One frame as the decoder gives it and the encoder takes it: planar I420, (H·3/2, W) uint8
    (Y, then U, then V; BT.601 limited range; even H and W)."""

    planes: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        return self.planes.shape[0] * 2 // 3, self.planes.shape[1]

    def to_rgb(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB, converted by swscale exactly as the decoder's own RGB output
        (``read_frames`` without ``planar``) would have been."""
        import av

        return av.VideoFrame.from_ndarray(self.planes, format="yuv420p").to_ndarray(format="rgb24")

    def shrunk_rgb(self, size: tuple[int, int]) -> np.ndarray:
        """(h, w, 3) uint8 RGB at ``size`` = (h, w), e.g. ``stylizer.render.working_size`` (area
        resampling): what ``cv2.resize`` of ``to_rgb()`` gives, within a level or two, at a fraction
        of the cost, because the planes shrink before the conversion (the luma plane at ``size``, each
        chroma plane at half of it) and only the small frame is converted (OpenCV's BT.601
        limited-range I420 conversion)."""
        height, width = self.size
        out_h, out_w = size
        if (out_h, out_w) == (height, width):
            return self.to_rgb()
        even_w, even_h = out_w + out_w % 2, out_h + out_h % 2  # I420 needs even sides: convert, then crop
        quarter = height * width // 4
        chroma = self.planes[height:].reshape(-1)

        def shrink(plane: np.ndarray, target: tuple[int, int]) -> np.ndarray:
            return area_resize(plane, target).reshape(-1)

        small = np.concatenate([shrink(self.planes[:height], (even_h, even_w)),
                                shrink(chroma[:quarter].reshape(height // 2, width // 2), (even_h // 2, even_w // 2)),
                                shrink(chroma[quarter:].reshape(height // 2, width // 2), (even_h // 2, even_w // 2))])
        rgb = cv2.cvtColor(small.reshape(even_h * 3 // 2, even_w), cv2.COLOR_YUV2RGB_I420)
        return np.ascontiguousarray(rgb[:out_h, :out_w])

    def gray(self, size: tuple[int, int]) -> np.ndarray:
        """(h, w) uint8 full-range gray at ``size`` (area resampling) from the luma plane alone:
        what ``fedvst.video.flow.to_analysis`` gives for the RGB frame, within a few levels (swscale's
        RGB is clipped and rounded: on bikes.mp4 1.5 levels apart on average); flow and key-frame
        choice compare frames of one path with each other, never across paths."""
        height, width = self.size
        luma = self.planes[:height]
        if (height, width) != tuple(size):
            luma = area_resize(luma, tuple(size))
        return cv2.LUT(luma, _FULL_RANGE)
