"""Affine decoder head: content and colorized features → a low-resolution residual colour field.

Input: encoder features F_c and colorized features F_cs, each (N, C_tap, H/2^k, W/2^k);
output: (N, D·12, H/s, W/s) residual transforms, s = grid_stride (see ``stylizer.field``).
A local path (3×3 convs, stride-2 steps down to the grid) plus a global path (pooled
features → MLP, broadcast), as in HDRNet (Gharbi et al. 2017). The last 1×1 conv starts at
zero, so an untrained head predicts no residual: the field is exactly the closed-form prior.

With ``normalize_inputs`` each input is divided by its own root mean square per item first. The
ImageNet VGG's relu3_1 features have a standard deviation near 800 and the learned colorization's
output reached 7·10⁴, so without it a few hundred Adam steps drove the head's raw output to ~10⁴,
where the residual's tanh bound is flat: no gradient reached any learned tensor again (the shipped
model of 2026-12-04 could not learn in the federation). Scale-free inputs keep the head's output
near its bound's linear range.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from stylizer.field import COEFFICIENTS


def _width(channels: int, width: float) -> int:
    return max(8, int(round(channels * width)))


def _unit_rms(features: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) divided by each item's root mean square (features of zero energy stay zero)."""
    rms = features.float().pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-6)
    return features / rms.to(features.dtype)


class AffineDecoder(nn.Module):
    """Features at stride ``feature_stride`` → residual field at stride ``grid_stride``."""

    def __init__(self, feature_channels: int, feature_stride: int, grid_stride: int, depth: int,
                 width: float = 1.0, normalize_inputs: bool = False) -> None:
        super().__init__()
        self.normalize_inputs = normalize_inputs
        if grid_stride < feature_stride:
            raise ValueError(f"grid_stride {grid_stride} is finer than the encoder's stride {feature_stride}")
        hidden = _width(128, width)
        downs = int(round(math.log2(grid_stride // feature_stride)))
        layers: list[nn.Module] = [nn.Conv2d(2 * feature_channels, hidden, 3, padding=1, padding_mode="reflect"),
                                   nn.ReLU()]
        for _ in range(downs):
            layers += [nn.Conv2d(hidden, hidden, 3, stride=2, padding=1, padding_mode="reflect"), nn.ReLU()]
        layers += [nn.Conv2d(hidden, hidden, 3, padding=1, padding_mode="reflect"), nn.ReLU()]
        self.local = nn.Sequential(*layers)
        self.global_path = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.head = nn.Conv2d(hidden, depth * COEFFICIENTS, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, content_features: torch.Tensor, colorized: torch.Tensor) -> torch.Tensor:
        colorized = colorized.to(content_features.dtype)
        if self.normalize_inputs:
            content_features, colorized = _unit_rms(content_features), _unit_rms(colorized)
        local = self.local(torch.cat([content_features, colorized], dim=1))
        pooled = self.global_path(local.float().mean(dim=(2, 3)).to(local.dtype))
        return self.head(torch.relu(local + pooled[:, :, None, None]))
