"""Backward warping along flow (Algorithm 1's bilinear kernel I) and the two-sided blend.

Images are (H, W, C) uint8; flows are (H, W, 2) float32 in pixels at the image's size,
with the convention of ``flow.py``: ``warp(b, flow(a, b)) ≈ a``.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

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


@dataclass(frozen=True)
class Stripe:
    """Output rows [out0, out1) are rows [crop0, crop1) of small rows [src0, src1) resized to ``rows`` rows."""

    src0: int
    src1: int
    rows: int
    crop0: int
    crop1: int
    out0: int
    out1: int

    @classmethod
    def whole(cls, small_rows: int, rows: int) -> Stripe:
        """One band: all ``small_rows`` resized to all ``rows``."""
        return cls(0, small_rows, rows, 0, rows, 0, rows)


def row_stripes(small_rows: int, rows: int, target_rows: int) -> list[Stripe]:
    """Bands of about ``target_rows`` output rows whose own bilinear resize equals that band of the whole.

    With rows/small_rows = p/q in lowest terms, a band must start and end on multiples of q small
    rows (so its sampling positions line up with the whole image's) and carry one block of q rows
    of margin on each inner side (the bilinear taps). Where a block is larger than the target,
    there is one band: the whole image.
    """
    common = gcd(rows, small_rows)
    p, q = rows // common, small_rows // common
    per_stripe = max(1, round(target_rows / p))  # blocks of q small rows per band
    if p > target_rows or common <= 2 * per_stripe:
        return [Stripe.whole(small_rows, rows)]
    stripes = []
    for first in range(0, common, per_stripe):
        last = min(common, first + per_stripe)
        src0, src1 = max(0, first - 1) * q, min(common, last + 1) * q
        crop0 = (first * q - src0) * p // q
        crop1 = crop0 + (last - first) * p
        stripes.append(Stripe(src0, src1, (src1 - src0) * p // q, crop0, crop1, first * p, last * p))
    return stripes


class FlowToMaps:
    """Sampling maps for an (H, W) image from an (h, w) flow, resized band by band.

    Equal (to float rounding) to ``Grid(H, W)`` + ``upsample_flow``: the absolute sampling
    positions are formed at the flow's size and resized bilinearly, which is exact for the
    affine pixel grid except in the outermost ~s/2 rows and columns, where the resize clamps;
    those are corrected afterwards. About 4× less work than upsampling the flow and adding.
    Callers that warp band by band (``stripes``, ``absolute``, ``maps``) keep each band's
    maps in cache: a whole 1080p map is 16.6 MB, a band about ``band_bytes``. Maps up to 8
    bands' worth (720p and below, at 1 MB) are one band.
    """

    def __init__(self, small: tuple[int, int], size: tuple[int, int], band_bytes: int = 1 << 20) -> None:
        (h, w), (height, width) = small, size
        self.small, self.size = (h, w), (height, width)
        sx, sy = width / w, height / h
        # per-pixel (not broadcast) scale: numpy's inner loop over a last axis of 2 is slow
        self.scale = np.ascontiguousarray(np.broadcast_to(np.float32([sx, sy]), (h, w, 2)))
        xs = (np.arange(w, dtype=np.float64) + 0.5) * sx - 0.5
        ys = (np.arange(h, dtype=np.float64) + 0.5) * sy - 0.5
        self.base = np.dstack([np.broadcast_to(xs, (h, w)), np.broadcast_to(ys[:, None], (h, w))]).astype(np.float32)
        self.whole = Stripe.whole(h, height)
        # bands pay off once a frame's maps outgrow the cache; below, fewer calls win (1024×512: 6.6 ms
        # whole against 7.4 ms in bands, two-sided)
        banded = height * width * 8 > 8 * band_bytes
        self.stripes = row_stripes(h, height, max(8, band_bytes // (width * 8))) if banded else [self.whole]
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

    def absolute(self, flow: np.ndarray) -> np.ndarray:
        """(h, w, 2) flow in small pixels → (h, w, 2) float32 sampling positions in output pixels."""
        if flow.shape[:2] != self.small:
            raise ValueError(f"flow is {flow.shape[:2]}, these maps expect {self.small}")
        absolute = np.multiply(flow, self.scale)
        return np.add(absolute, self.base, out=absolute)

    def rows(self, small: np.ndarray, stripe: Stripe) -> np.ndarray:
        """Band ``stripe`` of ``small`` (h, w[, c]) resized bilinearly to the output size (a view)."""
        band = cv2.resize(small[stripe.src0:stripe.src1], (self.size[1], stripe.rows), interpolation=cv2.INTER_LINEAR)
        return band[stripe.crop0:stripe.crop1]

    def maps(self, absolute: np.ndarray, stripe: Stripe) -> np.ndarray:
        """Rows [out0, out1) of the (H, W, 2) maps from ``absolute`` positions, edges corrected."""
        maps = self.rows(absolute, stripe)
        (_, left, left_fix, right, right_fix), (_, top, top_fix, bottom, bottom_fix) = self.fixes
        if left:
            maps[:, :left, 0] += left_fix
        if right:
            maps[:, -right:, 0] += right_fix
        if top and stripe.out0 < top:  # slices are views: the fixes land in ``maps``
            end = min(top, stripe.out1)
            maps[:end - stripe.out0, :, 1] += top_fix[stripe.out0:end, None]
        first_bottom = self.size[0] - bottom
        if bottom and stripe.out1 > first_bottom:
            start = max(first_bottom, stripe.out0)
            maps[start - stripe.out0:, :, 1] += bottom_fix[start - first_bottom:, None]
        return maps

    def __call__(self, flow: np.ndarray) -> np.ndarray:
        """(h, w, 2) flow → (H, W, 2) float32 absolute maps for ``cv2.remap``."""
        return self.maps(self.absolute(flow), self.whole)


def remap(image: np.ndarray, maps: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Bilinear sampling of ``image`` at absolute ``maps`` (h, w, 2), borders replicated; (h, w[, C]) uint8.

    ``out``, if given, is a C-contiguous array of that shape the result is written into.
    """
    return _into(out, cv2.remap(image, maps, None, cv2.INTER_LINEAR, dst=out, borderMode=cv2.BORDER_REPLICATE))


def _into(out: np.ndarray | None, result: np.ndarray) -> np.ndarray:
    """``result``, refused if it is not in ``out``: OpenCV silently allocates anew for a dst of the wrong
    shape or type, which would leave ``out`` unwritten."""
    if out is not None and not np.may_share_memory(result, out):  # bounds only: cheap
        raise ValueError(f"out is {out.shape} {out.dtype}, the result {result.shape} {result.dtype}")
    return result


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


def blend(image_a: np.ndarray, image_b: np.ndarray, weight_a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """weight_a·a + (1 - weight_a)·b for (H, W[, C]) uint8 and an (H, W) weight in [0, 1].

    ``out``, if given, is a C-contiguous (H, W[, C]) uint8 array the result is written into.
    """
    weight_a = np.ascontiguousarray(weight_a, dtype=np.float32)
    return _into(out, cv2.blendLinear(image_a, image_b, weight_a, 1.0 - weight_a, dst=out))
