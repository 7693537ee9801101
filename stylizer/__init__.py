"""The MVStylizer DNN (seeds/000 §3.3): VGG encoder, colorization, decoder, meta-smoothing.

Names are imported lazily, so that phone-side code that needs only ``stylizer.field`` and
``stylizer.render`` (NumPy and numba) never imports torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Checkpoint": "stylizer.checkpoint", "CheckpointError": "stylizer.checkpoint",
    "load_checkpoint": "stylizer.checkpoint", "save_checkpoint": "stylizer.checkpoint",
    "StylizerConfig": "stylizer.config",
    "build_model": "stylizer.factory", "builtin_checkpoint_path": "stylizer.factory", "load_model": "stylizer.factory",
    "model_from_checkpoint": "stylizer.factory", "save_model": "stylizer.factory",
    "ImageError": "stylizer.images", "load_image": "stylizer.images",
    "Stylizer": "stylizer.inference", "LossValues": "stylizer.losses", "StylizerNet": "stylizer.model",
    "PairSampler": "stylizer.training", "TrainBatch": "stylizer.training", "evaluate": "stylizer.training",
    "make_optimizer": "stylizer.training", "train_step": "stylizer.training",
    "ColourField": "stylizer.field", "FieldError": "stylizer.field",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'stylizer' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
