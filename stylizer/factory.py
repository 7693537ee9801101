"""Build stylizer networks and move them to and from checkpoints (encoder identity checked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from stylizer.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from stylizer.config import StylizerConfig
from stylizer.encoder import VGGEncoder
from stylizer.encoder_weights import EncoderWeights, resolve_weights, weights_for_identity
from stylizer.model import StylizerNet

BUILTIN_CHECKPOINT = Path(__file__).parent / "assets" / "builtin.safetensors"
IMAGE_HEAD_CHECKPOINT = Path(__file__).parent / "assets" / "image_head.safetensors"


def builtin_checkpoint_path() -> Path:
    """The small pre-trained model shipped in the package (affine head; docs/benchmarks.md has its recipe)."""
    return BUILTIN_CHECKPOINT


def image_head_checkpoint_path() -> Path:
    """The former built-in model (the paper's image head, written before heads existed), kept for comparison."""
    return IMAGE_HEAD_CHECKPOINT


def build_encoder(layer: str, weights: EncoderWeights) -> VGGEncoder:
    """A frozen encoder for ``layer`` from ``weights`` (fresh module, shared tensors are copied)."""
    return VGGEncoder(layer, weights.state, weights.identity, weights.convention)


def build_model(config: StylizerConfig | None = None, weights: EncoderWeights | None = None,
                *, vgg_weights: Path | None = None, allow_download: bool = True) -> StylizerNet:
    """A freshly initialised network; weights default to ``resolve_weights``."""
    config = config or StylizerConfig()
    weights = weights or resolve_weights(vgg_weights, allow_download=allow_download)
    return StylizerNet(config, build_encoder(config.encoder_depth, weights))


def model_metadata(model: StylizerNet, **fields: Any) -> dict[str, Any]:
    """Metadata every checkpoint of ``model`` carries, plus caller ``fields`` (round, metrics…)."""
    meta: dict[str, Any] = {
        "encoder": {"identity": model.encoder.identity, "layer": model.encoder.layer,
                    "weights_sha256": model.encoder.weights_sha256},
        "config": model.config.to_dict(),
    }
    meta.update(fields)
    return meta


def save_model(path: Path, model: StylizerNet, **fields: Any) -> str:
    """Checkpoint ``model``'s learned tensors with its metadata; returns the sha256."""
    return save_checkpoint(Path(path), model.trainable_state(), model_metadata(model, **fields))


def model_from_description(description: dict[str, Any], state: dict[str, torch.Tensor], *,
                           vgg_weights: Path | None = None, allow_download: bool = True) -> StylizerNet:
    """Rebuild a network from checkpoint-style metadata (``encoder``, ``config``) and its tensors."""
    encoder_meta = description.get("encoder")
    if not isinstance(encoder_meta, dict) or not isinstance(description.get("config"), dict):
        raise CheckpointError("model description lacks 'encoder' or 'config'")
    try:
        config = StylizerConfig.from_dict(description["config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"model has an unusable config: {exc}") from None
    identity = str(encoder_meta.get("identity", ""))
    try:
        weights = weights_for_identity(identity, vgg_weights, allow_download=allow_download)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    encoder = build_encoder(config.encoder_depth, weights)
    if encoder.weights_sha256 != encoder_meta.get("weights_sha256"):
        raise CheckpointError(f"encoder {identity} rebuilt here differs from the one the checkpoint was trained "
                              "against (weights hash mismatch)")
    model = StylizerNet(config, encoder)
    try:
        model.load_trainable_state(state)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint does not fit its own architecture: {exc}") from None
    return model


def model_from_checkpoint(checkpoint: Checkpoint, *, vgg_weights: Path | None = None,
                          allow_download: bool = True) -> StylizerNet:
    """Rebuild the network a verified checkpoint describes, against the encoder it names."""
    return model_from_description(checkpoint.metadata, checkpoint.state, vgg_weights=vgg_weights,
                                  allow_download=allow_download)


def load_model(path: Path | None = None, *, vgg_weights: Path | None = None,
               allow_download: bool = True) -> tuple[StylizerNet, Checkpoint]:
    """Load and verify a checkpoint (default: the built-in one) and build its network."""
    checkpoint = load_checkpoint(Path(path) if path is not None else builtin_checkpoint_path())
    return model_from_checkpoint(checkpoint, vgg_weights=vgg_weights, allow_download=allow_download), checkpoint
