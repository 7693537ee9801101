"""Quality measures for interpolated video: MS-SSIM and temporal warping error.

Images are (H, W, 3) uint8 RGB. MS-SSIM follows Wang et al. 2003 on the luma channel
(Gaussian window 11, σ = 1.5, five scales with the standard weights; fewer scales, the
weights renormalised, when the image is too small). Warping error follows Lai et al. 2018:
mean squared difference, in [0, 1] units, between output frame t+1 and output frame t
warped along the input's flow, over pixels the flow explains (non-occluded).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fedvst.video.flow import FlowEstimator, upsample_flow
from fedvst.video.warp import Grid, photometric_error, warp

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def _luma(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64) if image.ndim == 3 else image.astype(np.float64)


def _ssim_parts(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    blur = lambda a: cv2.GaussianBlur(a, (11, 11), 1.5)  # noqa: E731
    mu_x, mu_y = blur(x), blur(y)
    sigma_x = blur(x * x) - mu_x ** 2
    sigma_y = blur(y * y) - mu_y ** 2
    sigma_xy = blur(x * y) - mu_x * mu_y
    luminance = (2 * mu_x * mu_y + _C1) / (mu_x ** 2 + mu_y ** 2 + _C1)
    contrast_structure = (2 * sigma_xy + _C2) / (sigma_x + sigma_y + _C2)
    return float((luminance * contrast_structure).mean()), float(contrast_structure.mean())


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Multi-scale SSIM of two same-size images, in [0, 1] (1 = identical)."""
    if a.shape != b.shape:
        raise ValueError(f"MS-SSIM needs equal shapes, got {a.shape} and {b.shape}")
    x, y = _luma(a), _luma(b)
    scales = max(1, min(len(MS_SSIM_WEIGHTS), int(np.log2(min(x.shape) / 11)) + 1))
    weights = np.array(MS_SSIM_WEIGHTS[:scales])
    weights = weights / weights.sum()
    result = 1.0
    for level in range(scales):
        ssim, cs = _ssim_parts(x, y)
        value = ssim if level == scales - 1 else cs
        result *= max(value, 0.0) ** weights[level]
        if level < scales - 1:
            x = cv2.resize(x, (x.shape[1] // 2, x.shape[0] // 2), interpolation=cv2.INTER_AREA)
            y = cv2.resize(y, (y.shape[1] // 2, y.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return float(result)


def warping_error(outputs: Sequence[np.ndarray], grays: Sequence[np.ndarray], explained_level: float = 12.0) -> float:
    """Mean temporal warping error of ``outputs`` (RGB) using flow from the input ``grays``."""
    if len(outputs) != len(grays) or len(outputs) < 2:
        raise ValueError("need two or more output frames, one input gray frame each")
    flow = FlowEstimator()
    size = outputs[0].shape[:2]
    grid, small = Grid(*size), Grid(*grays[0].shape)
    total, count = 0.0, 0
    for t in range(len(outputs) - 1):
        backward = flow(grays[t + 1], grays[t])
        mask_small = (photometric_error(grays[t + 1], grays[t], backward, small) < explained_level).astype(np.uint8)
        mask = cv2.resize(mask_small, (size[1], size[0]), interpolation=cv2.INTER_NEAREST).astype(bool)
        predicted = warp(outputs[t], upsample_flow(backward, size), grid).astype(np.float32) / 255.0
        diff = (outputs[t + 1].astype(np.float32) / 255.0 - predicted) ** 2
        total += float(diff.mean(axis=2)[mask].sum())
        count += int(mask.sum())
    return total / max(count, 1)
