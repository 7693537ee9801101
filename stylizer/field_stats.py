"""Colour statistics of a plain field's output on a small picture, in one pass, on the CPU.

At inference the affine head checks its field's colour on the content shrunk to
``stylizer.model.REFERENCE_WIDTH``: the colour projection needs the RGB mean and covariance of
the field's output (``colour_prior.colour_moments`` of ``render_torch.render_field``), the colour
guard the CIELAB mean and deviation (``losses.lab_mean_std``) of the outputs of several shares of
the residual. In torch each is a dozen full passes over the picture per candidate (upsampling the
field, applying it, clamping, the sRGB curve, the cube roots, the reductions), a third of a key
frame's CPU time. Here each is one numba pass that slices the field per pixel (bilinear between cell
centres, align_corners=False, as ``torch.nn.functional.interpolate``), applies it, clamps to [0, 1]
and accumulates float64 sums per row; nothing of the picture's size is allocated.

Contract: equal to the torch path within float rounding, except the two CIELAB curves (``stylizer.cielab``), read from
float32 tables with linear interpolation over [0, 1] (``LUT_SIZE`` entries: the sRGB curve within
1e-7, the cube root within 5e-7 of the exact values; the tests hold the statistics to 1e-5). Plain
fields (depth 1) only; images are planar (3, H, W) float32 in [0, 1] (a torch item's layout) and
cells (gh, gw, 12) float32 rows [A | b] (``stylizer.field``'s layout, offsets in 0..1 units). No
torch import.
"""

from __future__ import annotations

import numba
import numpy as np

from stylizer import cielab as lab
from stylizer.render import _axis_taps, expanded_cell_rows, mixed_map

LUT_SIZE = 16384  # entries of each curve's table over [0, 1]
_GRID = np.linspace(0.0, 1.0, LUT_SIZE + 1)
GAMMA_TABLE = lab.srgb_to_linear(_GRID).astype(np.float32)
ROOT_TABLE = lab.lab_curve(_GRID).astype(np.float32)
XYZ_OVER_WHITE = (np.asarray(lab.RGB_TO_XYZ) / np.asarray(lab.WHITE)[:, None]).astype(np.float32)
_LAB_MIX = np.array([lab.L_SCALE, lab.L_SHIFT, lab.A_SCALE, lab.B_SCALE], dtype=np.float32)


@numba.njit(cache=True, fastmath=True, nogil=True, inline="always")
def _curve(table, value):  # pragma: no cover
    """``table`` (LUT_SIZE + 1,) read at ``value`` (clamped to [0, 1]) with linear interpolation."""
    position = min(max(value, np.float32(0.0)), np.float32(1.0)) * np.float32(table.shape[0] - 1)
    lower = min(int(position), table.shape[0] - 2)
    weight = position - np.float32(lower)
    return table[lower] + weight * (table[lower + 1] - table[lower])


@numba.njit(cache=True, fastmath=True, nogil=True)
def _row_outputs(image, expanded, y, y0s, y1s, tys, out):  # pragma: no cover
    """Row y of slice(cells)·[rgb, 1], unclamped, into ``out`` (3, W) float32; ``expanded``: the
    cells interpolated along x (``stylizer.render.expanded_cell_rows``), ``image`` (3, H, W)."""
    e0, e1, ty = expanded[y0s[y]], expanded[y1s[y]], tys[y]
    for x in range(image.shape[2]):
        out[0, x], out[1, x], out[2, x] = mixed_map(e0, e1, ty, x, image[0, y, x], image[1, y, x], image[2, y, x])


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True, error_model="numpy")
def _rgb_sums(image, expanded, y0s, y1s, tys, sums):  # pragma: no cover
    """Per row y: ``sums[y]`` (12,) float64 ← Σ out_c (3) and Σ out_c·out_d (9, row-major) over the
    row of the clamped output out = clamp(slice(cells)·[rgb, 1], 0, 1)."""
    height, width = image.shape[1], image.shape[2]
    zero, one = np.float32(0.0), np.float32(1.0)
    for y in numba.prange(height):
        out = np.empty((3, width), dtype=np.float32)
        _row_outputs(image, expanded, y, y0s, y1s, tys, out)
        for c in range(3):
            for x in range(width):
                out[c, x] = min(max(out[c, x], zero), one)
        for c in range(3):
            total = 0.0
            for x in range(width):
                total += out[c, x]
            sums[y, c] = total
            for d in range(3):
                product = 0.0
                for x in range(width):
                    product += out[c, x] * out[d, x]
                sums[y, 3 + 3 * c + d] = product


@numba.njit(cache=True, fastmath=True, nogil=True)
def _lab_row(rgb, to_xyz, gamma, root, mix, sums, slot):  # pragma: no cover
    """CIELAB (L/100, a/100, b/100) of a row of clamped RGB (``rgb`` (3, W) float32, overwritten by
    L, a, b; ``mix``: ``_LAB_MIX``): their sums and sums of squares into ``sums[6·slot : 6·slot + 6]``."""
    width = rgb.shape[1]
    for x in range(width):
        lin_r, lin_g, lin_b = _curve(gamma, rgb[0, x]), _curve(gamma, rgb[1, x]), _curve(gamma, rgb[2, x])
        f_x = _curve(root, to_xyz[0, 0] * lin_r + to_xyz[0, 1] * lin_g + to_xyz[0, 2] * lin_b)
        f_y = _curve(root, to_xyz[1, 0] * lin_r + to_xyz[1, 1] * lin_g + to_xyz[1, 2] * lin_b)
        f_z = _curve(root, to_xyz[2, 0] * lin_r + to_xyz[2, 1] * lin_g + to_xyz[2, 2] * lin_b)
        rgb[0, x] = mix[0] * f_y - mix[1]
        rgb[1, x] = mix[2] * (f_x - f_y)
        rgb[2, x] = mix[3] * (f_y - f_z)
    for c in range(3):
        total, square = 0.0, 0.0
        for x in range(width):
            total += rgb[c, x]
            square += rgb[c, x] * rgb[c, x]
        sums[6 * slot + c] = total
        sums[6 * slot + 3 + c] = square


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True, error_model="numpy")
def _lab_sums(image, base, change, shares, y0s, y1s, tys, to_xyz, gamma, root, mix, sums):  # pragma: no cover
    """Per row y: ``sums[y]`` ((2 + S)·6,) float64 ← Σ and Σ² of CIELAB over the row, for the
    picture itself (slot 0), the output of the ``base`` cells (slot 1) and, for each of the S
    ``shares`` α, clamp(base_out + α·change_out) with change_out the unclamped output of ``change``
    (slots 2…): the renders of base + α·change, since rendering is linear before its clamp. ``base``
    and ``change``: expanded cells (``stylizer.render.expanded_cell_rows``)."""
    height, width = image.shape[1], image.shape[2]
    zero, one = np.float32(0.0), np.float32(1.0)
    for y in numba.prange(height):
        based = np.empty((3, width), dtype=np.float32)
        changed = np.empty((3, width), dtype=np.float32)
        row = np.empty((3, width), dtype=np.float32)
        _row_outputs(image, base, y, y0s, y1s, tys, based)
        _row_outputs(image, change, y, y0s, y1s, tys, changed)
        for c in range(3):
            for x in range(width):
                row[c, x] = image[c, y, x]
        _lab_row(row, to_xyz, gamma, root, mix, sums[y], 0)
        for slot in range(1 + shares.shape[0]):
            alpha = np.float32(0.0) if slot == 0 else shares[slot - 1]
            for c in range(3):
                for x in range(width):
                    row[c, x] = min(max(based[c, x] + alpha * changed[c, x], zero), one)
            _lab_row(row, to_xyz, gamma, root, mix, sums[y], 1 + slot)


def _cells(cells: np.ndarray, width: int) -> np.ndarray:
    """(gh, gw, 12) cells → interpolated along x for a ``width``-pixel row (gh, 12, width)."""
    cells = np.asarray(cells, dtype=np.float32)
    if cells.ndim != 3 or cells.shape[2] != 12:
        raise ValueError(f"cells must be (gh, gw, 12), got {cells.shape}")
    return expanded_cell_rows(cells, width, 1.0)


def _image(image: np.ndarray) -> np.ndarray:
    image = np.ascontiguousarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be planar (3, H, W), got {image.shape}")
    return image


def output_moments(image: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RGB mean (3,) and covariance (3, 3), float64, of ``cells`` (gh, gw, 12) rendered on the planar
    ``image`` (3, H, W) and clamped to [0, 1]: ``colour_moments(render_field(field, image))`` without
    the render."""
    image = _image(image)
    height, width = image.shape[1:]
    sums = np.empty((height, 12), dtype=np.float64)
    _rgb_sums(image, _cells(cells, width), *_axis_taps(height, np.shape(cells)[0]), sums)
    total = sums.sum(0) / (height * width)
    mean = total[:3]
    return mean, total[3:].reshape(3, 3) - np.outer(mean, mean)


def guard_lab_stats(image: np.ndarray, base: np.ndarray, change: np.ndarray, shares: np.ndarray,
                    std_eps: float) -> np.ndarray:
    """(2 + S, 6) float64 CIELAB means then deviations (``losses.lab_mean_std``'s layout, deviations
    sqrt(var + ``std_eps``)) of the planar ``image`` (3, H, W) itself, of the cells ``base`` rendered
    on it, and of base + α·change rendered on it for each of the S ``shares`` α (clamped after the
    sum); ``base`` and ``change`` (gh, gw, 12) on the same grid."""
    image = _image(image)
    if np.shape(base) != np.shape(change):
        raise ValueError(f"base {np.shape(base)} and change {np.shape(change)} must be on one grid")
    shares = np.ascontiguousarray(shares, dtype=np.float32)
    height, width = image.shape[1:]
    slots = 2 + shares.shape[0]
    sums = np.empty((height, slots * 6), dtype=np.float64)
    _lab_sums(image, _cells(base, width), _cells(change, width), shares, *_axis_taps(height, np.shape(change)[0]),
              XYZ_OVER_WHITE, GAMMA_TABLE, ROOT_TABLE, _LAB_MIX, sums)
    total = (sums.sum(0) / (height * width)).reshape(slots, 2, 3)
    mean, square = total[:, 0], total[:, 1]
    return np.concatenate([mean, np.sqrt(np.maximum(square - mean * mean, 0.0) + std_eps)], axis=1)
