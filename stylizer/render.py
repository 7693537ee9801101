"""Fast field renderer for phones: a (gh, gw, D, 12) field on a (H, W, 3) uint8 frame, one fused pass.

No torch import. The field is sliced bilinearly (align_corners=False, border clamped: the
contract of ``torch.nn.functional.interpolate``) and, for D > 1, linearly along luma, then
out = A·rgb + b is rounded to uint8, all per pixel in one numba kernel parallel over rows. For a
plain field (D = 1) the x half of the slice is done first, once per frame, for the few cell rows
(``expand_cell_rows``: gh × 12 × W floats, not a full-resolution temporary); each pixel then mixes
two of those rows. Agrees with ``stylizer.render_torch.render_field`` within 1/255.
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
def expand_cell_rows(cells, segments, width, offset_scale, expanded):  # pragma: no cover
    """The x half of the bilinear slice, once per frame: ``expanded`` (gh, 12, W) float32 ← each cell
    row's 12 coefficients of ``cells`` (gh, gw, 12) at every pixel column of a ``width``-pixel row,
    linear between cell centres and clamped at the borders (``segments``: ``_segments(width, gw)``),
    the offsets (k = 3, 7, 11) times ``offset_scale``. A frame's rows then only mix two of these
    rows, in loops as long as the row, which vectorise fully (runs of ~60 pixels between cell
    centres leave a vectorised loop's tail, up to 31 pixels, to scalar code)."""
    grid_h, grid_w = cells.shape[0], cells.shape[1]
    scale = np.float32(grid_w / width)
    for j in numba.prange(grid_h):
        slope = np.empty(12, dtype=np.float32)
        base = np.empty(12, dtype=np.float32)
        for segment in range(grid_w + 1):
            begin = segments[segment]
            end = segments[segment + 1]
            if begin >= end:
                continue
            _run_line(cells[j], segment, scale, slope, base)
            for k in range(12):
                factor = offset_scale if k % 4 == 3 else np.float32(1.0)
                slope_k, base_k = slope[k] * factor, base[k] * factor
                for x in range(begin, end):
                    expanded[j, k, x] = base_k + slope_k * np.float32(x)


@numba.njit(cache=True, fastmath=True, nogil=True, inline="always")
def mixed_map(e0, e1, ty, x, p0, p1, p2):  # pragma: no cover
    """The 3×4 map at column ``x`` of two rows of ``expand_cell_rows`` (12, W), mixed linearly with
    weight ``ty`` on ``e1``, applied to (p0, p1, p2): the three outputs (float32)."""
    c0 = e0[0, x] + ty * (e1[0, x] - e0[0, x])
    c1 = e0[1, x] + ty * (e1[1, x] - e0[1, x])
    c2 = e0[2, x] + ty * (e1[2, x] - e0[2, x])
    c3 = e0[3, x] + ty * (e1[3, x] - e0[3, x])
    c4 = e0[4, x] + ty * (e1[4, x] - e0[4, x])
    c5 = e0[5, x] + ty * (e1[5, x] - e0[5, x])
    c6 = e0[6, x] + ty * (e1[6, x] - e0[6, x])
    c7 = e0[7, x] + ty * (e1[7, x] - e0[7, x])
    c8 = e0[8, x] + ty * (e1[8, x] - e0[8, x])
    c9 = e0[9, x] + ty * (e1[9, x] - e0[9, x])
    c10 = e0[10, x] + ty * (e1[10, x] - e0[10, x])
    c11 = e0[11, x] + ty * (e1[11, x] - e0[11, x])
    return c0 * p0 + c1 * p1 + c2 * p2 + c3, c4 * p0 + c5 * p1 + c6 * p2 + c7, c8 * p0 + c9 * p1 + c10 * p2 + c11


def expanded_cell_rows(cells: np.ndarray, width: int, offset_scale: float) -> np.ndarray:
    """(gh, gw, 12) float32 cells → (gh, 12, ``width``) float32 (see ``expand_cell_rows``)."""
    cells = np.ascontiguousarray(cells, dtype=np.float32)
    expanded = np.empty((cells.shape[0], 12, width), dtype=np.float32)
    expand_cell_rows(cells, _segments(width, cells.shape[1]), width, np.float32(offset_scale), expanded)
    return expanded


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True, error_model="numpy")
def _render_plain(frame, expanded, y0s, y1s, tys, out):  # pragma: no cover
    """D = 1: per row, the coefficients are the mix of two rows of ``expanded`` (offsets in 0..255
    units, since pixels stay in 0..255 here); each row is deinterleaved, transformed and re-packed in
    three loops over the whole row, all vectorised."""
    height, width = frame.shape[0], frame.shape[1]
    tasks = (height + _ROWS_PER_TASK - 1) // _ROWS_PER_TASK
    for task in numba.prange(tasks):
        red = np.empty(width, dtype=np.float32)
        green = np.empty(width, dtype=np.float32)
        blue = np.empty(width, dtype=np.float32)
        out0 = np.empty(width, dtype=np.float32)
        out1 = np.empty(width, dtype=np.float32)
        out2 = np.empty(width, dtype=np.float32)
        for y in range(task * _ROWS_PER_TASK, min(height, (task + 1) * _ROWS_PER_TASK)):
            e0 = expanded[y0s[y]]
            e1 = expanded[y1s[y]]
            ty = tys[y]
            src = frame[y].reshape(width * 3)
            dst = out[y].reshape(width * 3)
            for x in range(width):
                red[x] = src[3 * x]
                green[x] = src[3 * x + 1]
                blue[x] = src[3 * x + 2]
            for x in range(width):
                r = red[x]
                g = green[x]
                b = blue[x]
                out0[x], out1[x], out2[x] = mixed_map(e0, e1, ty, x, r, g, b)
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
        _render_plain(frame, expanded_cell_rows(coefficients[:, :, 0, :], width, 255.0), y0s, y1s, tys, out)
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


def working_size(height: int, width: int, work_width: int) -> tuple[int, int]:
    """(H, W) scaled down (never up) to at most ``work_width`` wide, aspect kept, ≥ 16 px high: the
    size the network runs at, and what a phone sends."""
    if width <= work_width:
        return height, width
    return max(16, int(round(height * work_width / width))), work_width


def resize_frame(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 → (H', W', 3) uint8 for ``size`` = (H', W'): area filter down, bilinear up."""
    height, width = image.shape[:2]
    if (height, width) == tuple(size):
        return image
    shrink = size[0] * size[1] < height * width
    return cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
