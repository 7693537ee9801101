"""Colorization: give content features the statistics of style features (seeds/000 Eq. 2).

The paper's Eq. 2 is garbled; we read it as a learned linear feature transform
(LinearStyleTransfer, Li et al. 2019): the covariances of compressed content and style
features each map to a ``d × d`` matrix, their product transforms the centred, compressed
content features, which are expanded back and shifted by the style mean. The style half
(``StyleCode``) depends on the style alone and is computed once per style.

``WhiteningColoring`` is the closed-form WCT baseline (no parameters).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class StyleCode:
    """What colorization needs from a style: (N, d, d) transform half (or (N, C, C) colouring
    matrix for WCT), the (N, C, 1, 1) feature mean and the (N, 1, 1, 1) feature RMS (float32);
    for the affine head's colour prior also the style's RGB mean (N, 3) and covariance (N, 3, 3),
    float64."""

    matrix: torch.Tensor
    mean: torch.Tensor
    scale: torch.Tensor
    colour_mean: torch.Tensor | None = None
    colour_cov: torch.Tensor | None = None
    lab_stats: torch.Tensor | None = None  # (N, 6) CIELAB means and deviations (the affine head's colour guard)

    def to(self, device: torch.device) -> StyleCode:
        return StyleCode(*(None if t is None else t.to(device) for t in
                           (self.matrix, self.mean, self.scale, self.colour_mean, self.colour_cov, self.lab_stats)))

    def expand(self, batch: int) -> StyleCode:
        """Broadcast a batch-1 code to ``batch`` items."""
        if self.matrix.shape[0] == batch:
            return self
        return StyleCode(self.matrix.expand(batch, -1, -1), self.mean.expand(batch, -1, -1, -1),
                         self.scale.expand(batch, -1, -1, -1),
                         None if self.colour_mean is None else self.colour_mean.expand(batch, -1),
                         None if self.colour_cov is None else self.colour_cov.expand(batch, -1, -1),
                         None if self.lab_stats is None else self.lab_stats.expand(batch, -1))


def _center(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean = features.mean(dim=(2, 3), keepdim=True)
    return features - mean, mean


def _unit_rms(centred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Divide each item by its overall RMS (N, 1, 1, 1), so the learned matrices see unit-scale
    features whatever the image's contrast; the style's RMS is put back after the transform."""
    scale = centred.float().pow(2).mean(dim=(1, 2, 3), keepdim=True).add(1e-6).sqrt()
    return centred / scale.to(centred.dtype), scale


class _CovarianceNet(nn.Module):
    """Conv stack C → d channels, then covariance (d × d) → fully connected → d × d matrix."""

    def __init__(self, channels: int, dim: int) -> None:
        super().__init__()
        mid = max(dim, channels // 2)
        self.convs = nn.Sequential(
            nn.Conv2d(channels, mid, 3, padding=1), nn.ReLU(),
            nn.Conv2d(mid, max(dim, mid // 2), 3, padding=1), nn.ReLU(),
            nn.Conv2d(max(dim, mid // 2), dim, 3, padding=1),
        )
        self.fc = nn.Linear(dim * dim, dim * dim)
        self.dim = dim

    def forward(self, centred: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) centred features → (N, d, d) float32."""
        out = self.convs(centred).float()
        n, d, h, w = out.shape
        flat = out.reshape(n, d, h * w)
        with torch.autocast(device_type=flat.device.type, enabled=False):
            cov = torch.bmm(flat, flat.transpose(1, 2)) / max(h * w, 1)
            return self.fc(cov.reshape(n, d * d)).reshape(n, d, d)


class LinearTransform(nn.Module):
    """Learned linear feature transform; content (N, C, H, W) → same shape."""

    def __init__(self, channels: int, dim: int = 32) -> None:
        super().__init__()
        self.content_net = _CovarianceNet(channels, dim)
        self.style_net = _CovarianceNet(channels, dim)
        self.compress = nn.Conv2d(channels, dim, 1)
        self.unzip = nn.Conv2d(dim, channels, 1)

    def style_code(self, style_features: torch.Tensor) -> StyleCode:
        """Style half, computed once per style image."""
        centred, mean = _center(style_features)
        centred, scale = _unit_rms(centred)
        return StyleCode(self.style_net(centred), mean.float(), scale.float())

    def forward(self, content_features: torch.Tensor, code: StyleCode) -> torch.Tensor:
        centred, _ = _center(content_features)
        centred, _ = _unit_rms(centred)
        content_matrix = self.content_net(centred)
        code = code.expand(content_features.shape[0])
        compressed = self.compress(centred).float()
        n, d, h, w = compressed.shape
        with torch.autocast(device_type=compressed.device.type, enabled=False):
            transform = torch.bmm(code.matrix.float(), content_matrix)
            mixed = torch.bmm(transform, compressed.reshape(n, d, h * w)).reshape(n, d, h, w)
        dtype = content_features.dtype
        return self.unzip(mixed.to(dtype)) * code.scale.to(dtype) + code.mean.to(dtype)


def _covariance64(centred: torch.Tensor) -> torch.Tensor:
    n, c, h, w = centred.shape
    if h * w < 2:
        raise ValueError(f"feature map of {h}×{w} has fewer than 2 pixels: image too small for WCT")
    flat = centred.reshape(n, c, h * w).double()
    return torch.bmm(flat, flat.transpose(1, 2)) / (h * w - 1)


def _matrix_power(cov: torch.Tensor, power: float, eps_scale: float) -> torch.Tensor:
    """cov^power for symmetric PSD (N, C, C) float64, eigenvalues floored at eps·trace/C."""
    c = cov.shape[-1]
    eps = eps_scale * cov.diagonal(dim1=-2, dim2=-1).sum(-1).clamp_min(1e-12) / c
    values, vectors = torch.linalg.eigh(cov)
    values = torch.maximum(values, eps[:, None])
    return vectors @ torch.diag_embed(values.pow(power)) @ vectors.transpose(-1, -2)


class WhiteningColoring(nn.Module):
    """Closed-form whitening–coloring transform (float64 eigendecomposition), no parameters."""

    def __init__(self, eps_scale: float = 1e-5) -> None:
        super().__init__()
        self.eps_scale = eps_scale

    def style_code(self, style_features: torch.Tensor) -> StyleCode:
        centred, mean = _center(style_features.double())
        return StyleCode(_matrix_power(_covariance64(centred), 0.5, self.eps_scale), mean.float(),
                         torch.ones_like(mean[:, :1]).float())

    def forward(self, content_features: torch.Tensor, code: StyleCode) -> torch.Tensor:
        centred, _ = _center(content_features.double())
        n, c, h, w = centred.shape
        whiten = _matrix_power(_covariance64(centred), -0.5, self.eps_scale)
        code = code.expand(n)
        colored = code.matrix.double() @ whiten @ centred.reshape(n, c, h * w)
        out = colored.reshape(n, c, h, w) + code.mean.double()
        return out.to(content_features.dtype)
