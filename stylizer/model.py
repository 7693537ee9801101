"""The stylizer network of seeds/000 Figure 4: encoder → colorization → decoder → meta-smoothing.

Images are float RGB in [0, 1], shape (N, 3, H, W). Only colorization, decoder and
meta-smoothing learn; their tensors (``trainable_state``) are what checkpoints hold and
what federated learning averages. The frozen encoder is identified, not stored.

Two decoder heads (``config.head``):

* ``image``: the paper's mirrored VGG decoder outputs pixels; meta-smoothing upscales them.
* ``affine``: the decoder outputs a low-resolution residual field of 3×4 colour transforms
  (``stylizer.field``); meta-smoothing smooths it with its learned kernels; it fades where the
  content is flat (``stylizer.flat_gate``); it is added to
  the closed-form MKL prior (``stylizer.colour_prior``), optionally followed by one global map that
  keeps the output's colour moments the prior's (``config.colour_projection``), and rendered on the
  full-resolution content, out(x) = A(x)·I_c(x) + b(x): edges and detail always come from the real image.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stylizer import field_stats
from stylizer.affine_decoder import AffineDecoder
from stylizer.colorization import LinearTransform, StyleCode, WhiteningColoring
from stylizer.colour_prior import colour_moments, colour_stats, mkl_from_stats, projection_transform
from stylizer.config import StylizerConfig
from stylizer.decoder import Decoder
from stylizer.encoder import TAP_CHANNELS, VGGEncoder, pool_count
from stylizer.feature_regions import STD_EPS
from stylizer.field import COEFFICIENTS
from stylizer.flat_gate import contrast_gate
from stylizer.losses import lab_mean_std
from stylizer.meta_smoothing import MetaSmoothing
from stylizer.render_torch import render_field

MIN_SIDE = 16  # smallest content/style side the encoder's pooling still makes sense for
_GAIN_ONLY = torch.tensor([1.0, 1.0, 1.0, 0.0] * 3)  # keeps a cell's 3×3 gains, zeroes its offsets
GUARD_SHARES = (1.0, 0.5, 0.25)  # shares of the residual the colour guard tries, largest first (else none)
GUARD_TOLERANCE = 0.005  # how much further from the style's Lab statistics than the prior the output may land
GUARD_LAB_WEIGHTS = (2.55, 1.0, 1.0, 2.55, 1.0, 1.0)  # L counts as in 8-bit Lab (0–255 for 0–100), as the metric


PROJECTION_PASSES = 2  # the colour projection's passes (a clipped output misses its target after one)
REFERENCE_WIDTH = 256  # the prior's statistics and the colour guard see the content at most this wide (≥ 128)


def reference_copy(image: torch.Tensor, width: int = REFERENCE_WIDTH) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] → the same shrunk (never enlarged, aspect kept) to at most ``width`` px
    wide: what ``StylizerNet.field`` measures the prior's colour statistics on. On the 123 held-out
    corpus pairs a map fitted at 256 px lands as near the style's colour as one fitted at full size
    (0.160 against 0.161), one fitted at 128 px does not (0.168)."""
    height, current = image.shape[-2:]
    if current <= width:
        return image
    size = (max(1, round(height * width / current)), width)
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def scale_factor(size_in: tuple[int, int], size_out: tuple[int, int]) -> float:
    """The r of an (H, W) → (H', W') upscaling: geometric mean of the two axes' factors."""
    return math.sqrt((size_out[0] / size_in[0]) * (size_out[1] / size_in[1]))


def with_neutral_response(residual: torch.Tensor, mode: str, gate: torch.Tensor) -> torch.Tensor:
    """(N, D·12, gh, gw) gain-only residual field, already multiplied by its (N, 1, gh, gw) ``gate`` →
    the same with each cell's response to neutral colours, the row sums of its 3×3 gains
    (A_res·(1, 1, 1)), replaced: by one response for the whole item (``mode`` "global": the
    gate-weighted mean of the cells' ungated responses, so the cells where the residual acts decide
    it and every grey of the frame, flat regions included, is shifted alike) or by 0 ("none"). The
    part of each row orthogonal to (1, 1, 1), which acts on a pixel's chroma only, is left as it is."""
    cells = residual.unflatten(1, (-1, 3, 4))  # (N, D, 3 rows, 4 = 3 gains | offset, gh, gw)
    gains = cells[:, :, :, :3]
    row_mean = gains.mean(dim=3, keepdim=True)  # (N, D, 3, 1, gh, gw): a third of each row's sum
    if mode == "global":
        weight = gate.sum(dim=(2, 3)).clamp_min(1e-12).view(-1, 1, 1, 1, 1, 1)
        neutral = row_mean.sum(dim=(4, 5), keepdim=True) / weight
    else:
        neutral = torch.zeros_like(row_mean)
    return torch.cat([gains - row_mean + neutral, cells[:, :, :, 3:]], dim=3).flatten(1, 3)


def _kernels_apply(field: torch.Tensor, image: torch.Tensor) -> bool:
    """Whether ``stylizer.field_stats``'s CPU kernels may measure ``field`` (N, D·12, gh, gw) on
    ``image`` (N, 3, H, W): on the CPU, a plain field (D = 1), no gradient wanted."""
    return (image.device.type == "cpu" and field.device.type == "cpu" and field.shape[1] == COEFFICIENTS
            and not (torch.is_grad_enabled() and (field.requires_grad or image.requires_grad)))


def _cells(field: torch.Tensor, item: int) -> np.ndarray:
    """Item ``item`` of a (N, 12, gh, gw) field as (gh, gw, 12) float32 cells."""
    return field[item].detach().float().permute(1, 2, 0).numpy()


def output_moments(field: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``colour_moments(render_field(field, image))``: float64 (N, 3) means and (N, 3, 3) covariances
    of the clamped output of ``field`` (N, D·12, gh, gw; gh = gw = 1 for one global map) on ``image``
    (N, 3, H, W) in [0, 1]; by one CPU pass per item where no gradient is wanted
    (``stylizer.field_stats``), else differentiably in torch."""
    if not _kernels_apply(field, image):
        return colour_moments(render_field(field, image))
    pairs = [field_stats.output_moments(image[item].detach().float().numpy(), _cells(field, item))
             for item in range(image.shape[0])]
    return (torch.from_numpy(np.stack([mean for mean, _ in pairs])),
            torch.from_numpy(np.stack([cov for _, cov in pairs])))


def guard_lab_stats(image: torch.Tensor, base: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
    """(2 + len(GUARD_SHARES), N, 6) float32 ``lab_mean_std`` of ``image`` (N, 3, H, W) itself, of the
    field ``base`` (N, D·12, 1 or gh, 1 or gw) rendered on it, and of base + α·``change`` rendered on it
    for each α of GUARD_SHARES (rendering is linear in the field before its clamp: the two unclamped
    outputs are found once); by one CPU pass per item where ``stylizer.field_stats`` applies."""
    count = image.shape[0]
    if _kernels_apply(change, image):
        shares = np.asarray(GUARD_SHARES, dtype=np.float32)
        stats = []
        for item in range(count):
            changed = _cells(change, item)
            stats.append(field_stats.guard_lab_stats(image[item].detach().float().numpy(),
                                                     np.broadcast_to(_cells(base, item), changed.shape), changed,
                                                     shares, STD_EPS))
        return torch.from_numpy(np.stack(stats, axis=1)).float()
    based = render_field(base, image, clamp=False)
    changed = render_field(change, image, clamp=False)
    candidates = [image, based.clamp(0.0, 1.0)] + [(based + alpha * changed).clamp(0.0, 1.0) for alpha in GUARD_SHARES]
    return lab_mean_std(torch.cat(candidates)).unflatten(0, (len(candidates), count))


class StylizerNet(nn.Module):
    """Figure 4 with a frozen ``encoder``; see module docstring for tensor conventions."""

    def __init__(self, config: StylizerConfig, encoder: VGGEncoder) -> None:
        super().__init__()
        if encoder.layer != config.encoder_depth:
            raise ValueError(f"encoder stops at {encoder.layer}, config wants {config.encoder_depth}")
        self.config = config
        self.encoder = encoder
        channels = TAP_CHANNELS[config.encoder_layer]
        self.colorization: nn.Module = (LinearTransform(channels, config.matrix_dim)
                                        if config.colorization == "linear" else WhiteningColoring())
        feature_stride = 2 ** pool_count(config.encoder_layer)
        if config.head == "image":
            self.decoder: nn.Module = Decoder(config.encoder_layer, config.decoder_width)
            self.meta_smoothing = MetaSmoothing(config.upsample_channels, config.kernel_size)
            self.multiple = feature_stride
        else:
            field_channels = config.grid_depth * COEFFICIENTS
            self.decoder = AffineDecoder(channels, feature_stride, config.grid_stride, config.grid_depth,
                                         config.decoder_width, config.normalize_decoder_inputs)
            self.meta_smoothing = MetaSmoothing(max(config.upsample_channels, field_channels), config.kernel_size,
                                                field_channels)
            self.multiple = config.grid_stride

    @property
    def head(self) -> str:
        return self.config.head

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
            image = F.pad(image, (0, pad_w, 0, pad_h), mode="reflect" if min(height, width) > self.multiple
                          else "replicate")
        return image

    def style_code(self, style: torch.Tensor) -> StyleCode:
        """(N, 3, H, W) style image → its StyleCode (compute once per style)."""
        code = self.colorization.style_code(self.encoder.deepest(self._padded(style), self.config.encoder_layer))
        code.colour_mean, code.colour_cov = colour_stats(style)
        code.lab_stats = lab_mean_std(style.detach()).detach()
        return code

    def grid_size(self, height: int, width: int) -> tuple[int, int]:
        """Field cells (gh, gw) for an (H, W) network input (affine head)."""
        stride = self.config.grid_stride
        return max(1, math.ceil(height / stride)), max(1, math.ceil(width / stride))

    def _fit_grid(self, residual: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Resample a field that spans the padded input onto cells that span exactly H × W."""
        stride = self.config.grid_stride
        padded_h, padded_w = residual.shape[-2:]
        grid_h, grid_w = self.grid_size(height, width)
        if (padded_h * stride, padded_w * stride) == (height, width):
            return residual
        ys = (torch.arange(grid_h, device=residual.device, dtype=torch.float32) + 0.5) * (height / grid_h) / stride
        xs = (torch.arange(grid_w, device=residual.device, dtype=torch.float32) + 0.5) * (width / grid_w) / stride
        gy, gx = torch.meshgrid(2.0 * ys / padded_h - 1.0, 2.0 * xs / padded_w - 1.0, indexing="ij")
        grid = torch.stack([gx, gy], dim=-1)[None].expand(residual.shape[0], -1, -1, -1).to(residual.dtype)
        return F.grid_sample(residual, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def field(self, content: torch.Tensor, code: StyleCode, r: float = 1.0,
              reference: torch.Tensor | None = None) -> torch.Tensor:
        """Affine head: (N, 3, H, W) content → (N, D·12, gh, gw) float32 field for output scale ``r``.

        ``reference`` (N, 3, H', W'): the same content at (or nearer) the resolution the field is
        rendered at; the prior's colour statistics and the colour guard are measured on it (default:
        ``content``). A shrunk picture has less variance than the picture (its fine detail is averaged
        away), so a prior fitted to the network's small input overshoots the style's contrast on the
        full-resolution output (docs/benchmarks.md, "The prior's colour statistics at the output's
        resolution").
        """
        if self.head != "affine":
            raise ValueError("only the affine head predicts a colour field")
        height, width = content.shape[-2:]
        features = self.encoder.deepest(self._padded(content), self.config.encoder_layer)
        code = code.expand(content.shape[0])
        residual = self.decoder(features, self.colorization(features, code))
        with torch.autocast(device_type=content.device.type, enabled=False):
            residual = self._fit_grid(residual.float(), height, width)
            residual = self.meta_smoothing.smooth_field(residual, r)
            bound = self.config.residual_bound  # each coefficient squashed into (−bound, bound): near the prior
            residual = bound * torch.tanh(residual / bound)
            gate = contrast_gate(content, tuple(residual.shape[-2:]), self.config.flat_contrast)
            residual = residual * gate
            if not self.config.residual_offsets:  # out − prior = A_res(x)·I(x): nothing on black, at any cell
                residual = residual * _GAIN_ONLY.to(residual).repeat(self.config.grid_depth).view(1, -1, 1, 1)
            if self.config.neutral_residual != "local":  # what the residual does to greys: one shift, or none
                residual = with_neutral_response(residual, self.config.neutral_residual, gate)
            reference = content if reference is None else self._check_reference(reference, content)
            prior_map = self.prior(reference, code).to(residual.dtype)  # (N, 3, 4)
            prior = prior_map.reshape(-1, COEFFICIENTS, 1, 1).repeat(1, self.config.grid_depth, 1, 1)
            field = prior + residual
            if self.config.colour_projection:
                field = self._project_colour(field, prior_map, reference)
            if self.config.colour_guard and not self.training and code.lab_stats is not None:
                field = self._guard_colour(field, prior, reference, code.lab_stats)
            return field

    @staticmethod
    def _check_reference(reference: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
        if reference.dim() != 4 or reference.shape[:2] != content.shape[:2]:
            raise ValueError(f"reference {tuple(reference.shape)} must be (N, 3, H', W') for content "
                             f"{tuple(content.shape)}")
        return reference

    @staticmethod
    def _project_colour(field: torch.Tensor, prior_map: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """``field`` (N, D·12, gh, gw) followed by the global affine map that carries its output's RGB
        mean and covariance on ``reference`` (N, 3, H', W') onto those of the (N, 3, 4) prior map's
        output (``projection_transform``); differentiable through the output's moments, the prior's
        are fixed."""
        image = reference.float()
        with torch.no_grad():
            target = output_moments(prior_map.reshape(-1, COEFFICIENTS, 1, 1).to(image.dtype), image)
        for _ in range(PROJECTION_PASSES):  # clipping at 0 and 1 leaves a remainder that a second pass takes
            transform = projection_transform(*output_moments(field, image), *target).to(field.dtype)
            cells = field.unflatten(1, (-1, 3, 4))  # (N, D, 3, 4, gh, gw)
            gains = torch.einsum("nij,ndjkhw->ndikhw", transform[:, :, :3], cells)
            offsets = gains[:, :, :, 3:] + transform[:, None, :, 3:, None, None]
            field = torch.cat([gains[:, :, :, :3], offsets], dim=3).flatten(1, 3)
        return field

    def _guard_colour(self, field: torch.Tensor, prior: torch.Tensor, content: torch.Tensor,
                      style_lab: torch.Tensor) -> torch.Tensor:
        """Inference: keep the largest share α ∈ GUARD_SHARES of each item's residual whose output on
        ``content`` lands at most GUARD_TOLERANCE (relative to the content's own distance, as
        ``bench_photoreal``'s colour) further from the style's CIELAB mean and deviation than the
        prior's output: the learned part may move local contrast, not make the colour worse than the
        closed-form transfer it starts from (α = 0 is the prior itself)."""
        with torch.no_grad():
            image = content.detach().float().contiguous()  # a channels_last copy makes every reduction strided
            count = image.shape[0]
            weights = image.new_tensor(GUARD_LAB_WEIGHTS)
            stats = guard_lab_stats(image, prior.detach(), field.detach() - prior.detach()) * weights
            distance = (stats - (style_lab.float() * weights)[None]).norm(dim=2)  # (2 + shares, N)
            distance = distance / distance[0].clamp_min(1e-6)  # relative to the content's own distance
            limit = distance[1] + GUARD_TOLERANCE
            share = torch.zeros(count, device=field.device)
            for row, alpha in enumerate(GUARD_SHARES, start=2):  # largest first: an item keeps the first within
                fits = (share == 0) & (distance[row] <= limit)
                share = torch.where(fits, torch.full_like(share, alpha), share)
        return prior + share.view(-1, 1, 1, 1).to(field.dtype) * (field - prior)

    def prior(self, content: torch.Tensor, code: StyleCode) -> torch.Tensor:
        """The closed-form MKL transforms (N, 3, 4) float64 of ``content`` toward the style of ``code``."""
        if code.colour_mean is None or code.colour_cov is None:
            raise ValueError("style code lacks the style's colour statistics: recompute it with style_code")
        return mkl_from_stats(*colour_stats(content), code.colour_mean, code.colour_cov)

    def forward(self, content: torch.Tensor, code: StyleCode, size: tuple[int, int],
                full: torch.Tensor | None = None) -> torch.Tensor:
        """Stylize ``content`` (N, 3, H, W) with ``code``; output (N, 3, *size), size = (H', W').

        Affine head: the field is rendered on ``full`` (N, 3, H', W'), the content at the output
        size (default: ``content`` resized to it; pass the real full-resolution image when there is one).
        """
        height, width = content.shape[-2:]
        if self.head == "image":
            features = self.encoder.deepest(self._padded(content), self.config.encoder_layer)
            decoded = self.decoder(self.colorization(features, code))[..., :height, :width]
            return self.meta_smoothing(decoded, size)
        if full is None:
            full = content if tuple(size) == (height, width) else F.interpolate(
                content, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
        elif tuple(full.shape[-2:]) != tuple(size):
            raise ValueError(f"full-resolution content is {tuple(full.shape[-2:])}, output size is {tuple(size)}")
        field = self.field(content, code, scale_factor((height, width), size),
                           reference_copy(full, max(REFERENCE_WIDTH, width)))
        with torch.autocast(device_type=content.device.type, enabled=False):
            return render_field(field, full.float())
