"""Stylized intermediate frames from stylized key frames (Algorithm 1 and its two-sided form).

One-sided (the paper's Algorithm 1): î = warp(k̂_a, flow(i, a)).
Two-sided (default): also warp k̂_b, the next key frame, and blend per pixel by temporal
distance and by how well each original key frame, warped the same way, explains the
original frame i (occluded or newly revealed regions take the key frame that sees them).
Flows come from the original frames at analysis size and are upsampled to the output.

Frames are ``Frame420`` when the output sides are even (luma warped at full size, chroma at
quarter size: half the bytes of RGB), else (H, W, 3) RGB arrays.
"""

from __future__ import annotations

import numpy as np

from fedvst.video.flow import FlowEstimator
from fedvst.video.warp import FlowToMaps, Grid, blend, blend_weights, photometric_error, remap
from fedvst.video.yuv import Frame420

Frame = Frame420 | np.ndarray


class Interpolator:
    """Makes output frames of ``size`` = (H, W); keeps flow buffers and sampling grids."""

    def __init__(self, size: tuple[int, int], yuv: bool | None = None) -> None:
        self.size = size
        self.yuv = (size[0] % 2 == 0 and size[1] % 2 == 0) if yuv is None else yuv
        self.half = (size[0] // 2, size[1] // 2)
        self.flow = FlowEstimator()
        self._maps: dict[tuple[tuple[int, int], tuple[int, int]], FlowToMaps] = {}
        self._small_grid: Grid | None = None

    def key(self, stylized: np.ndarray) -> Frame:
        """A stylized key frame (H, W, 3) RGB in this interpolator's frame layout."""
        return Frame420.from_rgb(stylized) if self.yuv else stylized

    def _small(self, shape: tuple[int, int]) -> Grid:
        if self._small_grid is None or self._small_grid.size != shape:
            self._small_grid = Grid(*shape)
        return self._small_grid

    def _maps_for(self, small_flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        key = (small_flow.shape[:2], size)
        if key not in self._maps:
            self._maps[key] = FlowToMaps(small_flow.shape[:2], size)
        return self._maps[key](small_flow)

    def _warp(self, frame: Frame, small_flow: np.ndarray) -> Frame:
        if not self.yuv:
            return remap(frame, self._maps_for(small_flow, self.size))
        return Frame420(remap(frame.y, self._maps_for(small_flow, self.size)),
                        remap(frame.uv, self._maps_for(small_flow, self.half)))

    def one_sided(self, key_a: Frame, flow_to_a: np.ndarray) -> Frame:
        """Algorithm 1: key frame a warped by the (h, w, 2) flow(i, a)."""
        return self._warp(key_a, flow_to_a)

    def two_sided(self, gray_i: np.ndarray, t: float, key_a: Frame, gray_a: np.ndarray, flow_to_a: np.ndarray,
                  key_b: Frame, gray_b: np.ndarray) -> Frame:
        """Blend of both warped keys for frame i at fraction t ∈ (0, 1) of the way from a to b."""
        flow_to_b = self.flow(gray_i, gray_b)
        small = self._small(gray_i.shape)
        weight_a = blend_weights(photometric_error(gray_i, gray_a, flow_to_a, small),
                                 photometric_error(gray_i, gray_b, flow_to_b, small), t)
        warped_a = self._warp(key_a, flow_to_a)
        warped_b = self._warp(key_b, flow_to_b)
        if not self.yuv:
            return blend(warped_a, warped_b, weight_a)
        return Frame420(blend(warped_a.y, warped_b.y, weight_a), blend(warped_a.uv, warped_b.uv, weight_a))


def to_rgb(frame: Frame) -> np.ndarray:
    """Any frame layout → (H, W, 3) uint8 RGB."""
    return frame.to_rgb() if isinstance(frame, Frame420) else frame
