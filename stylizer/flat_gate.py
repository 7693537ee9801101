"""Flat stays flat: the affine head's learned residual fades where the content has no local contrast.

In a region of one colour the rendered output is A·c + b for that one colour c, so any
cell-to-cell change of the field shows as a coloured blotch; in a black region it is b itself, on
a white one A·white. The gate of a sub-cell (a quarter of a field cell) is g = s² / (s² + τ²), s the
standard deviation of the content's luma inside it and τ = ``flat_contrast``: ≈ 0 on flat or dark
sub-cells, ≈ 1 on textured ones. A cell's gate is the smallest over its own sub-cells and those of
its eight neighbours: the renderer interpolates the field between cell centres, so a cell that
straddles a flat region, or borders one, would carry its residual onto the flat pixels as a halo
(measured: up to 86 levels on a white field beside a photo with the per-cell gate). Flat regions
and the cell next to them keep the prior's single transform. It depends on the content only (no
gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stylizer.render_torch import luma

SUB_CELLS = 2  # sub-cells per cell side whose contrast the gate reads


def contrast_gate(content: torch.Tensor, grid: tuple[int, int], flat_contrast: float) -> torch.Tensor:
    """(N, 3, H, W) content in [0, 1] → (N, 1, gh, gw) gate in [0, 1) (all ones when flat_contrast is 0)."""
    if flat_contrast <= 0.0:
        return content.new_ones((content.shape[0], 1, *grid), dtype=torch.float32)
    with torch.no_grad():
        y = luma(content.detach().float())
        fine = (grid[0] * SUB_CELLS, grid[1] * SUB_CELLS)
        mean = F.adaptive_avg_pool2d(y, fine)
        variance = (F.adaptive_avg_pool2d(y * y, fine) - mean * mean).clamp_min(0.0)
        gate = variance / (variance + flat_contrast ** 2)
        gate = -F.max_pool2d(-gate, SUB_CELLS)  # a cell: its flattest sub-cell
        return -F.max_pool2d(-gate, 3, stride=1, padding=1)  # and its neighbours' (the render interpolates)
