"""Photorealism and colour metrics of a stylized image (the issue "Photorealistic by construction").

* ``structure_corr``: SSIM's structure term on 8-bit luma, (σ_xy + c3) / (σ_x·σ_y + c3), Gaussian
  windows 11×11 with σ = 1.5, c3 = (0.03·255)²/2, averaged over pixels; output against content.
* ``colour_distance``: ‖s(out) − s(style)‖ / ‖s(content) − s(style)‖, s = per-channel means and
  standard deviations of OpenCV's 8-bit Lab (6 numbers). 0: the style's colour; 1: no change.
* ``reinhard``: Reinhard et al. 2001 colour transfer (per-channel mean/std in Lab), a baseline.
* ``patchwork``: on the content's smooth pixels (local luma deviation under ``SMOOTH_LEVELS`` in a
  9×9 window, eroded), how far the output's detail (itself minus a Gaussian blur of σ = 1/40 of
  the width) exceeds the content's own, largest channel, in 8-bit levels; the 99th percentile and
  the maximum. A global transform of gain 1 scores 0; cell-sized patches or amplified compression
  blocks on a flat wall score their amplitude.
* ``region_inconsistency``: on the content's smooth regions *including ramps* (luma within
  ``SMOOTH_LEVELS`` of its own Gaussian blur, σ = 2 px, over a 9×9 window: a vignette or a sky
  gradient counts, an edge or texture does not), split into connected regions bounded by the
  edges, how far the output departs from the one 3×4 colour map that best takes that region's
  content to it (least squares per region), largest channel, in 8-bit levels: the 99th percentile
  and the maximum. One surface has one colour transform in a photo; a field that paints a smooth
  wall yellow in one place and purple in another, or a flat door in cell-sized patches, scores
  their amplitude; any global transform (MKL, the prior) scores ≈ 0 (rounding and clipping).
* ``Eq5Scorer``: Eq. 5's content and style terms (``stylizer.losses.perceptual_loss``) with the
  ImageNet VGG-16 down to relu4_1, on images scaled to ``EQ5_SIDE`` px on their longer side.
All images are (H, W, 3) uint8 RGB.
"""

from __future__ import annotations

import cv2
import numpy as np

C3 = (0.03 * 255) ** 2 / 2
SMOOTH_LEVELS = 2.0  # local luma standard deviation (8-bit levels) under which the content counts as smooth


def _luma(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)


def structure_corr(output: np.ndarray, content: np.ndarray) -> float:
    """Mean SSIM structure term of ``output`` against ``content`` (same size)."""
    if output.shape != content.shape:
        raise ValueError(f"sizes differ: {output.shape} vs {content.shape}")
    x, y = _luma(output), _luma(content)

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    var_x = np.maximum(blur(x * x) - mx * mx, 0.0)
    var_y = np.maximum(blur(y * y) - my * my, 0.0)
    cov = blur(x * y) - mx * my
    return float(np.mean((cov + C3) / (np.sqrt(var_x * var_y) + C3)))


def smooth_mask(content: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose 9×9 neighbourhood's luma deviates by under SMOOTH_LEVELS (eroded by 4 px)."""
    y = _luma(content)
    mean = cv2.blur(y, (9, 9))
    deviation = np.sqrt(np.maximum(cv2.blur(y * y, (9, 9)) - mean * mean, 0.0))
    return cv2.erode((deviation < SMOOTH_LEVELS).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)


def patchwork(output: np.ndarray, content: np.ndarray, mask: np.ndarray | None = None) -> tuple[float, float]:
    """(99th percentile, maximum) of the output's detail beyond the content's on smooth pixels (levels)."""
    if output.shape != content.shape:
        raise ValueError(f"sizes differ: {output.shape} vs {content.shape}")
    mask = smooth_mask(content) if mask is None else mask
    if not mask.any():
        return 0.0, 0.0
    sigma = max(output.shape[1] / 40.0, 1.0)

    def detail(image: np.ndarray) -> np.ndarray:
        image = image.astype(np.float64)
        return np.abs(image - cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)).max(axis=2)

    excess = np.maximum(detail(output) - detail(content), 0.0)[mask]
    return float(np.percentile(excess, 99)), float(excess.max())


RAMP_SIGMA = 2.0  # px: luma minus its blur at this scale is what a smooth region (flat or ramp) lacks
MIN_REGION = 0.005  # regions under this fraction of the picture are left out (specks between edges)


def ramp_regions(content: np.ndarray) -> tuple[np.ndarray, int]:
    """(labels (H, W) int32, count): connected smooth regions of ``content`` (flat or ramps, see the
    module doc), eroded by 4 px from any edge, each at least MIN_REGION of the picture; 0 = none."""
    y = _luma(content)
    detail = y - cv2.GaussianBlur(y, (0, 0), RAMP_SIGMA, borderType=cv2.BORDER_REFLECT)
    energy = np.sqrt(np.maximum(cv2.blur(detail * detail, (9, 9)), 0.0))  # a box sum's rounding dips below 0
    smooth = cv2.erode((energy < SMOOTH_LEVELS).astype(np.uint8), np.ones((9, 9), np.uint8))
    count, labels = cv2.connectedComponents(smooth, connectivity=4)
    sizes = np.bincount(labels.ravel(), minlength=count)
    keep = np.zeros(count, bool)
    keep[1:] = sizes[1:] >= MIN_REGION * labels.size
    new_ids = np.cumsum(keep) * keep
    return new_ids[labels].astype(np.int32), int(keep.sum())


def region_inconsistency(output: np.ndarray, content: np.ndarray) -> tuple[float, float]:
    """(99th percentile, maximum) over the pixels of ``ramp_regions(content)`` of the output's departure
    from each region's least-squares 3×4 colour map of the content (levels); pixels whose output is
    clipped (any channel within 2 levels of 0 or 255) are left out; (0, 0) with no region."""
    if output.shape != content.shape:
        raise ValueError(f"sizes differ: {output.shape} vs {content.shape}")
    labels, count = ramp_regions(content)
    residuals = []
    unclipped = ((output > 2) & (output < 253)).all(axis=2)  # a clipped output is no affine map's: left out
    for region in range(1, count + 1):
        inside = (labels == region) & unclipped
        if inside.sum() < 16:
            continue
        x = np.concatenate([content[inside].astype(np.float64), np.ones((int(inside.sum()), 1))], axis=1)
        y = output[inside].astype(np.float64)
        ridge = np.diag([1e-3 * len(x)] * 3 + [0.0])  # a near-constant region must not fit its noise with huge gains
        transform = np.linalg.solve(x.T @ x + ridge, x.T @ y)
        residuals.append(np.abs(y - x @ transform).max(axis=1))
    if not residuals:
        return 0.0, 0.0
    values = np.concatenate(residuals)
    return float(np.percentile(values, 99)), float(values.max())


def lab_stats(image: np.ndarray) -> np.ndarray:
    """(6,) means and standard deviations of L, a, b (OpenCV 8-bit Lab)."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float64)
    return np.concatenate([lab.mean(0), lab.std(0)])


def colour_distance(output: np.ndarray, content: np.ndarray, style: np.ndarray) -> float:
    """Distance of ``output``'s Lab statistics to the style's, relative to the content's."""
    target = lab_stats(style)
    reference = np.linalg.norm(lab_stats(content) - target)
    return float(np.linalg.norm(lab_stats(output) - target) / max(reference, 1e-9))


def reinhard(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Per-channel mean/std transfer in OpenCV's Lab (Reinhard et al. 2001)."""
    lab_c = cv2.cvtColor(content, cv2.COLOR_RGB2LAB).astype(np.float64)
    lab_s = cv2.cvtColor(style, cv2.COLOR_RGB2LAB).reshape(-1, 3).astype(np.float64)
    flat = lab_c.reshape(-1, 3)
    scale = lab_s.std(0) / np.maximum(flat.std(0), 1e-6)
    out = (lab_c - flat.mean(0)) * scale + lab_s.mean(0)
    return cv2.cvtColor(np.clip(out + 0.5, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


EQ5_SIDE = 384
EQ5_LAYER = "relu4_1"


class Eq5Scorer:
    """Eq. 5 terms of an output against its content and style, with a fixed real encoder (the yardstick)."""

    def __init__(self) -> None:
        import torch

        from stylizer.encoder_weights import keras_weights
        from stylizer.factory import build_encoder

        self.torch = torch
        self.encoder = build_encoder(EQ5_LAYER, keras_weights())

    def _tensor(self, image: np.ndarray):
        from stylizer.images import to_tensor

        height, width = image.shape[:2]
        scale = EQ5_SIDE / max(height, width)
        size = (max(16, round(width * scale)), max(16, round(height * scale)))
        resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        return to_tensor(resized)

    def __call__(self, output: np.ndarray, content: np.ndarray, style: np.ndarray) -> dict[str, float]:
        """{"content": feature MSE at relu4_1, "style": Σ over relu1_1…relu4_1 of mean and std MSEs}."""
        from stylizer.losses import perceptual_loss

        with self.torch.no_grad():
            terms = perceptual_loss(self.encoder, self._tensor(output), self._tensor(content), self._tensor(style))
        return {"content": float(terms.content), "style": float(terms.style)}
