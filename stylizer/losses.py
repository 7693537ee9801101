"""Objective of seeds/000 Eq. 5: content + λ·style perceptual distance at the output size.

D is measured on the frozen encoder's features: content = feature MSE at the deepest tap;
style = MSE of per-channel means plus MSE of per-channel standard deviations, summed over
the taps relu1_1 … deepest. λ = 1 by default. For the affine head, training (``compute_losses``)
measures content against the prior's recolouring, adds CIELAB statistics to the style term
(``colour_statistics_loss``) and two regularisers of the field, an edge-aware smoothness
(``field_smoothness``) and the glow it paints on smooth pixels (``glow``); ``total`` is
content + λ·style for either head, the regularisers apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stylizer import cielab as lab
from stylizer.encoder import VGGEncoder
from stylizer.feature_regions import STD_EPS, region_style_distance
from stylizer.render_torch import luma, slice_field


@dataclass(frozen=True)
class LossValues:
    """Loss components as plain floats (what metrics, logs and Flower replies carry)."""

    total: float
    content: float
    style: float

    def as_dict(self) -> dict[str, float]:
        return {"total": self.total, "content": self.content, "style": self.style}


@dataclass
class LossTerms:
    """Loss components as scalar tensors (total carries the gradient)."""

    total: torch.Tensor
    content: torch.Tensor
    style: torch.Tensor
    regularizer: torch.Tensor | None = None  # weighted smoothness of the field (affine head)

    @property
    def objective(self) -> torch.Tensor:
        """What training minimises: Eq. 5 plus the regulariser, if any."""
        return self.total if self.regularizer is None else self.total + self.regularizer

    def values(self) -> LossValues:
        return LossValues(float(self.total.detach()), float(self.content.detach()), float(self.style.detach()))


def _mean_std(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = features.float().flatten(2)
    return flat.mean(-1), (flat.var(-1, unbiased=False) + STD_EPS).sqrt()


TargetFeatures = tuple[torch.Tensor, dict[str, torch.Tensor]]  # (content's deepest tap, style's taps)


def target_features(encoder: VGGEncoder, content_target: torch.Tensor,
                    style_target: torch.Tensor) -> TargetFeatures:
    """What Eq. 5 compares an output with: the content's deepest-tap features and the style's taps.
    They do not depend on the model, so a fixed evaluation set computes them once."""
    with torch.no_grad():
        return encoder.deepest(content_target), encoder(style_target)


def perceptual_loss(encoder: VGGEncoder, output: torch.Tensor, content_target: torch.Tensor,
                    style_target: torch.Tensor, style_weight: float = 1.0,
                    targets: TargetFeatures | None = None, style_from: str = "", regions: int = 1) -> LossTerms:
    """Eq. 5: (N, 3, H, W) output vs R^r(I_c) of the same size, and vs the style's feature statistics
    (``style_target`` (N, 3, H_s, W_s) may have any size: only per-channel means and deviations count).
    ``targets``: ``target_features`` of these targets with this encoder, if already computed.
    ``style_from``: the shallowest tap the style term sums over ("": relu1_1, every tap).
    ``regions``: > 1 compares the statistics per semantic region instead of over the whole picture
    (``stylizer.feature_regions.region_style_distance``; 1: Eq. 5 as written)."""
    if output.shape != content_target.shape or output.shape[:2] != style_target.shape[:2]:
        raise ValueError(f"loss needs the output's size for the content: output {tuple(output.shape)}, content "
                         f"{tuple(content_target.shape)}, style {tuple(style_target.shape)}")
    out_features = encoder(output)
    content_features, style_features = (targets if targets is not None
                                        else target_features(encoder, content_target, style_target))
    deepest = encoder.taps[-1]
    content = F.mse_loss(out_features[deepest].float(), content_features.float())
    first = encoder.taps.index(style_from) if style_from else 0
    if regions > 1:
        style = region_style_distance(out_features, content_features, style_features, encoder.taps[first:], regions)
        return LossTerms(content + style_weight * style, content, style)
    style = output.new_zeros((), dtype=torch.float32)
    for tap in encoder.taps[first:]:
        out_mean, out_std = _mean_std(out_features[tap])
        tgt_mean, tgt_std = _mean_std(style_features[tap])
        style = style + F.mse_loss(out_mean, tgt_mean) + F.mse_loss(out_std, tgt_std)
    return LossTerms(content + style_weight * style, content, style)


def field_smoothness(field: torch.Tensor, content: torch.Tensor, edge_scale: float = 0.1) -> torch.Tensor:
    """Edge-aware smoothness of a (N, C, gh, gw) field: squared differences of neighbouring cells,
    each weighted by exp(−|Δ luma| / edge_scale) of the (N, 3, H, W) content averaged onto the grid,
    so the field may change across the content's edges but not inside flat regions."""
    guide = F.adaptive_avg_pool2d(luma(content.float()), field.shape[-2:])
    field = field.float()
    loss = field.new_zeros(())
    if field.shape[-1] > 1:
        weight = torch.exp(-(guide[..., 1:] - guide[..., :-1]).abs() / edge_scale)
        loss = loss + (weight * (field[..., 1:] - field[..., :-1]).pow(2)).mean()
    if field.shape[-2] > 1:
        weight = torch.exp(-(guide[..., 1:, :] - guide[..., :-1, :]).abs() / edge_scale)
        loss = loss + (weight * (field[..., 1:, :] - field[..., :-1, :]).pow(2)).mean()
    return loss


GLOW_SMOOTH = 0.01  # local luma deviation ([0, 1] units, 5×5 pixels) at which a pixel counts half as smooth
GLOW_WINDOW = 5


def glow(field: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Glow of a (N, D·12, gh, gw) field rendered on (N, 3, H, W) ``content`` in [0, 1]: how far the
    colour of each smooth pixel would move if the field's transform one cell further right (or
    down) took it, squared, summed over the three channels, averaged over the pixels with weight
    σ₀² / (σ² + σ₀²) (σ the pixel's 5×5 luma deviation, σ₀ = ``GLOW_SMOOTH``: ≈ 1 on smooth pixels,
    ramps included, ≈ 0 on texture). A field that gives one surface one transform scores 0 there
    whatever its transforms elsewhere; one that paints a white cloud magenta in one cell and lime in
    the next (the built-in's glow, ``region_inconsistency``) scores their difference. Transforms
    may still differ between cells on colours that are not on the smooth pixels between them, so
    local adaptation of textured regions stays free. Per-pixel transforms are sliced at each pixel's
    own luma (exact for a plain field)."""
    image = content.float()
    transforms = slice_field(field.float(), image)
    y = luma(image)
    pad = GLOW_WINDOW // 2
    mean = F.avg_pool2d(y, GLOW_WINDOW, stride=1, padding=pad, count_include_pad=False)
    variance = (F.avg_pool2d(y * y, GLOW_WINDOW, stride=1, padding=pad, count_include_pad=False)
                - mean * mean).clamp_min(0.0)
    weight = GLOW_SMOOTH ** 2 / (variance + GLOW_SMOOTH ** 2)
    loss = transforms.new_zeros(())
    for dim, cells in ((3, field.shape[-1]), (2, field.shape[-2])):
        size = transforms.shape[dim]
        step = max(1, round(size / cells))
        if cells < 2 or size <= step:
            continue
        change = transforms.narrow(dim, step, size - step) - transforms.narrow(dim, 0, size - step)
        change = change.unflatten(1, (3, 4))  # (N, 3, 4, ...): rows of ΔA | Δb
        colours = image.narrow(dim, 0, size - step)
        moved = (change[:, :, :3] * colours[:, None]).sum(2) + change[:, :, 3]  # (N, 3, ...): unclamped
        loss = loss + (weight.narrow(dim, 0, size - step) * moved.pow(2).sum(1, keepdim=True)).mean()
    return loss


def rgb_to_lab(image: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) sRGB in [0, 1] → CIELAB (D65) scaled to L/100, a/100, b/100 (``stylizer.cielab``);
    differentiable."""
    image = image.float().clamp(0.0, 1.0)
    linear = torch.where(image > lab.SRGB_KNEE,
                         ((image.clamp_min(lab.SRGB_KNEE) + lab.SRGB_OFFSET) / lab.SRGB_SCALE).pow(lab.SRGB_GAMMA),
                         image / lab.SRGB_SLOPE)
    matrix = image.new_tensor(lab.RGB_TO_XYZ) / image.new_tensor(lab.WHITE)[:, None]
    xyz = torch.einsum("ij,njhw->nihw", matrix, linear)
    f = torch.where(xyz > lab.LAB_KNEE, xyz.clamp_min(lab.LAB_KNEE).pow(1.0 / 3.0),
                    lab.LAB_SLOPE * xyz + lab.LAB_OFFSET)
    lightness = lab.L_SCALE * f[:, 1] - lab.L_SHIFT
    return torch.stack([lightness, lab.A_SCALE * (f[:, 0] - f[:, 1]), lab.B_SCALE * (f[:, 1] - f[:, 2])], dim=1)


def lab_mean_std(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) sRGB in [0, 1] → (N, 6): the CIELAB means then standard deviations (L/100 scale)."""
    return torch.cat(_mean_std(rgb_to_lab(images)), dim=1)


def colour_statistics_loss(output: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Twice the MSE between the per-channel CIELAB means and standard deviations of ``output`` and
    ``style`` (the MSE of the means plus the MSE of the deviations)."""
    return 2.0 * F.mse_loss(lab_mean_std(output), lab_mean_std(style))
