"""Fast field renderer for phones: a (gh, gw, D, 12) field on a (H, W, 3) uint8 frame, one fused pass.

No torch import. The field is sliced bilinearly (align_corners=False, border clamped: the
contract of ``torch.nn.functional.interpolate``) and, for D > 1, linearly along luma, then
out = A·rgb + b is rounded to uint8, all per pixel in one numba kernel parallel over rows.
Agrees with ``stylizer.render_torch.render_field`` within 1/255.
"""

from __future__ import annotations

import cv2
import numba
import numpy as np

from stylizer.field import LUMA_WEIGHTS, ColourField

_ROWS_PER_TASK = 8


def _axis_taps(out: int, cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output index: lower cell, upper cell, weight of the upper one (float32)."""
    source = (np.arange(out, dtype=np.float64) + 0.5) * (cells / out) - 0.5
    source = np.clip(source, 0.0, cells - 1)
    lower = np.floor(source).astype(np.int64)
    upper = np.minimum(lower + 1, cells - 1)
    return lower, upper, (source - lower).astype(np.float32)


def _segments(out: int, cells: int) -> np.ndarray:
    """Run starts (cells + 2,): pixels [s[j], s[j + 1]) lie between cell centres j − 1 and j
    (run 0 left of the first centre, run ``cells`` right of the last)."""
    source = (np.arange(out, dtype=np.float64) + 0.5) * (cells / out) - 0.5
    run = np.where(source < 0, 0, np.minimum(np.floor(source).astype(np.int64) + 1, cells))
    return np.searchsorted(run, np.arange(cells + 2)).astype(np.int64)


@numba.njit(cache=True, fastmath=True, nogil=True, inline="always")
def _row_cells(lower, upper, ty, row):  # pragma: no cover
    """``row`` (gw, 12) ← the cells of one output row: ``lower`` and ``upper`` (gw, 12), the cell rows
    above and below it, mixed linearly with weight ``ty`` on ``upper``."""
    for j in range(row.shape[0]):
        for k in range(12):
            row[j, k] = lower[j, k] + ty * (upper[j, k] - lower[j, k])


@numba.njit(cache=True, fastmath=True, nogil=True, inline="always")
def _run_line(row, segment, scale, slope, base):  # pragma: no cover
    """Within run ``segment`` (pixels between cell centres segment − 1 and segment, clamped at the
    borders) every coefficient k is ``base[k] + slope[k]·x``: fill ``slope`` and ``base`` (12,)."""
    grid_w = row.shape[0]
    left = max(segment - 1, 0)
    right = min(segment, grid_w - 1)
    for k in range(12):
        if left == right:
            slope[k] = np.float32(0.0)
            base[k] = row[left, k]
        else:
            delta = row[right, k] - row[left, k]
            slope[k] = delta * scale
            base[k] = row[left, k] + delta * (np.float32(0.5) * scale - np.float32(0.5) - left)


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True, error_model="numpy")
def _render_plain(frame, coefficients, y0s, y1s, tys, segments, out):  # pragma: no cover
    """D = 1: within a run of pixels between two cell centres every coefficient is linear in x,
    so each row is deinterleaved, transformed with base + slope·x in registers, and re-packed."""
    height, width = frame.shape[0], frame.shape[1]
    grid_w = coefficients.shape[1]
    scale = np.float32(grid_w / width)
    tasks = (height + _ROWS_PER_TASK - 1) // _ROWS_PER_TASK
    for task in numba.prange(tasks):
        row = np.empty((grid_w, 12), dtype=np.float32)
        slope = np.empty(12, dtype=np.float32)
        base = np.empty(12, dtype=np.float32)
        red = np.empty(width, dtype=np.float32)
        green = np.empty(width, dtype=np.float32)
        blue = np.empty(width, dtype=np.float32)
        out0 = np.empty(width, dtype=np.float32)
        out1 = np.empty(width, dtype=np.float32)
        out2 = np.empty(width, dtype=np.float32)
        for y in range(task * _ROWS_PER_TASK, min(height, (task + 1) * _ROWS_PER_TASK)):
            _row_cells(coefficients[y0s[y], :, 0, :], coefficients[y1s[y], :, 0, :], tys[y], row)
            src = frame[y].reshape(width * 3)
            dst = out[y].reshape(width * 3)
            for x in range(width):
                red[x] = src[3 * x]
                green[x] = src[3 * x + 1]
                blue[x] = src[3 * x + 2]
            for segment in range(grid_w + 1):
                begin = segments[segment]
                end = segments[segment + 1]
                if begin >= end:
                    continue
                _run_line(row, segment, scale, slope, base)
                for k in (3, 7, 11):  # pixels stay in 0..255 here, so the offsets scale up instead
                    slope[k] *= np.float32(255.0)
                    base[k] *= np.float32(255.0)
                s0, s1, s2, s3, s4, s5 = slope[0], slope[1], slope[2], slope[3], slope[4], slope[5]
                s6, s7, s8, s9, s10, s11 = slope[6], slope[7], slope[8], slope[9], slope[10], slope[11]
                b0, b1, b2, b3, b4, b5 = base[0], base[1], base[2], base[3], base[4], base[5]
                b6, b7, b8, b9, b10, b11 = base[6], base[7], base[8], base[9], base[10], base[11]
                for x in range(begin, end):
                    xf = np.float32(x)
                    r = red[x]
                    g = green[x]
                    b = blue[x]
                    out0[x] = (b0 + s0 * xf) * r + (b1 + s1 * xf) * g + (b2 + s2 * xf) * b + (b3 + s3 * xf)
                    out1[x] = (b4 + s4 * xf) * r + (b5 + s5 * xf) * g + (b6 + s6 * xf) * b + (b7 + s7 * xf)
                    out2[x] = (b8 + s8 * xf) * r + (b9 + s9 * xf) * g + (b10 + s10 * xf) * b + (b11 + s11 * xf)
            for x in range(width):
                dst[3 * x] = np.uint8(min(max(out0[x], np.float32(0.0)), np.float32(255.0)) + np.float32(0.5))
                dst[3 * x + 1] = np.uint8(min(max(out1[x], np.float32(0.0)), np.float32(255.0)) + np.float32(0.5))
                dst[3 * x + 2] = np.uint8(min(max(out2[x], np.float32(0.0)), np.float32(255.0)) + np.float32(0.5))


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True)
def _render_bilateral(frame, coefficients, y0s, y1s, tys, x0s, x1s, txs, luma_weights, out):  # pragma: no cover
    """D > 1: per pixel, bilinear in x and y and linear along luma."""
    height, width = frame.shape[0], frame.shape[1]
    depth = coefficients.shape[2]
    grid_w = coefficients.shape[1]
    tasks = (height + _ROWS_PER_TASK - 1) // _ROWS_PER_TASK
    inv = np.float32(1.0 / 255.0)
    for task in numba.prange(tasks):
        row_cells = np.empty((grid_w, depth, 12), dtype=np.float32)
        cell = np.empty(12, dtype=np.float32)
        for y in range(task * _ROWS_PER_TASK, min(height, (task + 1) * _ROWS_PER_TASK)):
            ty = tys[y]
            upper = coefficients[y1s[y]]
            lower = coefficients[y0s[y]]
            for j in range(grid_w):
                for d in range(depth):
                    for k in range(12):
                        row_cells[j, d, k] = lower[j, d, k] + ty * (upper[j, d, k] - lower[j, d, k])
            for x in range(width):
                r = frame[y, x, 0] * inv
                g = frame[y, x, 1] * inv
                b = frame[y, x, 2] * inv
                tx = txs[x]
                left = row_cells[x0s[x]]
                right = row_cells[x1s[x]]
                z = (luma_weights[0] * r + luma_weights[1] * g + luma_weights[2] * b) * (depth - 1)
                z = min(max(z, np.float32(0.0)), np.float32(depth - 1))
                d0 = min(int(z), depth - 2)
                tz = z - d0
                for k in range(12):
                    low = left[d0, k] + tx * (right[d0, k] - left[d0, k])
                    high = left[d0 + 1, k] + tx * (right[d0 + 1, k] - left[d0 + 1, k])
                    cell[k] = low + tz * (high - low)
                for c in range(3):
                    value = cell[4 * c] * r + cell[4 * c + 1] * g + cell[4 * c + 2] * b + cell[4 * c + 3]
                    value = min(max(value, np.float32(0.0)), np.float32(1.0))
                    out[y, x, c] = np.uint8(value * np.float32(255.0) + np.float32(0.5))


def render_field(frame: np.ndarray, field: ColourField | np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Render ``field`` on ``frame`` (H, W, 3) uint8 → (H, W, 3) uint8 (into ``out`` when given)."""
    coefficients = field.coefficients if isinstance(field, ColourField) else ColourField(field).coefficients
    if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8):
        raise ValueError(f"frame must be a (H, W, 3) uint8 array, got {getattr(frame, 'shape', type(frame))}")
    height, width = frame.shape[:2]
    if out is None:
        out = np.empty_like(frame)
    elif out.shape != frame.shape or out.dtype != np.uint8:
        raise ValueError(f"out must be {frame.shape} uint8, got {out.shape} {out.dtype}")
    frame = np.ascontiguousarray(frame)
    y0s, y1s, tys = _axis_taps(height, coefficients.shape[0])
    if coefficients.shape[2] == 1:
        _render_plain(frame, coefficients, y0s, y1s, tys, _segments(width, coefficients.shape[1]), out)
        return out
    x0s, x1s, txs = _axis_taps(width, coefficients.shape[1])
    _render_bilateral(frame, coefficients, y0s, y1s, tys, x0s, x1s, txs,
                      np.asarray(LUMA_WEIGHTS, dtype=np.float32), out)
    return out


def fit_within(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(H, W) scaled down (never up) so that its longer side is at most ``max_side``."""
    longest = max(height, width)
    if longest <= max_side:
        return height, width
    return max(16, int(round(height * max_side / longest))), max(16, int(round(width * max_side / longest)))


def resize_frame(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 → (H', W', 3) uint8 for ``size`` = (H', W'): area filter down, bilinear up."""
    height, width = image.shape[:2]
    if (height, width) == tuple(size):
        return image
    shrink = size[0] * size[1] < height * width
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
