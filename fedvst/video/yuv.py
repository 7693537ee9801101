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
