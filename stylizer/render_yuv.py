"""A plain colour field rendered straight into a video's YUV 4:2:0 planes, with no RGB frame.

A decoded frame arrives as planar I420 (BT.601 limited range, 8 bit: ``yuv = M·rgb255 + o``,
what OpenCV and swscale use for yuv420p by default) and the encoder takes the same layout, so the
RGB path converts every pixel twice around the render. Here one numba pass per pair of rows,
parallel over rows, does all of it in registers:

- per pixel: its Y with its 2×2 block's U and V (the 4:2:0 sample covers the block) → RGB through
  the cell's transform composed with YUV→RGB (``A·M⁻¹``, done once per cell, a few hundred 3×4
  matrices), interpolated bilinearly between cell centres exactly as
  ``stylizer.render.render_field`` does → clipped to 0–255 as the RGB renderer clips → Y' = M₀·rgb + 16;
- per 2×2 block: U', V' from the mean of its four clipped RGB outputs (a box-filtered 4:2:0
  downsample of the RGB path's output).

So it equals "upsample chroma, render in RGB, convert back to 4:2:0" within rounding (a test holds
it to 1 level), at a fraction of the memory traffic: 1.5 bytes read and written per pixel, no
full-resolution temporaries. Plain fields (D = 1) only; a bilateral field renders through RGB.
"""

from __future__ import annotations

import numba
import numpy as np

from stylizer.field import ColourField
from stylizer.render import _axis_taps, expanded_cell_rows, mixed_map

# BT.601 limited range, 8 bit: yuv = RGB_TO_YUV @ rgb255 + YUV_OFFSET (OpenCV's COLOR_RGB2YUV_I420,
# swscale's default for yuv420p)
RGB_TO_YUV = np.array([[0.256788, 0.504129, 0.097906],
                       [-0.148223, -0.290993, 0.439216],
                       [0.439216, -0.367788, -0.071427]], dtype=np.float64)
YUV_OFFSET = np.array([16.0, 128.0, 128.0])
_ROWS_PER_TASK = 8


def rgb_from_yuv_cells(coefficients: np.ndarray) -> np.ndarray:
    """(gh, gw, 1, 12) RGB transforms (rgb in 0..1) → (gh, gw, 12) float32 maps from 8-bit BT.601
    YUV to the transformed RGB in 0..255: rows [c_y, c_u, c_v, offset] of R', G', B'."""
    cells = coefficients[:, :, 0, :].astype(np.float64).reshape(-1, 3, 4)
    linear, offset = cells[:, :, :3], cells[:, :, 3] * 255.0
    from_yuv = linear @ np.linalg.inv(RGB_TO_YUV)  # (cells, 3, 3): rgb255 = M⁻¹ (yuv − o)
    shift = offset - from_yuv @ YUV_OFFSET
    out = np.concatenate([from_yuv, shift[:, :, None]], axis=2)
    return out.reshape(coefficients.shape[0], coefficients.shape[1], 12).astype(np.float32)


@numba.njit(parallel=True, cache=True, fastmath=True, nogil=True, error_model="numpy")
def _render_i420(planes, expanded, y0s, y1s, tys, to_yuv, out):  # pragma: no cover
    """Y' per pixel and U', V' per 2×2 block (see the module docstring); tasks of chroma rows. A row's
    maps mix two rows of ``expanded`` (``stylizer.render.expand_cell_rows``). Each step is a plain
    loop over a whole row buffer, so that numba vectorises it."""
    width = planes.shape[1]
    height = planes.shape[0] * 2 // 3
    half_h, half_w = height // 2, width // 2
    quarter = half_h * half_w
    flat = planes.reshape(planes.shape[0] * width)
    out_flat = out.reshape(out.shape[0] * width)
    zero, top_level = np.float32(0.0), np.float32(255.0)
    y_r, y_g, y_b = to_yuv[0, 0], to_yuv[0, 1], to_yuv[0, 2]
    u_r, u_g, u_b = to_yuv[1, 0], to_yuv[1, 1], to_yuv[1, 2]
    v_r, v_g, v_b = to_yuv[2, 0], to_yuv[2, 1], to_yuv[2, 2]
    rows_per_task = _ROWS_PER_TASK // 2
    tasks = (half_h + rows_per_task - 1) // rows_per_task
    for task in numba.prange(tasks):
        lum = np.empty(width, dtype=np.float32)
        u_full = np.empty(width, dtype=np.float32)
        v_full = np.empty(width, dtype=np.float32)
        red = np.empty(width, dtype=np.float32)
        green = np.empty(width, dtype=np.float32)
        blue = np.empty(width, dtype=np.float32)
        sum_r = np.zeros(half_w, dtype=np.float32)
        sum_g = np.zeros(half_w, dtype=np.float32)
        sum_b = np.zeros(half_w, dtype=np.float32)
        for cy in range(task * rows_per_task, min(half_h, (task + 1) * rows_per_task)):
            u_row = height * width + cy * half_w
            v_row = u_row + quarter
            for cx in range(half_w):
                u = np.float32(flat[u_row + cx])
                v = np.float32(flat[v_row + cx])
                u_full[2 * cx] = u
                u_full[2 * cx + 1] = u
                v_full[2 * cx] = v
                v_full[2 * cx + 1] = v
            for pair in range(2):
                y = 2 * cy + pair
                e0 = expanded[y0s[y]]
                e1 = expanded[y1s[y]]
                ty = tys[y]
                luma = y * width
                for x in range(width):
                    lum[x] = np.float32(flat[luma + x])
                for x in range(width):
                    a = lum[x]
                    u = u_full[x]
                    v = v_full[x]
                    r, g, b = mixed_map(e0, e1, ty, x, a, u, v)
                    red[x] = min(max(r, zero), top_level)
                    green[x] = min(max(g, zero), top_level)
                    blue[x] = min(max(b, zero), top_level)
                for x in range(width):
                    out_flat[luma + x] = np.uint8(y_r * red[x] + y_g * green[x] + y_b * blue[x] + np.float32(16.5))
                if pair == 0:
                    for cx in range(half_w):
                        sum_r[cx] = red[2 * cx] + red[2 * cx + 1]
                        sum_g[cx] = green[2 * cx] + green[2 * cx + 1]
                        sum_b[cx] = blue[2 * cx] + blue[2 * cx + 1]
                else:
                    for cx in range(half_w):
                        sum_r[cx] += red[2 * cx] + red[2 * cx + 1]
                        sum_g[cx] += green[2 * cx] + green[2 * cx + 1]
                        sum_b[cx] += blue[2 * cx] + blue[2 * cx + 1]
            for cx in range(half_w):
                r = sum_r[cx] * np.float32(0.25)
                g = sum_g[cx] * np.float32(0.25)
                b = sum_b[cx] * np.float32(0.25)
                out_flat[u_row + cx] = np.uint8(u_r * r + u_g * g + u_b * b + np.float32(128.5))
                out_flat[v_row + cx] = np.uint8(v_r * r + v_g * g + v_b * b + np.float32(128.5))


def render_field_i420(planes: np.ndarray, field: ColourField | np.ndarray,
                      out: np.ndarray | None = None) -> np.ndarray:
    """Render a plain ``field`` on a frame given as planar I420 (H·3/2, W) uint8 (Y, then U, then V:
    ``av.VideoFrame.to_ndarray(format="yuv420p")``, even H and W) → the same layout (into ``out``
    when given). ValueError for another layout or a bilateral field."""
    coefficients = field.coefficients if isinstance(field, ColourField) else ColourField(field).coefficients
    if not (isinstance(planes, np.ndarray) and planes.ndim == 2 and planes.dtype == np.uint8
            and planes.shape[0] % 3 == 0 and planes.shape[1] % 2 == 0):  # rows = 3H/2: H is then even
        raise ValueError(f"planes must be planar I420, (H·3/2, W) uint8 with even H and W, got "
                         f"{getattr(planes, 'shape', type(planes))} {getattr(planes, 'dtype', '')}")
    if coefficients.shape[2] != 1:
        raise ValueError(f"the YUV renderer takes plain fields (depth 1), got depth {coefficients.shape[2]}: "
                         "render it in RGB (stylizer.render.render_field)")
    if out is None:
        out = np.empty_like(planes)
    elif out.shape != planes.shape or out.dtype != np.uint8:
        raise ValueError(f"out must be {planes.shape} uint8, got {out.shape} {out.dtype}")
    if np.shares_memory(out, planes):
        raise ValueError("out must not overlap planes: the chroma of a block is read after its luma is written")
    planes = np.ascontiguousarray(planes)
    height, width = planes.shape[0] * 2 // 3, planes.shape[1]
    cells = rgb_from_yuv_cells(coefficients)
    y0s, y1s, tys = _axis_taps(height, cells.shape[0])
    _render_i420(planes, expanded_cell_rows(cells, width, 1.0), y0s, y1s, tys, RGB_TO_YUV.astype(np.float32), out)
    return out
