"""Differentiable field renderer (training, CUDA): the contract of ``stylizer.render`` in torch.

Fields are (N, D·12, gh, gw) (channel d·12 + k, see ``stylizer.field``); images (N, 3, H, W)
float in [0, 1]. The field is sliced bilinearly to H × W (align_corners=False), along luma for
D > 1, and out = A·rgb + b, clamped to [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from stylizer.field import COEFFICIENTS, LUMA_WEIGHTS, ColourField


def luma(image: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) → (N, 1, H, W) BT.601 luma, the bilateral grid's index."""
    weights = image.new_tensor(LUMA_WEIGHTS).view(1, 3, 1, 1)
    return (image * weights).sum(1, keepdim=True)


def slice_field(field: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """The per-pixel transforms (N, 12, H, W) of ``field`` at ``image``'s size (and luma, for D > 1)."""
    n, channels = field.shape[:2]
    depth = channels // COEFFICIENTS
    if channels != depth * COEFFICIENTS or depth < 1:
        raise ValueError(f"field must have D·{COEFFICIENTS} channels, got {channels}")
    height, width = image.shape[-2:]
    up = field if tuple(field.shape[-2:]) == (height, width) else F.interpolate(
        field, size=(height, width), mode="bilinear", align_corners=False)
    if depth == 1:
        return up
    up = up.view(n, depth, COEFFICIENTS, height, width)
    z = luma(image).clamp(0.0, 1.0) * (depth - 1)  # (N, 1, H, W)
    bins = torch.arange(depth, device=image.device, dtype=up.dtype).view(1, depth, 1, 1)
    weights = (1.0 - (z - bins).abs()).clamp_min(0.0)  # (N, D, H, W) tent weights, summing to 1
    return (up * weights[:, :, None]).sum(1)


def apply_transforms(transforms: torch.Tensor, image: torch.Tensor, clamp: bool = True) -> torch.Tensor:
    """(N, 12, H, W) per-pixel [A | b] applied to (N, 3, H, W), clamped to [0, 1] (unless ``clamp`` is
    False: then the output is linear in the transforms)."""
    n, _, height, width = transforms.shape
    coeffs = transforms.view(n, 3, 4, height, width)
    out = (coeffs[:, :, :3] * image[:, None]).sum(2) + coeffs[:, :, 3]
    return out.clamp(0.0, 1.0) if clamp else out


def render_field(field: torch.Tensor, image: torch.Tensor, clamp: bool = True) -> torch.Tensor:
    """Render (N, D·12, gh, gw) ``field`` on (N, 3, H, W) ``image`` → (N, 3, H, W), clamped to [0, 1]
    (unless ``clamp`` is False: then linear in the field, so fields' renders add)."""
    return apply_transforms(slice_field(field.to(image.dtype), image), image, clamp)


def to_colour_field(field: torch.Tensor) -> ColourField:
    """One item (1, D·12, gh, gw) or (D·12, gh, gw) of a torch field → a validated ColourField."""
    if field.ndim == 4:
        field = field[0]
    depth = field.shape[0] // COEFFICIENTS
    grid_h, grid_w = field.shape[-2:]
    array = field.detach().float().cpu().view(depth, COEFFICIENTS, grid_h, grid_w).permute(2, 3, 0, 1)
    return ColourField(np.ascontiguousarray(array.numpy()))


def from_colour_field(field: ColourField) -> torch.Tensor:
    """A ColourField → (1, D·12, gh, gw) float32 tensor."""
    grid_h, grid_w = field.grid
    array = torch.from_numpy(field.coefficients.copy())  # (gh, gw, D, 12)
    return array.permute(2, 3, 0, 1).reshape(1, field.depth * COEFFICIENTS, grid_h, grid_w).contiguous()
