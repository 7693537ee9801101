"""Frozen VGG encoder (VGG-16 or VGG-19 layout) up to relu3_1 or relu4_1, with torchvision's parameter names.

The layers live in ``self.features`` at torchvision's indices for the layout, so the state dict
keys are ``features.0.weight`` … and torchvision's ImageNet checkpoints load as they are. The
layout (VGG-16: conv3_1–3_3 before pool 3; VGG-19: conv3_1–3_4) is read from the weights: the two
agree up to relu3_1 and differ only from relu4_1 on.

Input: float RGB in [0, 1], shape (N, 3, H, W). The weights' input convention is applied inside,
in one place (``convention_tensors``): ``torchvision`` (RGB, ImageNet mean/std) or ``caffe`` (BGR, 0–255,
minus the BGR mean: the Keras/Caffe VGG-16). Output of ``forward``: dict of the taps relu1_1 …
relu{3,4}_1.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from stylizer.config import TAP_NAMES

# (torchvision index, in, out) for each conv up to relu4_1, by layout.
LAYOUT_CONVS = {
    "vgg19": [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128),
              (10, 128, 256), (12, 256, 256), (14, 256, 256), (16, 256, 256), (19, 256, 512)],
    "vgg16": [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128),
              (10, 128, 256), (12, 256, 256), (14, 256, 256), (17, 256, 512)],
}
LAYOUT_POOLS = {"vgg19": (4, 9, 18), "vgg16": (4, 9, 16)}
# Index of the ReLU that produces each tap, by layout.
LAYOUT_TAPS = {
    "vgg19": {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 20},
    "vgg16": {"relu1_1": 1, "relu2_1": 6, "relu3_1": 11, "relu4_1": 18},
}
TAP_CHANNELS = {"relu1_1": 64, "relu2_1": 128, "relu3_1": 256, "relu4_1": 512}
TAP_STRIDES = {"relu1_1": 1, "relu2_1": 2, "relu3_1": 4, "relu4_1": 8}

# Input conventions: RGB in [0, 1] → what the weights were trained on.
TORCHVISION = "torchvision"  # RGB, (x − mean) / std
CAFFE = "caffe"  # BGR, 0–255, minus the BGR mean (Keras' VGG-16 "caffe" preprocessing)
CONVENTIONS = (TORCHVISION, CAFFE)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


def taps_up_to(layer: str) -> list[str]:
    """The taps from relu1_1 up to and including ``layer``."""
    return list(TAP_NAMES[: TAP_NAMES.index(layer) + 1])


def deeper_layer(first: str, second: str) -> str:
    """The deeper of two tap names."""
    return first if TAP_NAMES.index(first) >= TAP_NAMES.index(second) else second


def pool_count(layer: str) -> int:
    """How many 2× max-pools lie before ``layer`` (the decoder mirrors as many upsamplings)."""
    return TAP_NAMES.index(layer)


def layout_of(state: dict[str, torch.Tensor]) -> str:
    """'vgg19' or 'vgg16' from the tensor names (conv3_4 at index 16 exists only in VGG-19).

    Weights that stop at relu3_1 fit both layouts; they are read as VGG-19 (the two agree there).
    """
    if "features.16.weight" in state:
        return "vgg19"
    if "features.17.weight" in state:
        return "vgg16"
    return "vgg19"


def build_features(layer: str, layout: str = "vgg19") -> nn.Sequential:
    """VGG ``features`` modules 0 … tap index of ``layer``, at torchvision's indices for ``layout``."""
    last = LAYOUT_TAPS[layout][layer]
    convs = {idx: (cin, cout) for idx, cin, cout in LAYOUT_CONVS[layout]}
    modules: list[nn.Module] = []
    for idx in range(last + 1):
        if idx in convs:
            cin, cout = convs[idx]
            modules.append(nn.Conv2d(cin, cout, kernel_size=3, padding=1))
        elif idx in LAYOUT_POOLS[layout]:
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            modules.append(nn.ReLU(inplace=False))
    return nn.Sequential(*modules)


def convention_tensors(convention: str) -> tuple[list[int], torch.Tensor, torch.Tensor]:
    """(channel order, scale (1, 3, 1, 1), shift (1, 3, 1, 1)) with normalized = x[:, order]·scale − shift."""
    if convention == TORCHVISION:
        std = torch.tensor(IMAGENET_STD)
        return [0, 1, 2], (1.0 / std).view(1, 3, 1, 1), (torch.tensor(IMAGENET_MEAN) / std).view(1, 3, 1, 1)
    if convention == CAFFE:
        return [2, 1, 0], torch.full((1, 3, 1, 1), 255.0), torch.tensor(CAFFE_BGR_MEAN).view(1, 3, 1, 1)
    raise ValueError(f"unknown VGG input convention {convention!r}; expected one of {CONVENTIONS}")


def encoder_state_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over the float32 bytes of ``state`` in key order: the encoder's identity."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


class VGGEncoder(nn.Module):
    """Frozen VGG prefix; ``identity`` names the weights (``sha256:…`` or ``seeded:<n>``)."""

    def __init__(self, layer: str, state: dict[str, torch.Tensor], identity: str,
                 convention: str = TORCHVISION) -> None:
        super().__init__()
        self.layer = layer
        self.layout = layout_of(state)
        self.taps = taps_up_to(layer)
        self.tap_index = LAYOUT_TAPS[self.layout]
        self.features = build_features(layer, self.layout)
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
        self.convention = convention
        self.weights_sha256 = encoder_state_sha256(own)
        order, scale, shift = convention_tensors(convention)
        self.channel_order = order
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)
        self.requires_grad_(False)
        self.eval()

    def features_state_keys(self) -> list[str]:
        """State-dict keys of the convolutions this prefix uses (torchvision naming)."""
        last = self.tap_index[self.layer]
        return [f"features.{idx}.{kind}" for idx, _, _ in LAYOUT_CONVS[self.layout] if idx <= last
                for kind in ("weight", "bias")]

    def train(self, mode: bool = True) -> VGGEncoder:
        """The encoder never leaves eval mode (it is frozen)."""
        return super().train(False)

    def normalized(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [0, 1] → this encoder's input convention (``convention_tensors``)."""
        return image[:, self.channel_order] * self.scale.to(image.dtype) - self.shift.to(image.dtype)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, 3, H, W) in [0, 1] → {tap name: (N, C_tap, H/2^k, W/2^k)}."""
        x = self.normalized(image)
        outputs: dict[str, torch.Tensor] = {}
        wanted = {self.tap_index[t]: t for t in self.taps}
        for idx, module in enumerate(self.features):
            x = module(x)
            if idx in wanted:
                outputs[wanted[idx]] = x
        return outputs

    def deepest(self, image: torch.Tensor, layer: str | None = None) -> torch.Tensor:
        """Only the tap ``layer`` (default: the deepest built), (N, C, H/2^k, W/2^k)."""
        last = self.tap_index[layer or self.layer]
        if last > self.tap_index[self.layer]:
            raise ValueError(f"encoder stops at {self.layer}; {layer} is deeper")
        x = self.normalized(image)
        for module in self.features[: last + 1]:
            x = module(x)
        return x
