"""Architecture configuration of the stylizer network (seeds/000 §3.3, seeds/002 Table II)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

ENCODER_LAYERS = ("relu3_1", "relu4_1")
COLORIZATIONS = ("linear", "wct")


@dataclass(frozen=True)
class StylizerConfig:
    """Hyper-parameters that fix the shapes of every learned tensor.

    encoder_layer: deepest VGG-19 layer used ("relu3_1" or "relu4_1").
    decoder_width: width multiplier alpha in (0, 1] for the decoder's channels.
    colorization: "linear" (learned transform) or "wct" (closed form, no parameters).
    matrix_dim: side of the learned transform matrix of the linear colorization.
    upsample_channels: feature maps N_u produced by the meta-smoothing deconvolution.
    kernel_size: H_u = W_u = H_s = W_s of the meta-smoothing kernels (paper: 5).
    """

    encoder_layer: str = "relu3_1"
    decoder_width: float = 1.0
    colorization: str = "linear"
    matrix_dim: int = 32
    upsample_channels: int = 8
    kernel_size: int = 5

    def __post_init__(self) -> None:
        if self.encoder_layer not in ENCODER_LAYERS:
            raise ValueError(f"encoder_layer must be one of {ENCODER_LAYERS}, got {self.encoder_layer!r}")
        if not 0.0 < self.decoder_width <= 1.0:
            raise ValueError(f"decoder_width must be in (0, 1], got {self.decoder_width}")
        if self.colorization not in COLORIZATIONS:
            raise ValueError(f"colorization must be one of {COLORIZATIONS}, got {self.colorization!r}")
        if self.matrix_dim < 1 or self.upsample_channels < 3:
            raise ValueError("matrix_dim must be >= 1 and upsample_channels >= 3")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number, got {self.kernel_size}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> StylizerConfig:
        """Inverse of to_dict; unknown keys are an error (a newer format we cannot honour)."""
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown stylizer config keys: {sorted(unknown)}")
        return cls(**values)
