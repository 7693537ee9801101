"""CIELAB (D65) as this project measures colour: L/100, a/100, b/100 from sRGB in [0, 1].

One definition for the two places that compute it: ``stylizer.losses.rgb_to_lab`` (torch,
differentiable: training, the colour guard on CUDA) and ``stylizer.field_stats`` (numba tables, the
colour guard on the CPU). The constants, and the two curves in NumPy (``field_stats`` tabulates
them). No torch import.
"""

from __future__ import annotations

import numpy as np

RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423), (0.212671, 0.715160, 0.072169), (0.019334, 0.119193, 0.950227))
WHITE = (0.950456, 1.0, 1.088754)  # D65
# sRGB → linear: ((c + SRGB_OFFSET) / (1 + SRGB_OFFSET)) ** SRGB_GAMMA above SRGB_KNEE, c / SRGB_SLOPE below
SRGB_KNEE, SRGB_OFFSET, SRGB_SCALE, SRGB_GAMMA, SRGB_SLOPE = 0.04045, 0.055, 1.055, 2.4, 12.92
# XYZ / white → f: t ** (1 / 3) above LAB_KNEE, LAB_SLOPE · t + LAB_OFFSET below
LAB_KNEE, LAB_SLOPE, LAB_OFFSET = 0.008856, 7.787, 16.0 / 116.0
# f → L/100 = 1.16 f_y − 0.16, a/100 = 5 (f_x − f_y), b/100 = 2 (f_y − f_z)
L_SCALE, L_SHIFT, A_SCALE, B_SCALE = 1.16, 0.16, 5.0, 2.0


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """sRGB values in [0, 1] → linear light (float64)."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(values > SRGB_KNEE, ((np.maximum(values, SRGB_KNEE) + SRGB_OFFSET) / SRGB_SCALE) ** SRGB_GAMMA,
                    values / SRGB_SLOPE)


def lab_curve(values: np.ndarray) -> np.ndarray:
    """XYZ over the white point → CIELAB's f (float64)."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(values > LAB_KNEE, np.maximum(values, LAB_KNEE) ** (1.0 / 3.0), LAB_SLOPE * values + LAB_OFFSET)
