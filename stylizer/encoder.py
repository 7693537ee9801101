"""Frozen VGG-19 encoder up to relu3_1 or relu4_1, with torchvision's parameter names.

The layers live in ``self.features`` at torchvision's indices, so the state dict keys are
``features.0.weight`` … ``features.19.bias`` and torchvision's ImageNet checkpoint loads
as is. Input: float RGB in [0, 1], shape (N, 3, H, W); ImageNet normalization is applied
inside. Output of ``forward``: dict of the taps relu1_1 … relu{3,4}_1.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

# torchvision VGG-19 "features" up to relu4_1: (index, in, out) for each conv.
_VGG19_CONVS = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128),
                (10, 128, 256), (12, 256, 256), (14, 256, 256), (16, 256, 256), (19, 256, 512)]
_POOL_INDICES = (4, 9, 18)
# Index of the ReLU that produces each tap.
TAP_INDEX = {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20}
TAP_CHANNELS = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def taps_up_to(layer: str) -> list[str]:
    """The taps from relu1_1 up to and including ``layer``."""
    names = list(TAP_INDEX)
    return names[: names.index(layer) + 1]


def pool_count(layer: str) -> int:
    """How many 2× max-pools lie before ``layer`` (the decoder mirrors as many upsamplings)."""
    return sum(1 for p in _POOL_INDICES if p < TAP_INDEX[layer])


def build_features(layer: str) -> nn.Sequential:
    """VGG-19 ``features`` modules 0 … TAP_INDEX[layer], at torchvision's indices."""
    last = TAP_INDEX[layer]
    convs = {idx: (cin, cout) for idx, cin, cout in _VGG19_CONVS}
    modules: list[nn.Module] = []
    for idx in range(last + 1):
        if idx in convs:
            cin, cout = convs[idx]
            modules.append(nn.Conv2d(cin, cout, kernel_size=3, padding=1))
        elif idx in _POOL_INDICES:
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            modules.append(nn.ReLU(inplace=False))
    return nn.Sequential(*modules)


def encoder_state_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the float32 bytes of ``state`` in key order: the encoder's identity."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


class VGGEncoder(nn.Module):
    """Frozen VGG-19 prefix; ``identity`` names the weights (``sha256:…`` or ``seeded:<n>``)."""

    def __init__(self, layer: str, state: dict[str, torch.Tensor], identity: str) -> None:
        super().__init__()
        self.layer = layer
        self.taps = taps_up_to(layer)
        self.features = build_features(layer)
        missing = [k for k in self.features_state_keys() if k not in state]
        if missing:
            raise ValueError(f"VGG weights lack {len(missing)} tensors needed up to {layer}, e.g. {missing[0]}")
        own = {k: state[k] for k in self.features_state_keys()}
        for key, value in own.items():
            expected = dict(self.named_parameters())[key].shape
            if tuple(value.shape) != tuple(expected):
                raise ValueError(f"VGG weight {key} has shape {tuple(value.shape)}, expected {tuple(expected)}")
        self.load_state_dict({k: v.to(torch.float32) for k, v in own.items()})
        self.identity = identity
        self.weights_sha256 = encoder_state_sha256(own)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def features_state_keys(self) -> list[str]:
        """State-dict keys of the convolutions this prefix uses (torchvision naming)."""
        return [f"features.{idx}.{kind}" for idx, _, _ in _VGG19_CONVS if idx <= TAP_INDEX[self.layer]
                for kind in ("weight", "bias")]

    def train(self, mode: bool = True) -> VGGEncoder:
        """The encoder never leaves eval mode (it is frozen)."""
        return super().train(False)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, H, W) in [0, 1] → {tap name: (N, C_tap, H/2^k, W/2^k)}."""
        x = (image - self.mean.to(image.dtype)) / self.std.to(image.dtype)
        outputs: dict[str, torch.Tensor] = {}
        wanted = {TAP_INDEX[t]: t for t in self.taps}
        for idx, module in enumerate(self.features):
            x = module(x)
            if idx in wanted:
                outputs[wanted[idx]] = x
        return outputs

    def deepest(self, image: torch.Tensor) -> torch.Tensor:
        """Only the deepest tap, (N, C, H/2^k, W/2^k)."""
        return self.features((image - self.mean.to(image.dtype)) / self.std.to(image.dtype))
