"""Milliseconds to render one frame from a colour field with the fast (NumPy/numba) renderer.

    python -m simulations.bench_render --json

The frame is real footage (bikes.mp4) resized to 1920×1080; the field is the built-in model's
field for it (or an identity field of the same grid if the model is missing), so the numbers
are those of the phone's per-frame cost: the RGB renderer (photos, and videos resized on output)
per luma depth, and for a plain field the YUV 4:2:0 renderer a video at its own size goes through
(``yuv420_ms``: the decoder's I420 planes in, the encoder's out). Prints the CPU's vector path.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import cv2
import numpy as np

from fedvst.samples import DEMO_STYLE, sample_photo, sample_video
from fedvst.video.io import read_frames
from simulations.arguments import whole
from stylizer.device import cpu_vector_path
from stylizer.field import ColourField, identity_field
from stylizer.render import render_field
from stylizer.render_yuv import render_field_i420


def model_field(frame: np.ndarray, depth: int) -> ColourField:
    """The built-in model's field for ``frame`` at its own size (identity if depth differs)."""
    from stylizer import Stylizer, load_image

    stylizer = Stylizer.from_checkpoint(allow_download=False, device="cpu")
    field = stylizer.colour_field(cv2.resize(frame, (256, 144), interpolation=cv2.INTER_AREA),
                                  load_image(sample_photo(DEMO_STYLE)), frame.shape[:2])
    return field if field.depth == depth else identity_field(field.grid, depth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--frames", type=whole(1, 100_000), default=50)
    parser.add_argument("--depths", type=whole(1, 64), nargs="+", default=[1, 4], help="luma bins to time (1: plain)")
    args = parser.parse_args()
    frame = next(iter(read_frames(sample_video(), step=1, limit=1))).image
    frame = cv2.resize(frame, (1920, 1080), interpolation=cv2.INTER_LINEAR)
    out = np.empty_like(frame)
    by_depth = {}
    for depth in args.depths:
        field = model_field(frame, depth)
        render_field(frame, field, out)  # compile (cached on disk after the first run)
        times = []
        for _ in range(args.frames):
            start = time.perf_counter()
            render_field(frame, field, out)
            times.append(time.perf_counter() - start)
        by_depth[str(depth)] = {"ms": round(1000 * statistics.median(times), 2), "grid": list(field.grid),
                                "field_bytes": len(field.to_bytes())}
        if not args.json:
            print(f"depth {depth}: {by_depth[str(depth)]}", file=sys.stderr)
    import numba

    planes = cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420)
    plain = model_field(frame, 1)
    planes_out = render_field_i420(planes, plain)  # compile (cached on disk after the first run)
    times = []
    for _ in range(args.frames):
        start = time.perf_counter()
        render_field_i420(planes, plain, planes_out)
        times.append(time.perf_counter() - start)
    report = {"size": "1920x1080", "ms_per_frame": by_depth[str(args.depths[0])]["ms"], "by_depth": by_depth,
              "yuv420_ms": round(1000 * statistics.median(times), 2),
              "cpu": cpu_vector_path(), "threads": numba.get_num_threads(), "frames": args.frames}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
