"""The colour-transform field: what the affine head predicts and what phones render (no torch here).

A field is a float32 array of shape (gh, gw, D, 12): a grid of gh × gw cells that spans the
frame (cell centres at ((i + 0.5)·H/gh − 0.5, (j + 0.5)·W/gw − 0.5) in output pixels, so the
grid fits any output size), D luma bins (D = 1: a plain 2-D field; D > 1: a bilateral grid
whose bin d is centred at luma d/(D − 1)), and per cell and bin one 3×4 transform [A | b] in
row-major order: out = A·rgb + b with rgb in [0, 1]. Torch code holds the same field as
(N, D·12, gh, gw) with channel d·12 + k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FIELD_VERSION = 1
FIELD_LAYOUT = "gh,gw,depth,3x4-row-major"
COEFFICIENTS = 12
MAX_GRID_SIDE = 512
MAX_DEPTH = 16
MAX_ABS_VALUE = 64.0  # no sane colour transform has a gain or offset beyond this
# Cells × luma bins of one field: 2^18 (a 128×128 grid with 16 bins) is 6 MiB as float16, well under
# what a phone accepts in one message (fedvst.protocol.security.MAX_MESSAGE_BYTES, 64 MiB); a 1080p
# key frame with the built-in model needs 144. An edge never builds more; a phone checks it before decoding.
MAX_FIELD_CELLS = 1 << 18
LUMA_WEIGHTS = (0.299, 0.587, 0.114)  # the luma the bilateral grid is indexed by (BT.601)


class FieldError(ValueError):
    """A field that cannot be used, with a one-line reason."""


def check_strength(strength: float) -> float:
    """A stylization strength in [0, 1] (0: the frame as it is; 1: the full transfer) as a float."""
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be a number in [0, 1] (0: unchanged, 1: full style), got {strength!r}")
    return float(strength)


def check_field(coefficients: np.ndarray, what: str = "field") -> np.ndarray:
    """Validate a (gh, gw, D, 12) field (finite, sane sizes and values); returns it as C-contiguous float32."""
    if not isinstance(coefficients, np.ndarray):
        raise FieldError(f"{what} must be a NumPy array, got {type(coefficients).__name__}")
    if coefficients.ndim != 4 or coefficients.shape[3] != COEFFICIENTS:
        raise FieldError(f"{what} must have shape (gh, gw, depth, {COEFFICIENTS}), got {coefficients.shape}")
    gh, gw, depth = coefficients.shape[:3]
    if not (1 <= gh <= MAX_GRID_SIDE and 1 <= gw <= MAX_GRID_SIDE and 1 <= depth <= MAX_DEPTH):
        raise FieldError(f"{what} grid {gh}×{gw}×{depth} is outside 1..{MAX_GRID_SIDE} cells a side and "
                         f"1..{MAX_DEPTH} luma bins")
    if gh * gw * depth > MAX_FIELD_CELLS:
        raise FieldError(f"{what} grid {gh}×{gw}×{depth} has more than {MAX_FIELD_CELLS} cells and bins")
    if not np.issubdtype(coefficients.dtype, np.floating):
        raise FieldError(f"{what} has dtype {coefficients.dtype}; expected floating point")
    values = np.ascontiguousarray(coefficients, dtype=np.float32)
    if not np.isfinite(values).all():
        raise FieldError(f"{what} contains NaN or infinite values")
    if np.abs(values).max() > MAX_ABS_VALUE:
        raise FieldError(f"{what} has a coefficient of magnitude {np.abs(values).max():.3g}; at most "
                         f"{MAX_ABS_VALUE:g} is plausible")
    return values


@dataclass(frozen=True)
class ColourField:
    """A validated field (see module docstring); ``coefficients`` is (gh, gw, D, 12) float32."""

    coefficients: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "coefficients", check_field(self.coefficients))

    @property
    def grid(self) -> tuple[int, int]:
        """(gh, gw): cells down and across."""
        return int(self.coefficients.shape[0]), int(self.coefficients.shape[1])

    @property
    def depth(self) -> int:
        """Luma bins D (1 for a plain field)."""
        return int(self.coefficients.shape[2])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(int(s) for s in self.coefficients.shape)  # type: ignore[return-value]

    def to_bytes(self) -> bytes:
        """Little-endian float16 bytes in the (gh, gw, D, 12) layout (what travels to phones)."""
        return self.coefficients.astype("<f2").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, shape: tuple[int, ...], version: int = FIELD_VERSION) -> ColourField:
        """Inverse of ``to_bytes``; every mismatch (version, shape, length, values) is a FieldError."""
        if version != FIELD_VERSION:
            raise FieldError(f"field format version {version} is not supported (this build reads {FIELD_VERSION})")
        shape = tuple(int(s) for s in shape)
        if len(shape) != 4 or shape[3] != COEFFICIENTS or min(shape) < 1:
            raise FieldError(f"field shape must be (gh, gw, depth, {COEFFICIENTS}), got {shape}")
        if (shape[0] > MAX_GRID_SIDE or shape[1] > MAX_GRID_SIDE or shape[2] > MAX_DEPTH
                or shape[0] * shape[1] * shape[2] > MAX_FIELD_CELLS):
            raise FieldError(f"field grid {shape[0]}×{shape[1]}×{shape[2]} is too large (at most {MAX_FIELD_CELLS} "
                             "cells and bins)")
        expected = int(np.prod(shape)) * 2
        if len(data) != expected:
            raise FieldError(f"field of shape {shape} needs {expected} bytes, got {len(data)}")
        values = np.frombuffer(data, dtype="<f2").reshape(shape).astype(np.float32)
        return cls(values)

    def toward_identity(self, strength: float) -> ColourField:
        """This field blended toward the identity: s·[A | b] + (1 − s)·[I | 0], ``strength`` s in [0, 1].
        The render is linear in the field, so this is the photo tools' intensity slider: before the
        clamp to [0, 1], render(blend) = s·render(field) + (1 − s)·frame."""
        strength = check_strength(strength)
        if strength == 1.0:
            return self
        identity = identity_field(self.grid, self.depth).coefficients
        return ColourField(strength * self.coefficients + (1.0 - strength) * identity)

    def quantized(self) -> ColourField:
        """This field as it arrives after ``to_bytes``/``from_bytes`` (float16 values)."""
        return ColourField.from_bytes(self.to_bytes(), self.shape)


def identity_field(grid: tuple[int, int] = (1, 1), depth: int = 1) -> ColourField:
    """A field that leaves every pixel as it is."""
    cell = np.array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0], dtype=np.float32)
    return ColourField(np.tile(cell, (grid[0], grid[1], depth, 1)))
