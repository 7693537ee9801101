"""Stylized intermediate frames from stylized key frames (Algorithm 1 and its two-sided form).

One-sided (the paper's Algorithm 1): î = warp(k̂_a, flow(i, a)).
Two-sided (default): also warp k̂_b, the next key frame, and blend per pixel by temporal
distance and by how well each original key frame, warped the same way, explains the
original frame i (occluded or newly revealed regions take the key frame that sees them).
Flows come from the original frames at analysis size and are upsampled to the output.
"""

from __future__ import annotations

import numpy as np

from fedvst.video.flow import FlowEstimator, upsample_flow
from fedvst.video.warp import Grid, blend, blend_weights, photometric_error, warp


class Interpolator:
    """Makes output frames of ``size`` = (H, W); keeps flow buffers and sampling grids."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size
        self.flow = FlowEstimator()
        self._grid = Grid(*size)
        self._small_grid: Grid | None = None

    def _small(self, shape: tuple[int, int]) -> Grid:
        if self._small_grid is None or self._small_grid.size != shape:
            self._small_grid = Grid(*shape)
        return self._small_grid

    def one_sided(self, stylized_a: np.ndarray, flow_to_a: np.ndarray) -> np.ndarray:
        """Algorithm 1: (H, W, 3) stylized key a warped by the (h, w, 2) flow(i, a)."""
        return warp(stylized_a, upsample_flow(flow_to_a, self.size), self._grid)

    def two_sided(self, gray_i: np.ndarray, t: float, stylized_a: np.ndarray, gray_a: np.ndarray,
                  flow_to_a: np.ndarray, stylized_b: np.ndarray, gray_b: np.ndarray) -> np.ndarray:
        """Blend of both warped keys for frame i at fraction t ∈ (0, 1) of the way from a to b."""
        flow_to_b = self.flow(gray_i, gray_b)
        small = self._small(gray_i.shape)
        weight_a = blend_weights(photometric_error(gray_i, gray_a, flow_to_a, small),
                                 photometric_error(gray_i, gray_b, flow_to_b, small), t)
        warped_a = self.one_sided(stylized_a, flow_to_a)
        warped_b = warp(stylized_b, upsample_flow(flow_to_b, self.size), self._grid)
        return blend(warped_a, warped_b, weight_a)
