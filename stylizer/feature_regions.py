"""Semantic regions for a per-region style term: VGG feature clusters, matched between content and style.

Each picture's deepest-tap features (unit length per position, so that clusters follow what the
features describe rather than how strongly they fire) are split into ``regions`` clusters by a few
rounds of k-means with a deterministic farthest-point start; each content cluster is matched with
the style cluster whose centre is most alike (cosine), among the style clusters that hold at least
``MIN_STYLE_SHARE`` of the style's positions (a sliver's statistics are noise). The style term then
compares, region by region, the output's feature means and deviations inside the content's region
with the style's inside its matched region (``region_style_distance``), each region weighted by its
share of the content: the sky of a content meets the sky-like part of the style rather than the
style's average over sky, street and trees.

With ``regions`` 1 every position is one region and the distance is Eq. 5's style term exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

KMEANS_ROUNDS = 8
MIN_STYLE_SHARE = 0.05
STD_EPS = 1e-5  # deviations are sqrt(var + STD_EPS), here and in Eq. 5's global term (``stylizer.losses``)


def cluster_features(features: torch.Tensor, regions: int, rounds: int = KMEANS_ROUNDS
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, h, w) features → (labels (N, h, w) int64 in [0, regions), centres (N, regions, C) unit
    length). Deterministic (farthest-point start from the position most like the mean); no gradient.
    A cluster that empties keeps its last centre, so every label stays valid."""
    if regions < 1:
        raise ValueError(f"regions must be ≥ 1, got {regions}")
    with torch.no_grad(), torch.autocast(device_type=features.device.type, enabled=False):
        n, _, h, w = features.shape
        points = F.normalize(features.float().flatten(2).transpose(1, 2), dim=-1)  # (N, P, C)
        mean = F.normalize(points.mean(1), dim=-1)
        first = torch.einsum("npc,nc->np", points, mean).argmax(1)
        centres = [points[torch.arange(n), first]]
        for _ in range(1, regions):
            nearest = torch.stack([torch.einsum("npc,nc->np", points, centre) for centre in centres]).amax(0)
            centres.append(points[torch.arange(n), nearest.argmin(1)])
        centre = torch.stack(centres, 1)  # (N, K, C)
        for _ in range(rounds):
            labels = torch.einsum("npc,nkc->npk", points, centre).argmax(-1)
            one_hot = F.one_hot(labels, regions).to(points.dtype)  # (N, P, K)
            sums = torch.einsum("npk,npc->nkc", one_hot, points)
            filled = one_hot.sum(1) > 0
            centre = torch.where(filled[..., None], F.normalize(sums, dim=-1), centre)
        labels = torch.einsum("npc,nkc->npk", points, centre).argmax(-1)
        return labels.view(n, h, w), centre


def _shares(labels: torch.Tensor, regions: int) -> torch.Tensor:
    """(N, h, w) labels → (N, K) the fraction of positions each region holds."""
    return F.one_hot(labels.flatten(1), regions).float().mean(1)


def match_regions(content_centres: torch.Tensor, style_centres: torch.Tensor,
                  style_labels: torch.Tensor) -> torch.Tensor:
    """(N, K, C) centres of each side and the style's (N, h, w) labels → (N, K) the style cluster each
    content cluster meets: the most alike (cosine) of those holding ≥ ``MIN_STYLE_SHARE`` of the style
    (the largest cluster always qualifies)."""
    regions = style_centres.shape[1]
    shares = _shares(style_labels, regions)
    eligible = (shares >= MIN_STYLE_SHARE) | (shares == shares.amax(1, keepdim=True))
    similarity = torch.einsum("nkc,njc->nkj", content_centres, style_centres)
    return similarity.masked_fill(~eligible[:, None, :], float("-inf")).argmax(-1)


def _masks(labels: torch.Tensor, regions: int, size: tuple[int, int]) -> torch.Tensor:
    """(N, h, w) labels → (N, K, H, W) soft region weights at a tap's size (bilinear, summing to 1)."""
    one_hot = F.one_hot(labels, regions).permute(0, 3, 1, 2).float()
    if tuple(one_hot.shape[-2:]) == size:
        return one_hot
    return F.interpolate(one_hot, size=size, mode="bilinear", align_corners=False)


def region_mean_std(features: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) features and (N, K, H, W) weights → per-region (N, K, C) means and deviations
    (sqrt(var + 1e-5), as Eq. 5's global term); an empty region gets zeros and sqrt(1e-5). In float32
    even under autocast: the variance is a difference of two sums, which bf16 would cancel away."""
    with torch.autocast(device_type=features.device.type, enabled=False):
        flat = features.float().flatten(2)  # (N, C, P)
        weights = masks.float().flatten(2)  # (N, K, P)
        area = weights.sum(-1, keepdim=True).clamp_min(1e-8)  # (N, K, 1)
        mean = torch.einsum("nkp,ncp->nkc", weights, flat) / area
        square = torch.einsum("nkp,ncp->nkc", weights, flat * flat) / area
        return mean, ((square - mean * mean).clamp_min(0.0) + STD_EPS).sqrt()


def region_style_distance(out_features: dict[str, torch.Tensor], content_deepest: torch.Tensor,
                          style_features: dict[str, torch.Tensor], taps: tuple[str, ...], regions: int
                          ) -> torch.Tensor:
    """Eq. 5's style term per semantic region: Σ over ``taps`` of Σ_k (share of region k in the content) ·
    [mean over channels and items of the squared differences of region k's feature means and deviations
    between the output (inside the content's region k) and the style (inside its matched region)].

    ``out_features`` and ``style_features``: tap → (N, C, H, W) (the output has the content's geometry);
    ``content_deepest``: the content's (N, C, h, w) deepest-tap features, which (with the style's
    deepest tap: the last entry of ``style_features``, the encoder's order) define the regions.
    Gradients flow through the output's features only."""
    deepest = list(style_features)[-1]
    content_labels, content_centres = cluster_features(content_deepest, regions)
    style_labels, style_centres = cluster_features(style_features[deepest], regions)
    match = match_regions(content_centres, style_centres, style_labels)  # (N, K)
    shares = _shares(content_labels, regions)
    total = content_deepest.new_zeros((), dtype=torch.float32)
    for tap in taps:
        out = out_features[tap]
        out_mean, out_std = region_mean_std(out, _masks(content_labels, regions, tuple(out.shape[-2:])))
        style = style_features[tap]
        with torch.no_grad():
            style_mean, style_std = region_mean_std(style, _masks(style_labels, regions, tuple(style.shape[-2:])))
            index = match[..., None].expand(-1, -1, style_mean.shape[-1])
            target_mean, target_std = style_mean.gather(1, index), style_std.gather(1, index)
        per_region = ((out_mean - target_mean) ** 2).mean(-1) + ((out_std - target_std) ** 2).mean(-1)  # (N, K)
        total = total + (shares * per_region).sum(1).mean()
    return total
