"""Backward warping along flow (Algorithm 1's bilinear kernel I) and the two-sided blend.

Images are (H, W, C) uint8; flows are (H, W, 2) float32 in pixels at the image's size,
with the convention of ``flow.py``: ``warp(b, flow(a, b)) ≈ a``.
"""

from __future__ import annotations

import cv2
import numpy as np


class Grid:
    """Cached pixel-centre coordinates for one (H, W) so each warp only adds the flow."""

    def __init__(self, height: int, width: int) -> None:
        self.size = (height, width)
        self.xs = np.broadcast_to(np.arange(width, dtype=np.float32), (height, width))
        self.ys = np.broadcast_to(np.arange(height, dtype=np.float32)[:, None], (height, width))

    def maps(self, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fixed-point remap maps (faster remap) for sampling at x + flow(x)."""
        map_x = self.xs + flow[..., 0]
        map_y = self.ys + flow[..., 1]
        return cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)


class FlowToMaps:
    """Sampling maps for an (H, W) image from an (h, w) flow, in one resize.

    Equal (to float rounding) to ``Grid(H, W)`` + ``upsample_flow``: the absolute sampling
    positions are formed at the flow's size and resized bilinearly, which is exact for the
    affine pixel grid except in the outermost ~s/2 rows and columns, where the resize clamps;
    those are corrected afterwards. About 4× less work than upsampling the flow and adding.
    """

    def __init__(self, small: tuple[int, int], size: tuple[int, int]) -> None:
        (h, w), (height, width) = small, size
        self.small, self.size = (h, w), (height, width)
        sx, sy = width / w, height / h
        # per-pixel (not broadcast) scale: numpy's inner loop over a last axis of 2 is slow
        self.scale = np.ascontiguousarray(np.broadcast_to(np.float32([sx, sy]), (h, w, 2)))
        self._absolute = np.empty((h, w, 2), np.float32)
        xs = (np.arange(w, dtype=np.float64) + 0.5) * sx - 0.5
        ys = (np.arange(h, dtype=np.float64) + 0.5) * sy - 0.5
        self.base = np.dstack([np.broadcast_to(xs, (h, w)), np.broadcast_to(ys[:, None], (h, w))]).astype(np.float32)
        # the first/last columns and rows whose resize source is clamped to the edge small pixel:
        # (axis, leading count, its grid corrections, trailing count, its grid corrections)
        self.fixes = []
        for axis, (big, scale, count) in enumerate(((width, sx, w), (height, sy, h))):
            positions = np.arange(big, dtype=np.float64)
            source = (positions + 0.5) / scale - 0.5
            low = int((source < 0).sum())  # a leading run, as source grows with position
            high = int((source > count - 1).sum())  # a trailing run
            self.fixes.append((axis, low, (positions[:low] - (0.5 * scale - 0.5)).astype(np.float32),
                               high, (positions[big - high:] - ((count - 0.5) * scale - 0.5)).astype(np.float32)))

    def __call__(self, flow: np.ndarray) -> np.ndarray:
        """(h, w, 2) flow → (H, W, 2) float32 absolute maps for ``cv2.remap``."""
        if flow.shape[:2] != self.small:
            raise ValueError(f"flow is {flow.shape[:2]}, these maps expect {self.small}")
        absolute = np.multiply(flow, self.scale, out=self._absolute)
        np.add(absolute, self.base, out=absolute)
        maps = cv2.resize(absolute, (self.size[1], self.size[0]), interpolation=cv2.INTER_LINEAR)
        for axis, low, low_fix, high, high_fix in self.fixes:  # slices: views, no copies
            if axis == 0:
                if low:
                    maps[:, :low, 0] += low_fix
                if high:
                    maps[:, -high:, 0] += high_fix
            else:
                if low:
                    maps[:low, :, 1] += low_fix[:, None]
                if high:
                    maps[-high:, :, 1] += high_fix[:, None]
        return maps


def remap(image: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """Bilinear sampling of ``image`` at absolute ``maps`` (H, W, 2), borders replicated."""
    return cv2.remap(image, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def warp(image: np.ndarray, flow: np.ndarray, grid: Grid | None = None) -> np.ndarray:
    """Bilinear backward warp: out(x) = image(x + flow(x)), borders replicated."""
    grid = grid if grid is not None and grid.size == flow.shape[:2] else Grid(*flow.shape[:2])
    map_xy, map_frac = grid.maps(flow)
    return cv2.remap(image, map_xy, map_frac, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def photometric_error(frame: np.ndarray, key: np.ndarray, flow: np.ndarray, grid: Grid | None = None) -> np.ndarray:
    """|frame - warp(key, flow)| for (h, w) uint8 gray frames: (h, w) float32, high where occluded."""
    return cv2.absdiff(frame, warp(key, flow, grid)).astype(np.float32)


def blend_weights(error_a: np.ndarray, error_b: np.ndarray, t: float, sigma: float = 8.0) -> np.ndarray:
    """Per-pixel weight of key a (0…1) for a frame at fraction t ∈ (0, 1) from a to b.

    Temporal prior (1 - t, t) times a photometric confidence exp(-e / sigma) of each
    side; pixels a key does not see (large error) take the other key.
    """
    error_a = cv2.GaussianBlur(error_a, (0, 0), 1.5)
    error_b = cv2.GaussianBlur(error_b, (0, 0), 1.5)
    conf_a = (1.0 - t) * np.exp(-error_a / sigma)
    conf_b = t * np.exp(-error_b / sigma)
    return (conf_a + 1e-6 * (1.0 - t)) / (conf_a + conf_b + 1e-6)


def blend(image_a: np.ndarray, image_b: np.ndarray, weight_a: np.ndarray) -> np.ndarray:
    """weight_a·a + (1 - weight_a)·b for (H, W[, C]) uint8; ``weight_a`` (h, w) float32 is resized to fit."""
    if weight_a.shape != image_a.shape[:2]:
        weight_a = cv2.resize(weight_a, (image_a.shape[1], image_a.shape[0]), interpolation=cv2.INTER_LINEAR)
    weight_a = np.ascontiguousarray(weight_a, dtype=np.float32)
    return cv2.blendLinear(image_a, image_b, weight_a, 1.0 - weight_a)
