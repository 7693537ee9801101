"""Decoder: VGG-19 mirrored (3×3 convs, reflection padding, nearest 2× upsampling).

``width`` is the multiplier alpha of seeds/002 Table II: every hidden channel count is
scaled by it (at least 8), the input (encoder features) and the output (RGB) are not.
Input (N, C_tap, H/2^k, W/2^k) → output (N, 3, H, W), unbounded float (≈ [0, 1]).
"""

from __future__ import annotations

import torch
from torch import nn

# Mirror of VGG-19 from each tap back to RGB: "up" marks a 2× nearest upsampling.
_PLANS = {
    "relu3_1": [(256, 128), "up", (128, 128), (128, 64), "up", (64, 64), (64, 3)],
    "relu4_1": [(512, 256), "up", (256, 256), (256, 256), (256, 256), (256, 128), "up",
                (128, 128), (128, 64), "up", (64, 64), (64, 3)],
}


def _scaled(channels: int, width: float, fixed: bool) -> int:
    return channels if fixed else max(8, int(round(channels * width)))


class Decoder(nn.Module):
    """Mirrored VGG decoder for ``layer`` with width multiplier ``width``."""

    def __init__(self, layer: str, width: float = 1.0) -> None:
        super().__init__()
        plan = _PLANS[layer]
        convs = [step for step in plan if step != "up"]
        first_in = convs[0][0]
        modules: list[nn.Module] = []
        seen = 0
        for step in plan:
            if step == "up":
                modules.append(nn.Upsample(scale_factor=2, mode="nearest"))
                continue
            cin, cout = step
            is_last = seen == len(convs) - 1
            cin = _scaled(cin, width, cin == first_in and seen == 0)
            cout = _scaled(cout, width, is_last)
            modules += [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3)]
            if not is_last:
                modules.append(nn.ReLU())
            seen += 1
        self.layers = nn.Sequential(*modules)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)
