"""Closed-form global colour transfer: the linear Monge–Kantorovich map (Pitié & Kokaram 2007).

For content and style RGB means μc, μs and covariances Σc, Σs the map

    T = Σc^-½ (Σc^½ Σs Σc^½)^½ Σc^-½,    out = T·(x − μc) + μs

moves the content's colour distribution onto a Gaussian with the style's mean and covariance
along the least total displacement. It is the prior the affine head's field is a residual over.
Everything here is float64; the prior carries no gradient (it depends only on the images), while
``colour_moments`` and ``projection_transform`` do: the affine head's colour projection trains
through them.
"""

from __future__ import annotations

import torch

EIGEN_FLOOR = 1e-5  # variance floor in [0, 1]² units (σ ≈ 0.003): guards flat and gray images
MAX_GAIN = 2.0  # largest gain T may apply along any colour axis: see below


def colour_moments(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) RGB in [0, 1] → float64 means (N, 3) and covariances (N, 3, 3), differentiable."""
    flat = images.to(torch.float64).flatten(2)
    mean = flat.mean(-1)
    centred = flat - mean[..., None]
    cov = centred @ centred.transpose(1, 2) / max(flat.shape[-1], 1)
    return mean, cov


def colour_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``colour_moments`` of the images, without a gradient."""
    return colour_moments(images.detach())


def _finite_items(*moments: torch.Tensor) -> torch.Tensor:
    """(N,) bool: the items whose every moment (each (N, ...)) is finite."""
    return torch.stack([t.flatten(1).isfinite().all(1) for t in moments]).all(0)


PROJECTION_FLOOR = 1e-5  # added to both covariances' diagonals before the Cholesky factors (σ ≈ 0.003)


def projection_transform(source_mean: torch.Tensor, source_cov: torch.Tensor, target_mean: torch.Tensor,
                         target_cov: torch.Tensor) -> torch.Tensor:
    """(N, 3, 4) float64 affine maps [P | t] that carry a colour distribution with (N, 3) mean and
    (N, 3, 3) covariance ``source_*`` onto ``target_*`` exactly (up to PROJECTION_FLOOR):
    P = L_t·L_s⁻¹ with L the Cholesky factors, t = μ_t − P·μ_s. Equal moments give the identity;
    unlike the MKL square roots, Cholesky factors keep a finite gradient where eigenvalues coincide
    (grey pictures), so training may differentiate through it. Items with non-finite moments get
    the identity."""
    source_mean, source_cov = source_mean.double(), source_cov.double()
    target_mean, target_cov = target_mean.double(), target_cov.double()
    eye = torch.eye(3, dtype=torch.float64, device=source_cov.device)
    finite = _finite_items(source_mean, source_cov, target_mean, target_cov)[:, None, None]
    source_cov = torch.where(finite, source_cov, eye) + PROJECTION_FLOOR * eye
    target_cov = torch.where(finite, target_cov, eye) + PROJECTION_FLOOR * eye
    source_root = torch.linalg.cholesky(0.5 * (source_cov + source_cov.transpose(-1, -2)))
    target_root = torch.linalg.cholesky(0.5 * (target_cov + target_cov.transpose(-1, -2)))
    matrix = torch.linalg.solve_triangular(source_root, target_root, upper=False, left=False)  # L_t·L_s⁻¹
    offset = torch.where(finite[..., 0], target_mean, 0.0) - (matrix @ torch.where(
        finite[..., 0], source_mean, 0.0)[..., None])[..., 0]
    transform = torch.cat([matrix, offset[..., None]], dim=-1)
    identity = torch.cat([eye, eye.new_zeros(3, 1)], dim=-1).expand_as(transform)
    return torch.where(finite, transform, identity)


def _sym_power(matrix: torch.Tensor, power: float, floor: float) -> torch.Tensor:
    """matrix^power for symmetric PSD (N, 3, 3) float64, eigenvalues floored at ``floor``."""
    values, vectors = torch.linalg.eigh(0.5 * (matrix + matrix.transpose(-1, -2)))
    values = values.clamp_min(floor)
    return vectors @ torch.diag_embed(values.pow(power)) @ vectors.transpose(-1, -2)


def mkl_matrix(content_cov: torch.Tensor, style_cov: torch.Tensor) -> torch.Tensor:
    """The MKL map T (N, 3, 3) from covariances; its eigenvalues are capped at MAX_GAIN."""
    root = _sym_power(content_cov, 0.5, EIGEN_FLOOR)
    inv_root = _sym_power(content_cov, -0.5, EIGEN_FLOOR)
    middle = _sym_power(root @ style_cov @ root, 0.5, 0.0)
    transform = inv_root @ middle @ inv_root
    values, vectors = torch.linalg.eigh(0.5 * (transform + transform.transpose(-1, -2)))
    return vectors @ torch.diag_embed(values.clamp(0.0, MAX_GAIN)) @ vectors.transpose(-1, -2)


def mkl_transform(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) content and style (any sizes) → (N, 3, 4) float64 transforms [T | μs − T·μc]."""
    return mkl_from_stats(*colour_stats(content), *colour_stats(style))


def mkl_from_stats(content_mean: torch.Tensor, content_cov: torch.Tensor, style_mean: torch.Tensor,
                   style_cov: torch.Tensor) -> torch.Tensor:
    """``mkl_transform`` from ``colour_stats`` of each side (a batch-1 style serves every content)."""
    content_mean, content_cov = content_mean.double(), content_cov.double()
    style_mean, style_cov = style_mean.double(), style_cov.double()
    if style_mean.shape[0] == 1 and content_mean.shape[0] > 1:
        style_mean, style_cov = style_mean.expand_as(content_mean), style_cov.expand_as(content_cov)
    # items whose images held NaN or Inf get a NaN transform, not a LinAlgError
    finite = _finite_items(content_mean, content_cov, style_mean, style_cov)
    eye = torch.eye(3, dtype=torch.float64, device=content_cov.device)
    matrix = mkl_matrix(torch.where(finite[:, None, None], content_cov, eye),
                        torch.where(finite[:, None, None], style_cov, eye))
    offset = style_mean - (matrix @ content_mean[..., None])[..., 0]
    transform = torch.cat([matrix, offset[..., None]], dim=-1)
    return torch.where(finite[:, None, None], transform, torch.full_like(transform, float("nan")))


def apply_global(image: torch.Tensor, transform: torch.Tensor) -> torch.Tensor:
    """Apply (N, 3, 4) transforms to (N, 3, H, W) images; output clamped to [0, 1], image's dtype."""
    matrix = transform[:, :, :3].to(image.dtype)
    offset = transform[:, :, 3].to(image.dtype)
    out = torch.einsum("nij,njhw->nihw", matrix, image) + offset[:, :, None, None]
    return out.clamp(0.0, 1.0)

