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

    def _plan(self, small: tuple[int, int], size: tuple[int, int]) -> FlowToMaps:
        key = (small, size)
        if key not in self._maps:
            self._maps[key] = FlowToMaps(small, size)
        return self._maps[key]

    def _planes(self, frame: Frame) -> list[tuple[np.ndarray, tuple[int, int]]]:
        """(plane, its output size) pairs of a frame: luma and chroma, or the RGB image."""
        if not self.yuv:
            return [(frame, self.size)]
        return [(frame.y, self.size), (frame.uv, self.half)]

    def _empty(self, like: Frame) -> Frame:
        """An uninitialised C-contiguous frame of ``like``'s layout (its row bands are contiguous too)."""
        if not self.yuv:
            return np.empty(like.shape, like.dtype)
        return Frame420(np.empty(like.y.shape, like.y.dtype), np.empty(like.uv.shape, like.uv.dtype))

    def one_sided(self, key_a: Frame, flow_to_a: np.ndarray) -> Frame:
        """Algorithm 1: key frame a warped by the (h, w, 2) flow(i, a)."""
        out = self._empty(key_a)
        for (source, size), (target, _) in zip(self._planes(key_a), self._planes(out), strict=True):
            plan = self._plan(flow_to_a.shape[:2], size)
            absolute = plan.absolute(flow_to_a)
            for stripe in plan.stripes:  # band by band, so each band's maps stay in cache
                remap(source, plan.maps(absolute, stripe), out=target[stripe.out0:stripe.out1])
        return out

    def two_sided(self, gray_i: np.ndarray, t: float, key_a: Frame, gray_a: np.ndarray, flow_to_a: np.ndarray,
                  key_b: Frame, gray_b: np.ndarray) -> Frame:
        """Blend of both warped keys for frame i at fraction t ∈ (0, 1) of the way from a to b."""
        flow_to_b = self.flow(gray_i, gray_b)
        small = self._small(gray_i.shape)
        weight_a = blend_weights(photometric_error(gray_i, gray_a, flow_to_a, small),
                                 photometric_error(gray_i, gray_b, flow_to_b, small), t)
        out = self._empty(key_a)
        for (source_a, size), (source_b, _), (target, _) in zip(self._planes(key_a), self._planes(key_b),
                                                                self._planes(out), strict=True):
            plan = self._plan(gray_i.shape, size)
            absolute_a, absolute_b = plan.absolute(flow_to_a), plan.absolute(flow_to_b)
            for stripe in plan.stripes:  # band by band, so each band's maps stay in cache
                blend(remap(source_a, plan.maps(absolute_a, stripe)), remap(source_b, plan.maps(absolute_b, stripe)),
                      plan.rows(weight_a, stripe), out=target[stripe.out0:stripe.out1])
        return out


def to_rgb(frame: Frame) -> np.ndarray:
    """Any frame layout → (H, W, 3) uint8 RGB."""
    return frame.to_rgb() if isinstance(frame, Frame420) else frame
