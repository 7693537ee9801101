"""Optical flow on the original frames (seeds/000 §3.2), computed small and upsampled.

Flow convention: ``flow(a, b)`` is the field F on a's pixel grid with
``a(x) ≈ b(x + F(x))`` (backward-warping b with F reproduces a). Fields are float32
(H, W, 2) in pixels (dx, dy) at the resolution they were computed at.
"""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_FLOW_WIDTH = 480


def analysis_size(height: int, width: int, flow_width: int = DEFAULT_FLOW_WIDTH) -> tuple[int, int]:
    """(h, w) at which flow is computed: at most ``flow_width`` wide, aspect kept, at least 8 px."""
    if width <= flow_width:
        return height, width
    return max(8, round(height * flow_width / width)), flow_width


def to_analysis(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 RGB → (h, w) uint8 gray at ``size`` (area resampling)."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if gray.shape != size:
        gray = cv2.resize(gray, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return gray


class FlowEstimator:
    """OpenCV DIS optical flow; one instance per thread (it keeps internal buffers)."""

    def __init__(self, preset: int = cv2.DISOPTICAL_FLOW_PRESET_FAST) -> None:
        self._dis = cv2.DISOpticalFlow_create(preset)

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """flow(a, b) for two (h, w) uint8 gray frames; (h, w, 2) float32."""
        return self._dis.calc(a, b, None)


def upsample_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a (h, w, 2) field to ``size`` = (H, W), scaling the vectors to the new pixels."""
    h, w = flow.shape[:2]
    if (h, w) == tuple(size):
        return flow
    up = cv2.resize(flow, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    up[..., 0] *= size[1] / w
    up[..., 1] *= size[0] / h
    return up
