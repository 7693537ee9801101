"""Flat stays flat: the affine head's learned residual fades where the content has no local contrast.

In a region of one colour the rendered output is A·c + b for that one colour c, so any
cell-to-cell change of the field shows as a coloured blotch; in a black region it is b itself, on
a white one A·white. The gate of a sub-cell (a quarter of a field cell) is g = s² / (s² + τ²), s the
standard deviation of the content's luma inside it and τ = ``flat_contrast``: ≈ 0 on flat or dark
sub-cells, ≈ 1 on textured ones. A cell's gate is the **geometric mean**, cubed, of g (floored at
``GATE_FLOOR``) over its own sub-cells and those of its eight neighbours:

- it is soft: a smooth function of the content, with no 0/1 step between neighbouring cells (a
  hard per-cell gate shows on video as cell-sized patches on walls and doors) and a gradient to
  the residual wherever some texture is near (the earlier minimum over the neighbourhood closed
  almost every cell of a 64 px video frame, so the edges' training moved nothing: 7e-9);
- it is still halo-free: the renderer interpolates the field between cell centres, so a cell that
  straddles a flat region, or borders one, would carry its residual onto the flat pixels. A flat
  half of the neighbourhood multiplies the gate by about GATE_FLOOR^1.5 ≈ 3·10⁻⁵, so such cells keep
  almost none of their residual, and a cell inside a flat region keeps GATE_FLOOR³: nothing. (Squared,
  the shipped model still left 4 levels beside a photo on a white field: the test's limit is 3.)
It depends on the content only (no gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stylizer.render_torch import luma

SUB_CELLS = 2  # sub-cells per cell side whose contrast the gate reads
GATE_FLOOR = 1e-3  # a flat sub-cell's gate before the geometric mean (its log must stay finite)
GATE_SHARPNESS = 3.0  # the gate is the geometric mean cubed: a half-flat neighbourhood keeps ≈ GATE_FLOOR^1.5


def contrast_gate(content: torch.Tensor, grid: tuple[int, int], flat_contrast: float) -> torch.Tensor:
    """(N, 3, H, W) content in [0, 1] → (N, 1, gh, gw) gate in [GATE_FLOOR³, 1) (all ones when flat_contrast is 0)."""
    if flat_contrast <= 0.0:
        return content.new_ones((content.shape[0], 1, *grid), dtype=torch.float32)
    with torch.no_grad():
        y = luma(content.detach().float())
        fine = (grid[0] * SUB_CELLS, grid[1] * SUB_CELLS)
        mean = F.adaptive_avg_pool2d(y, fine)
        variance = (F.adaptive_avg_pool2d(y * y, fine) - mean * mean).clamp_min(0.0)
        log_gate = torch.log((variance / (variance + flat_contrast ** 2)).clamp_min(GATE_FLOOR))
        padded = F.pad(log_gate, (SUB_CELLS,) * 4, mode="replicate")  # a border cell's outside neighbours: its own
        return (GATE_SHARPNESS * F.avg_pool2d(padded, 3 * SUB_CELLS, stride=SUB_CELLS)).exp()  # cell + 8 neighbours
