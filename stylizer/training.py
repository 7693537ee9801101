"""Training: random crops at several scales, one optimiser step, evaluation (seeds/000 §4.2).

A batch pairs a low-resolution network input with its full-resolution target: the target
crop is what R^r(I_c) means in Eq. 5, the input is that crop shrunk by r, so
meta-smoothing learns to upscale by many r at once.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from stylizer.colour_prior import apply_global
from stylizer.images import to_tensor
from stylizer.losses import (
    LossTerms,
    LossValues,
    TargetFeatures,
    colour_statistics_loss,
    field_smoothness,
    glow,
    perceptual_loss,
)
from stylizer.model import StylizerNet, scale_factor
from stylizer.render_torch import render_field

DEFAULT_LR = 1e-4
DEFAULT_BETAS = (0.5, 0.999)
DEFAULT_BATCH = 2
# Training crops span this share of each picture's shorter side, scaled to the network's input: the
# whole-picture context the network sees at inference (a key frame scaled to 128 px wide). Fixed-size
# crops of native pixels (cover None, the paper's recipe) show an edge's 64 px network mostly a patch
# of wall, where the flat gate rightly keeps the residual closed, so the edges learned nothing.
WHOLE_PICTURE_COVER = (0.5, 1.0)


@dataclass
class TrainBatch:
    """content/style: (B, 3, h, w) inputs; content_target/style_target: (B, 3, H, W), H ≈ r·h."""

    content: torch.Tensor
    content_target: torch.Tensor
    style: torch.Tensor
    style_target: torch.Tensor

    @property
    def target_size(self) -> tuple[int, int]:
        return int(self.content_target.shape[-2]), int(self.content_target.shape[-1])

    def to(self, device: torch.device) -> TrainBatch:
        return TrainBatch(*(t.to(device, non_blocking=True) for t in
                            (self.content, self.content_target, self.style, self.style_target)))


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize of (N, 3, H, W) to ``size`` = (H', W')."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)


def _random_crop(image: np.ndarray, side: int, rng: np.random.Generator,
                 cover: tuple[float, float] | None = None) -> torch.Tensor:
    """A side×side crop (1, 3, side, side) in [0, 1]; small images are first scaled up to fit. With
    ``cover`` = (low, high) the image is first scaled so that the crop spans a random fraction in
    that range of its shorter side (whole-picture context, as the network sees at inference)."""
    tensor = to_tensor(image)
    height, width = tensor.shape[-2:]
    if cover is not None:
        fraction = float(rng.uniform(*cover))
        factor = side / (fraction * min(height, width))
        tensor = resize(tensor, (max(side, round(height * factor)), max(side, round(width * factor))))
        height, width = tensor.shape[-2:]
    elif min(height, width) < side:
        factor = side / min(height, width)
        tensor = resize(tensor, (max(side, math.ceil(height * factor)), max(side, math.ceil(width * factor))))
        height, width = tensor.shape[-2:]
    top = int(rng.integers(0, height - side + 1))
    left = int(rng.integers(0, width - side + 1))
    return tensor[..., top:top + side, left:left + side]


def jitter_colours(image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1] with its colours varied: a random hue rotation about the grey axis, a
    saturation gain in [0.5, 1.5] and a gamma in [0.7, 1.4] (new styles from the same pictures)."""
    angle = float(rng.uniform(-math.pi, math.pi))
    saturation = float(rng.uniform(0.5, 1.5))
    gamma = float(rng.uniform(0.7, 1.4))
    axis = torch.full((3,), 3 ** -0.5, dtype=torch.float64)
    cross = torch.tensor([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]],
                         dtype=torch.float64)
    outer = torch.outer(axis, axis)
    rotation = math.cos(angle) * torch.eye(3, dtype=torch.float64) + math.sin(angle) * cross \
        + (1 - math.cos(angle)) * outer
    matrix = outer + saturation * (rotation - outer)  # keeps grey grey, turns and scales the chroma
    out = torch.einsum("ij,njhw->nihw", matrix.to(image.dtype), image).clamp(0.0, 1.0)
    return out.pow(gamma)


class PairSampler:
    """Random (content, style) crop pairs from in-memory (H, W, 3) uint8 images.

    ``base_size``: side of the network input; ``scales``: (low, high) range of r, drawn
    in steps of 0.25 so integer and fractional factors both occur; ``cover``: see ``_random_crop``
    (default ``WHOLE_PICTURE_COVER``; None: crops of fixed pixel size, the paper's recipe);
    ``style_jitter``: each style crop's colours are varied (``jitter_colours``) and crops are flipped
    left-right at random. Seeded: reproducible.
    """

    def __init__(self, contents: Sequence[np.ndarray], styles: Sequence[np.ndarray], *, base_size: int = 64,
                 scales: tuple[float, float] = (1.0, 3.0), seed: int = 0,
                 cover: tuple[float, float] | None = WHOLE_PICTURE_COVER, style_jitter: bool = False) -> None:
        if not contents or not styles:
            raise ValueError("training needs at least one content image and one style image")
        self.contents = list(contents)
        self.styles = list(styles)
        self.base_size = base_size
        self.scale_steps = np.arange(scales[0], scales[1] + 1e-9, 0.25)
        self.rng = np.random.default_rng(seed)
        if cover is not None and not 0.0 < cover[0] <= cover[1] <= 1.0:
            raise ValueError(f"cover must satisfy 0 < low <= high <= 1, got {cover}")
        self.cover = cover
        self.style_jitter = style_jitter

    def _augmented(self, crop: torch.Tensor, jitter: bool) -> torch.Tensor:
        if self.style_jitter and self.rng.random() < 0.5:
            crop = crop.flip(-1)
        return jitter_colours(crop, self.rng) if jitter and self.style_jitter else crop

    def sample(self, batch_size: int = DEFAULT_BATCH) -> TrainBatch:
        """One batch; every item shares one r (one target size)."""
        r = float(self.rng.choice(self.scale_steps))
        side = int(round(self.base_size * r))
        small = (self.base_size, self.base_size)
        content_targets, style_targets = [], []
        for _ in range(batch_size):
            content_targets.append(self._augmented(_random_crop(
                self.contents[int(self.rng.integers(len(self.contents)))], side, self.rng, self.cover), False))
            style_targets.append(self._augmented(_random_crop(
                self.styles[int(self.rng.integers(len(self.styles)))], side, self.rng, self.cover), True))
        content_target = torch.cat(content_targets)
        style_target = torch.cat(style_targets)
        return TrainBatch(resize(content_target, small), content_target, resize(style_target, small), style_target)

    def batches(self, count: int, batch_size: int = DEFAULT_BATCH) -> Iterator[TrainBatch]:
        for _ in range(count):
            yield self.sample(batch_size)


def make_optimizer(model: StylizerNet, lr: float = DEFAULT_LR,
                   betas: tuple[float, float] = DEFAULT_BETAS) -> torch.optim.Adam:
    """Adam over the learned modules only (paper: lr 1e-4, β = (0.5, 0.999))."""
    params = [p for module in model.learned_modules().values() for p in module.parameters()]
    return torch.optim.Adam(params, lr=lr, betas=betas)


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _device_of(model: StylizerNet) -> torch.device:
    return next(model.decoder.parameters()).device


def compute_losses(model: StylizerNet, batch: TrainBatch, targets: TargetFeatures | None = None) -> LossTerms:
    """Forward pass and Eq. 5 terms (LossTerms) for one batch on the model's device.

    The affine head's field is rendered on the full-resolution target crop (what R^r(I_c) is), and its
    prior's colour statistics are that crop's.
    Its content term compares the output with that crop (``content_reference`` "content", Eq. 5
    as written) or with the crop as the closed-form prior recolours it ("prior": the reference the
    field is a residual over), at the config's ``loss_tap``; its style term adds CIELAB statistics
    (``colour_weight``, against the style's or the prior output's: ``colour_reference``), and the
    weighted edge-aware smoothness of the field plus its weighted glow on the full-resolution crop
    (``glow_weight``, ``stylizer.losses.glow``) are the regulariser.
    ``total`` stays content + λ·style, λ the config's ``style_weight``; the style term sums the taps from
    the config's ``style_from`` down. ``targets``: the batch's ``target_features`` if already computed
    (with the "prior" reference they depend on the model: then they are ignored).
    """
    code = model.style_code(batch.style)
    style_weight = model.config.style_weight
    if model.head != "affine":
        output = model(batch.content, code, batch.target_size)
        return perceptual_loss(model.encoder, output, batch.content_target, batch.style_target, style_weight,
                               targets, model.config.style_from, model.config.style_regions)
    field = model.field(batch.content, code, scale_factor(tuple(batch.content.shape[-2:]), batch.target_size),
                        batch.content_target)
    with torch.autocast(device_type=field.device.type, enabled=False):
        full = batch.content_target.float()
        output = render_field(field, full)
        with torch.no_grad():
            prior_output = (apply_global(full, model.prior(full, code))
                            if "prior" in (model.config.content_reference, model.config.colour_reference) else None)
        reference = prior_output if model.config.content_reference == "prior" else full
        colour = colour_statistics_loss(output, prior_output if model.config.colour_reference == "prior"
                                        else batch.style_target)
    fixed = targets if model.config.content_reference != "prior" else None
    terms = perceptual_loss(model.encoder, output, reference, batch.style_target, style_weight, fixed,
                            model.config.style_from, model.config.style_regions)
    terms.style = terms.style + model.config.colour_weight * colour
    terms.total = terms.content + style_weight * terms.style
    terms.regularizer = model.config.smoothness_weight * field_smoothness(field, batch.content)
    if model.config.glow_weight > 0:
        terms.regularizer = terms.regularizer + model.config.glow_weight * glow(field, full)
    return terms


def train_step(model: StylizerNet, batch: TrainBatch, optimizer: torch.optim.Optimizer, *,
               autocast_dtype: torch.dtype | None = None,
               max_grad_norm: float = 10.0) -> LossValues:
    """One optimiser step on ``batch``; returns its losses. Non-finite loss raises, weights untouched."""
    device = _device_of(model)
    batch = batch.to(device)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    with _autocast(device, autocast_dtype):
        terms = compute_losses(model, batch)
    objective = terms.objective
    if not torch.isfinite(objective):
        raise FloatingPointError("training loss is not finite; step skipped")
    objective.backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    return terms.values()


@torch.no_grad()
def evaluate(model: StylizerNet, batches: Sequence[TrainBatch], *, autocast_dtype: torch.dtype | None = None,
             targets: Sequence[TargetFeatures | None] | None = None) -> LossValues:
    """Mean losses over ``batches`` without touching the weights (and without building a graph);
    ``targets``: each batch's ``target_features`` (a fixed set computes them once, ``HeldOutSet``)."""
    if not batches:
        raise ValueError("evaluation needs at least one batch")
    device = _device_of(model)
    model.eval()
    totals = np.zeros(3)
    for i, batch in enumerate(batches):
        with torch.inference_mode(), _autocast(device, autocast_dtype):
            values = compute_losses(model, batch.to(device), targets[i] if targets is not None else None).values()
        totals += (values.total, values.content, values.style)
    mean = totals / len(batches)
    return LossValues(float(mean[0]), float(mean[1]), float(mean[2]))


def optimizer_state_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """An Adam-style optimizer's per-parameter state as flat tensors (``<param index>.<name>``)."""
    flat: dict[str, torch.Tensor] = {}
    for index, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            tensor = value if isinstance(value, torch.Tensor) else torch.tensor(float(value))
            flat[f"{index}.{name}"] = tensor.detach().to("cpu", torch.float32).contiguous()
    return flat


def load_optimizer_state(optimizer: torch.optim.Optimizer, flat: dict[str, torch.Tensor]) -> bool:
    """Restore state saved by ``optimizer_state_tensors`` if it fits these parameters; False if not."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        index_text, _, name = key.partition(".")
        if not index_text.isdigit() or int(index_text) >= len(params) or not torch.isfinite(value).all():
            return False
        index = int(index_text)
        if name != "step" and value.shape != params[index].shape:
            return False
        state.setdefault(index, {})[name] = value.to(params[index].device)
    current = optimizer.state_dict()
    optimizer.load_state_dict({"state": state, "param_groups": current["param_groups"]})
    return True
