"""Optical flow on the original frames (seeds/000 §3.2), computed small and upsampled.

Flow convention: ``flow(a, b)`` is the field F on a's pixel grid with
``a(x) ≈ b(x + F(x))`` (backward-warping b with F reproduces a). Fields are float32
(H, W, 2) in pixels (dx, dy) at the resolution they were computed at.
"""

from __future__ import annotations

import cv2
import numpy as np

from fedvst.video.shrink import area_resize

DEFAULT_FLOW_WIDTH = 480
# DIS presets. Pixel warping moves the stylized pixels themselves, so it keeps FAST's variational
# refinement (sub-pixel, smooth flow). A colour field has one cell per ~60–120 output pixels and
# ``fedvst.video.field_warp`` averages the flow over each cell, so field mode uses ULTRAFAST (no
# refinement, patch stride 5): half the milliseconds (a 1080p frame's 480-px analysis frame, AMD
# EPYC AVX2: 1.3 against 2.8 ms) for an average that barely moves (docs/benchmarks.md, 2026-12-07).
PIXEL_FLOW_PRESET = cv2.DISOPTICAL_FLOW_PRESET_FAST
FIELD_FLOW_PRESET = cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST


def analysis_size(height: int, width: int, flow_width: int = DEFAULT_FLOW_WIDTH) -> tuple[int, int]:
    """(h, w) at which flow is computed: at most ``flow_width`` wide, aspect kept, at least 8 px."""
    if width <= flow_width:
        return height, width
    return max(8, round(height * flow_width / width)), flow_width


def to_analysis(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 RGB → (h, w) uint8 gray at ``size`` (area resampling)."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if gray.shape != size:
        gray = area_resize(gray, size)
    return gray


class FlowEstimator:
    """OpenCV DIS optical flow; one instance per thread (it keeps internal buffers). ``preset``: a
    ``cv2.DISOPTICAL_FLOW_PRESET_*`` (``PIXEL_FLOW_PRESET`` or ``FIELD_FLOW_PRESET``)."""

    def __init__(self, preset: int = PIXEL_FLOW_PRESET) -> None:
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
