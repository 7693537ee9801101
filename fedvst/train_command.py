"""Central pre-training (``fedvst train``): image folders in, periodic verified checkpoints out."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from stylizer import (
    LossValues,
    PairSampler,
    StylizerConfig,
    build_model,
    load_model,
    make_optimizer,
    save_model,
    train_step,
)
from stylizer.checkpoint import metadata_path
from stylizer.config import MAX_LOSS_WEIGHT, NEUTRAL_RESIDUALS
from stylizer.device import autocast_dtype, pick_device
from stylizer.images import load_image_dir
from stylizer.training import WHOLE_PICTURE_COVER


@dataclass
class TrainSettings:
    """What ``fedvst train`` was asked to do."""

    content_dir: Path
    style_dir: Path
    steps: int
    out: Path
    init: Path | None = None
    base_size: int = 64
    scale_min: float = 1.0
    scale_max: float = 3.0
    batch_size: int = 2
    lr: float = 1e-4
    checkpoint_every: int = 500
    seed: int = 0
    config: StylizerConfig | None = None
    vgg_weights: Path | None = None
    device: str | None = None
    precision: str = "fp32"
    cover: tuple[float, float] | None = WHOLE_PICTURE_COVER  # crops span this share of each picture
    style_jitter: bool = False  # vary each style crop's colours and flip crops (stylizer.training.PairSampler)
    glow_weight: float | None = None  # the model's glow_weight for this training and after (None: keep it)
    neutral_residual: str | None = None  # the model's neutral_residual for this training and after (None: keep it)
    overrides: dict[str, Any] | None = None  # more config fields (TRAINING_OVERRIDABLE) for this training and after


# Config fields no learned tensor's shape depends on: a continued training may change them (``overrides``).
TRAINING_OVERRIDABLE = ("style_weight", "style_from", "style_regions", "colour_weight", "colour_reference",
                        "content_reference", "smoothness_weight", "glow_weight", "colour_guard", "colour_projection",
                        "flat_contrast", "neutral_residual", "residual_bound")
MAX_BASE_SIZE = 1024  # px; crops are base_size·r on a side, and the encoder runs on them
MAX_TRAIN_SCALE = 8.0


def check_settings(settings: TrainSettings) -> None:
    """ValueError (one line) for settings training could not use; checked before any work starts."""
    out = Path(settings.out)
    if out.suffix != ".safetensors":  # found out now, not at the first checkpoint
        raise ValueError(f"--out must end in .safetensors, got {out}")
    if out.is_dir() or metadata_path(out).is_dir():
        raise ValueError(f"--out {out} is a folder; name the .safetensors file to write")
    if out.parent.exists() and not out.parent.is_dir():
        raise ValueError(f"--out {out}: {out.parent} is not a folder")
    existing = next(folder for folder in (out.absolute().parent, *out.absolute().parents) if folder.exists())
    try:  # a real write, as the checkpoint's will be (permission bits say nothing on /proc or a read-only mount)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError:
        raise ValueError(f"--out {out}: the folder {existing} is not writable; choose a folder "
                         "you can write to") from None
    if not 16 <= settings.base_size <= MAX_BASE_SIZE:
        raise ValueError(f"--base-size must be 16…{MAX_BASE_SIZE} px, got {settings.base_size}")
    if not 0 < settings.scale_min <= settings.scale_max <= MAX_TRAIN_SCALE:
        raise ValueError(f"need 0 < --scale-min <= --scale-max <= {MAX_TRAIN_SCALE:g}, got {settings.scale_min} and "
                         f"{settings.scale_max}")
    if not 0 < settings.lr < 1:
        raise ValueError(f"--lr must be in (0, 1), got {settings.lr}")
    if settings.glow_weight is not None and not 0 <= settings.glow_weight < MAX_LOSS_WEIGHT:
        raise ValueError(f"--glow-weight must be a number in [0, {MAX_LOSS_WEIGHT:g}), got {settings.glow_weight}")
    if settings.neutral_residual is not None and settings.neutral_residual not in NEUTRAL_RESIDUALS:
        raise ValueError(f"--neutral-residual must be one of {', '.join(NEUTRAL_RESIDUALS)}, "
                         f"got {settings.neutral_residual!r}")
    unknown = sorted(set(settings.overrides or {}) - set(TRAINING_OVERRIDABLE))
    if unknown:
        raise ValueError(f"cannot override {', '.join(unknown)} when training: only {', '.join(TRAINING_OVERRIDABLE)}")
    if settings.overrides:  # each value checked by StylizerConfig now, not after the pictures are loaded
        try:
            replace(StylizerConfig(loss_layer="relu4_1"), **settings.overrides)
        except (TypeError, ValueError) as error:
            raise ValueError(f"config override refused: {error}") from None


def run_training(settings: TrainSettings, progress: bool = True) -> LossValues:
    """Train, checkpointing every ``checkpoint_every`` steps and at the end; returns the last losses."""
    check_settings(settings)
    torch.manual_seed(settings.seed)
    contents = load_image_dir(settings.content_dir, "content")
    styles = load_image_dir(settings.style_dir, "style")
    init_sha256 = None
    if settings.init is not None:
        model, init_checkpoint = load_model(settings.init, vgg_weights=settings.vgg_weights)
        init_sha256 = init_checkpoint.sha256
    else:
        model = build_model(settings.config, vgg_weights=settings.vgg_weights)
    if settings.glow_weight is not None:  # a loss weight only: no tensor's shape depends on it
        model.config = replace(model.config, glow_weight=float(settings.glow_weight))
    if settings.neutral_residual is not None:  # a projection of the residual: no tensor's shape depends on it
        model.config = replace(model.config, neutral_residual=settings.neutral_residual)
    if settings.overrides:  # validated by StylizerConfig itself
        model.config = replace(model.config, **settings.overrides)
    device = pick_device(settings.device)
    model.to(device)
    dtype = autocast_dtype(device, settings.precision)
    sampler = PairSampler(contents, styles, base_size=settings.base_size,
                          scales=(settings.scale_min, settings.scale_max), seed=settings.seed, cover=settings.cover,
                          style_jitter=settings.style_jitter)
    optimizer = make_optimizer(model, lr=settings.lr)
    recipe = {"steps": settings.steps, "base_size": settings.base_size, "scales": [settings.scale_min,
              settings.scale_max], "batch_size": settings.batch_size, "lr": settings.lr, "seed": settings.seed,
              "cover": list(settings.cover) if settings.cover else None, "style_jitter": settings.style_jitter,
              "init_sha256": init_sha256, "glow_weight": model.config.glow_weight,
              "neutral_residual": model.config.neutral_residual, "overrides": dict(settings.overrides or {}),
              "content_images": len(contents), "style_images": len(styles)}
    smoothed: LossValues | None = None
    last = LossValues(float("nan"), float("nan"), float("nan"))
    started = time.monotonic()
    bar = tqdm(range(1, settings.steps + 1), desc="train", unit="step", disable=not progress)
    for step in bar:
        last = train_step(model, sampler.sample(settings.batch_size), optimizer, autocast_dtype=dtype)
        smoothed = last if smoothed is None else LossValues(
            *(0.95 * a + 0.05 * b for a, b in zip(smoothed.as_dict().values(), last.as_dict().values(), strict=True)))
        bar.set_postfix(total=f"{smoothed.total:.4f}", content=f"{smoothed.content:.4f}",
                        style=f"{smoothed.style:.4f}")
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            save_model(settings.out, model, step=step, metrics=smoothed.as_dict(), recipe=recipe,
                       wall_seconds=round(time.monotonic() - started, 1))
    return last
