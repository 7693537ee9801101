"""Meta-smoothing (seeds/000 Eq. 3–4): upscale by any real r > 0, then smooth.

    I_cs^r = P(I_cs, W_u^r) * W_s

Definitions used here (the paper leaves the non-integer case open):

* ``W_u^1`` is a learned meta kernel (N_u, 3, K, K), K = 5, its taps at offsets
  -K//2 … K//2 (cross-correlation, as conv2d). Let ``w(t)`` be its continuous extension:
  bilinear interpolation of the taps at unit spacing (in input pixels), zero beyond.
  ``Q(r) = 1 + m(log r) - m(0)`` is a learned per-output-channel gain
  (m: a 1→16→N_u MLP), so ``Q(1) = 1`` exactly and ``W_u^r = Q(r) ⊙ w``.
* The output has exactly ``H' × W' = round(r·H) × round(r·W)`` pixels (or a size given
  outright); per axis ``r_a = out_a / in_a``. Output pixel ``o`` looks at the source
  point ``s(o) = clamp((o + 0.5) / r_a - 0.5, 0, in_a - 1)`` and the deconvolution is
  ``P(I, W_u^r)[o] = Σ_i I[i] · W_u^r(i - s(o))`` over input pixels ``i`` (the input
  extended by replicating its border). The taps change with the sub-pixel phase of
  ``s(o)``: position-dependent weights, as in Meta-SR.
* For integer r this is a stride-r transposed convolution whose (≈6r)² kernel is ``w``
  resampled on the r-times finer grid (``transposed_kernel``); for r = 1 it is the plain
  K×K convolution with ``W_u^1``.
* Because ``w`` is the bilinear interpolant of the taps, ``P`` factors exactly into a K×K
  convolution at input resolution followed by bilinear resampling (align_corners=False),
  which is how it is computed: O(K²·H·W) work on the small image, not O(K²·H'·W').
* ``W_s`` (3, N_u, K, K) is a learned smoothing convolution at output resolution
  (reflection padding), output RGB.

For the affine head the same module acts on the colour field (C = D·12 channels instead of
3, N_u ≥ C): ``smooth_field`` applies ``W_u^r`` and ``W_s`` on the field's grid and leaves the
bilinear resampling of ``P`` to the renderer, which slices the field at every output pixel.
``W_s`` thus runs at grid resolution, not at output pixels: on a field whose cells span many
output pixels a K×K kernel at output resolution would be a near no-op costing C·N_u·K² MACs
per pixel, while at grid resolution it smooths across cells, which is what the field needs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def output_size(height: int, width: int, r: float) -> tuple[int, int]:
    """Exact output size for factor r: (round(r·H), round(r·W)), each at least 1."""
    if not (isinstance(r, (int, float)) and math.isfinite(r) and r > 0):
        raise ValueError(f"scale factor r must be a finite number > 0, got {r!r}")
    return max(1, int(round(r * height))), max(1, int(round(r * width)))


def _tent(t: torch.Tensor) -> torch.Tensor:
    return (1.0 - t.abs()).clamp_min(0.0)


class MetaSmoothing(nn.Module):
    """(N, C, H, W) image (C = 3) or field → (N, C, H', W') upscaled and smoothed."""

    def __init__(self, upsample_channels: int = 8, kernel_size: int = 5, channels: int = 3) -> None:
        super().__init__()
        if upsample_channels < channels:
            raise ValueError(f"upsample_channels ({upsample_channels}) must be at least channels ({channels})")
        k = kernel_size
        self.kernel_size = k
        noise = 0.01 if channels == 3 else 0.001  # wide fields: keep the cross-channel mixing at init small
        meta = torch.randn(upsample_channels, channels, k, k) * noise
        smooth = torch.randn(channels, upsample_channels, k, k) * noise
        for c in range(channels):  # start as (near) identity: bilinear upsampling of the decoder output
            meta[c, c, k // 2, k // 2] = 1.0
            smooth[c, c, k // 2, k // 2] = 1.0
        self.meta_kernel = nn.Parameter(meta)
        self.meta_bias = nn.Parameter(torch.zeros(upsample_channels))
        self.scale_net = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, upsample_channels, bias=False))
        # Q(r) ≈ 1 at first, for every r; no bias on the last layer: m(log r) - m(0) cancels it
        nn.init.normal_(self.scale_net[2].weight, std=1e-3)
        self.smooth = nn.Conv2d(upsample_channels, channels, k)
        with torch.no_grad():
            self.smooth.weight.copy_(smooth)
            self.smooth.bias.zero_()

    def scale_gain(self, r: float) -> torch.Tensor:
        """Q(r): (N_u,) gain with Q(1) = 1 exactly."""
        if r == 1.0:
            return torch.ones_like(self.meta_bias)
        x = torch.tensor([[math.log(r)], [0.0]], device=self.meta_kernel.device, dtype=self.meta_kernel.dtype)
        m = self.scale_net(x)
        return 1.0 + m[0] - m[1]

    def scaled_meta_kernel(self, r: float) -> torch.Tensor:
        """W_u^r at the input-pixel grid: Q(r) ⊙ W_u^1, shape (N_u, 3, K, K)."""
        if r == 1.0:
            return self.meta_kernel
        return self.meta_kernel * self.scale_gain(r).to(self.meta_kernel.dtype)[:, None, None, None]

    def transposed_kernel(self, r: int) -> tuple[torch.Tensor, int]:
        """For integer r: (kernel (3, N_u, Kr, Kr) for F.conv_transpose2d, crop offset p).

        ``F.conv_transpose2d(x, kernel, stride=r)[..., p + o]`` equals ``P`` at output
        pixel o wherever the source window lies inside the image.
        """
        k = self.kernel_size
        half = k // 2
        p = int(math.ceil((half + 1) * r))
        size = 2 * p + r
        t = torch.arange(size, dtype=torch.float64)
        offset = 0.5 - (t - p + 0.5) / r  # i - s(o) for every tap, in input pixels
        taps = torch.arange(-half, half + 1, dtype=torch.float64)
        weights_1d = _tent(offset[:, None] - taps[None, :])  # (size, K)
        kernel = self.scaled_meta_kernel(float(r)).double()
        full = torch.einsum("ak,bl,oikl->ioab", weights_1d, weights_1d, kernel)
        return full.to(self.meta_kernel.dtype), p

    def smooth_field(self, field: torch.Tensor, r: float) -> torch.Tensor:
        """``W_s * (W_u^r ⋆ field)`` on the field's own grid (N, C, gh, gw) → same shape (see module doc)."""
        pad = self.kernel_size // 2
        kernel = self.scaled_meta_kernel(r).to(field.dtype)
        x = F.conv2d(F.pad(field, (pad, pad, pad, pad), mode="replicate"), kernel, self.meta_bias.to(field.dtype))
        mode = "reflect" if min(field.shape[-2:]) > pad else "replicate"
        return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode=mode), self.smooth.weight.to(field.dtype),
                        self.smooth.bias.to(field.dtype))

    def forward(self, image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Upscale ``image`` to exactly ``size`` = (H', W') and smooth it."""
        height, width = image.shape[-2:]
        out_h, out_w = size
        if out_h < 1 or out_w < 1:
            raise ValueError(f"output size must be positive, got {size}")
        r = math.sqrt((out_h / height) * (out_w / width))
        pad = self.kernel_size // 2
        kernel = self.scaled_meta_kernel(r).to(image.dtype)
        x = F.conv2d(F.pad(image, (pad, pad, pad, pad), mode="replicate"), kernel, self.meta_bias.to(image.dtype))
        if (out_h, out_w) != (height, width):
            x = F.interpolate(x, size=(out_h, out_w), mode="bilinear", align_corners=False)
        return self.smooth(F.pad(x, (pad, pad, pad, pad), mode="reflect" if min(out_h, out_w) > pad else "replicate"))
