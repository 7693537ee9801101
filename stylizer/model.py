"""The stylizer network of seeds/000 Figure 4: encoder → colorization → decoder → meta-smoothing.

Images are float RGB in [0, 1], shape (N, 3, H, W). Only colorization, decoder and
meta-smoothing learn; their tensors (``trainable_state``) are what checkpoints hold and
what federated learning averages. The frozen encoder is identified, not stored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stylizer.colorization import LinearTransform, StyleCode, WhiteningColoring
from stylizer.config import StylizerConfig
from stylizer.decoder import Decoder
from stylizer.encoder import TAP_CHANNELS, VGGEncoder, pool_count
from stylizer.meta_smoothing import MetaSmoothing

MIN_SIDE = 16  # smallest content/style side the encoder's pooling still makes sense for


class StylizerNet(nn.Module):
    """Figure 4 with a frozen ``encoder``; see module docstring for tensor conventions."""

    def __init__(self, config: StylizerConfig, encoder: VGGEncoder) -> None:
        super().__init__()
        if encoder.layer != config.encoder_layer:
            raise ValueError(f"encoder stops at {encoder.layer}, config wants {config.encoder_layer}")
        self.config = config
        self.encoder = encoder
        channels = TAP_CHANNELS[config.encoder_layer]
        self.colorization: nn.Module = (LinearTransform(channels, config.matrix_dim)
                                        if config.colorization == "linear" else WhiteningColoring())
        self.decoder = Decoder(config.encoder_layer, config.decoder_width)
        self.meta_smoothing = MetaSmoothing(config.upsample_channels, config.kernel_size)
        self.multiple = 2 ** pool_count(config.encoder_layer)

    def learned_modules(self) -> dict[str, nn.Module]:
        """The modules that train (the encoder is frozen)."""
        return {"colorization": self.colorization, "decoder": self.decoder, "meta_smoothing": self.meta_smoothing}

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Every learned tensor by name (detached views, no encoder)."""
        return {f"{prefix}.{key}": value.detach() for prefix, module in self.learned_modules().items()
                for key, value in module.state_dict().items()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        """Copy ``state`` (exactly the keys and shapes of ``trainable_state``) into the model."""
        expected = self.trainable_state()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        if missing or unexpected:
            raise ValueError(f"model tensors do not match this architecture: missing {missing[:3]}"
                             f"{'…' if len(missing) > 3 else ''}, unexpected {unexpected[:3]}"
                             f"{'…' if len(unexpected) > 3 else ''}")
        for key, value in state.items():
            if tuple(value.shape) != tuple(expected[key].shape):
                raise ValueError(f"tensor {key} has shape {tuple(value.shape)}, "
                                 f"this architecture needs {tuple(expected[key].shape)}")
            if not value.dtype.is_floating_point:
                raise ValueError(f"tensor {key} has dtype {value.dtype}, expected floating point")
        with torch.no_grad():
            for prefix, module in self.learned_modules().items():
                own = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
                module.load_state_dict({k: v.to(torch.float32) for k, v in own.items()})

    def _padded(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        if min(height, width) < MIN_SIDE:
            raise ValueError(f"image of {height}×{width} is too small: both sides must be at least {MIN_SIDE} px")
        pad_h = (-height) % self.multiple
        pad_w = (-width) % self.multiple
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h), mode="reflect")
        return image

    def style_code(self, style: torch.Tensor) -> StyleCode:
        """(N, 3, H, W) style image → its StyleCode (compute once per style)."""
        return self.colorization.style_code(self.encoder.deepest(self._padded(style)))

    def forward(self, content: torch.Tensor, code: StyleCode, size: tuple[int, int]) -> torch.Tensor:
        """Stylize ``content`` (N, 3, H, W) with ``code``; output (N, 3, *size), size = (H', W')."""
        height, width = content.shape[-2:]
        features = self.encoder.deepest(self._padded(content))
        decoded = self.decoder(self.colorization(features, code))[..., :height, :width]
        return self.meta_smoothing(decoded, size)
