"""Flat stays flat: the affine head's learned residual fades where the content has no local contrast.

In a region of one colour the rendered output is A·c + b for that one colour c, so any
cell-to-cell change of the field shows as a coloured blotch; in a black region it is b itself.
The gate of a field cell is g = s² / (s² + τ²), s the standard deviation of the content's luma
inside that cell and τ = ``flat_contrast``: ≈ 0 on flat or dark cells (whose field stays the
prior's one global transform), ≈ 1 on textured ones. It depends on the content only (no gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stylizer.render_torch import luma


def contrast_gate(content: torch.Tensor, grid: tuple[int, int], flat_contrast: float) -> torch.Tensor:
    """(N, 3, H, W) content in [0, 1] → (N, 1, gh, gw) gate in [0, 1) (all ones when flat_contrast is 0)."""
    if flat_contrast <= 0.0:
        return content.new_ones((content.shape[0], 1, *grid), dtype=torch.float32)
    with torch.no_grad():
        y = luma(content.detach().float())
        mean = F.adaptive_avg_pool2d(y, grid)
        variance = (F.adaptive_avg_pool2d(y * y, grid) - mean * mean).clamp_min(0.0)
        return variance / (variance + flat_contrast ** 2)
