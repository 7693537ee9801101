"""Intermediate frames from key frames' colour-transform fields, not their pixels.

A field is a (gh, gw, D, 12) float32 grid of colour transforms spanning the frame (the
layout of ``stylizer.field``; this module imports nothing of ours and sees plain arrays).
For frame i between keys a and b, each key's field is warped to frame i along the flow
from frame i to the key (computed on the original frames at analysis size, averaged over
each cell), the two are blended per cell by temporal distance and by how well each key,
warped, explains frame i, and the blend is rendered on frame i's own pixels by the caller.
A flow error thus shifts a smooth colour transform a little; it never tears an edge.
"""

from __future__ import annotations

import cv2
import numpy as np

from fedvst.stage_clock import StageClock, stage_of
from fedvst.video.flow import FIELD_FLOW_PRESET, FlowEstimator
from fedvst.video.warp import Grid, blend_weights, photometric_error


def _cell_maps(flow: np.ndarray, grid: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Sampling maps (gh, gw) float32, in cell units, of the cells reached from each cell centre."""
    height, width = flow.shape[:2]
    grid_h, grid_w = grid
    mean_flow = cv2.resize(flow, (grid_w, grid_h), interpolation=cv2.INTER_AREA)  # mean per cell, in pixels
    xs = np.arange(grid_w, dtype=np.float32)[None, :] + mean_flow[..., 0] * (grid_w / width)
    ys = np.arange(grid_h, dtype=np.float32)[:, None] + mean_flow[..., 1] * (grid_h / height)
    return xs.astype(np.float32), ys.astype(np.float32)


def warp_field(coefficients: np.ndarray, flow_to_key: np.ndarray) -> np.ndarray:
    """The key's (gh, gw, D, 12) field moved to a frame whose (h, w, 2) flow to the key is given."""
    grid_h, grid_w, depth, count = coefficients.shape
    map_x, map_y = _cell_maps(flow_to_key, (grid_h, grid_w))
    planes = coefficients.reshape(grid_h, grid_w, depth * count)
    out = np.empty_like(planes)
    for start in range(0, depth * count, 4):  # OpenCV remaps up to 4 channels at once
        stop = min(start + 4, depth * count)
        out[..., start:stop] = cv2.remap(np.ascontiguousarray(planes[..., start:stop]), map_x, map_y,
                                         cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).reshape(
                                             grid_h, grid_w, stop - start)
    return out.reshape(grid_h, grid_w, depth, count)


FIELD_FLOW_WIDTH = 240  # the flow to the second key and the blend weights are found at most this wide


def _shrink(gray: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if gray.shape[:2] == size:
        return gray
    return cv2.resize(gray, (size[1], size[0]), interpolation=cv2.INTER_AREA)


class FieldInterpolator:
    """Warps and blends key frames' fields for intermediate frames (one flow estimator, reused).

    A field has a few cells per 100 px, so the second key's flow and the visibility weights are
    computed at most ``FIELD_FLOW_WIDTH`` wide (a quarter of the pixels of the analysis size), with
    ``FIELD_FLOW_PRESET``: finer flow changes the blended field by less than its own cell-to-cell
    variation.
    """

    def __init__(self, flow_width: int = FIELD_FLOW_WIDTH) -> None:
        self.flow = FlowEstimator(FIELD_FLOW_PRESET)
        self.flow_width = flow_width
        self._grid: Grid | None = None

    def _small(self, shape: tuple[int, int]) -> Grid:
        if self._grid is None or self._grid.size != shape:
            self._grid = Grid(*shape)
        return self._grid

    def one_sided(self, field_a: np.ndarray, flow_to_a: np.ndarray) -> np.ndarray:
        """Key a's field warped to frame i (the field form of Algorithm 1)."""
        return warp_field(field_a, flow_to_a)

    def two_sided(self, gray_i: np.ndarray, t: float, field_a: np.ndarray, gray_a: np.ndarray,
                  flow_to_a: np.ndarray, field_b: np.ndarray, gray_b: np.ndarray,
                  clock: StageClock | None = None) -> np.ndarray:
        """Blend of both keys' warped fields for frame i at fraction t ∈ (0, 1) from a to b; ``clock``
        (optional) gets the seconds of each stage (shrink, flow_to_b, visibility, warp_blend)."""
        if field_a.shape != field_b.shape:
            raise ValueError(f"key fields differ in shape: {field_a.shape} vs {field_b.shape}")
        height, width = gray_i.shape[:2]
        size = (height, width) if width <= self.flow_width else (
            max(8, round(height * self.flow_width / width)), self.flow_width)
        with stage_of(clock, "shrink"):
            gray_i, gray_a, gray_b = (_shrink(g, size) for g in (gray_i, gray_a, gray_b))
            if tuple(flow_to_a.shape[:2]) != size:  # flow in pixels of the smaller frame
                flow_to_a = cv2.resize(flow_to_a, (size[1], size[0]), interpolation=cv2.INTER_AREA) * np.float32(
                    size[1] / width)
        with stage_of(clock, "flow_to_b"):
            flow_to_b = self.flow(gray_i, gray_b)
        with stage_of(clock, "visibility"):
            small = self._small(size)
            weight_a = blend_weights(photometric_error(gray_i, gray_a, flow_to_a, small),
                                     photometric_error(gray_i, gray_b, flow_to_b, small), t)
            grid_h, grid_w = field_a.shape[:2]
            cell_weight = cv2.resize(weight_a.astype(np.float32), (grid_w, grid_h), interpolation=cv2.INTER_AREA)
        with stage_of(clock, "warp_blend"):
            cell_weight = cell_weight[:, :, None, None]
            warped_a = warp_field(field_a, flow_to_a)
            warped_b = warp_field(field_b, flow_to_b)
            return warped_b + cell_weight * (warped_a - warped_b)
