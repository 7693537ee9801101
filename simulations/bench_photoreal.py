"""Photorealism (structure kept), colour and Eq. 5 of the stylizers on held-out real photos.

    python -m simulations.bench_photoreal --json [--figure docs/photoreal.png]
    python -m simulations.bench_photoreal --corpus --json   # the photo corpus' held-out split (fedvst corpus)

Pairs: only pictures no training touches (``fedvst.samples.heldout_pictures``: held-out photos and
one frame of each held-out clip segment), content and style never the same picture, plus two
held-out photos composited onto a large black and a large white field. Methods: the built-in model
(affine head), an untrained affine model (its output is the closed-form prior), the paper's image
head, Reinhard's Lab transfer and the linear Monge–Kantorovich (MKL) transfer. Each output has the
content's size. Metrics: ``simulations.photoreal_metrics``; ``eq5``: the held-out content and style
terms of Eq. 5 with the ImageNet VGG-16 (``eq5_terms``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from fedvst.samples import heldout_pictures
from simulations.photoreal_metrics import (
    Eq5Scorer,
    colour_distance,
    patchwork,
    region_inconsistency,
    reinhard,
    structure_corr,
)
from stylizer import Stylizer
from stylizer.colour_prior import apply_global, mkl_transform
from stylizer.config import StylizerConfig
from stylizer.factory import build_model, builtin_checkpoint_path, image_head_checkpoint_path, load_model
from stylizer.images import to_tensor, to_uint8

MAX_SIDE = 640
STYLE_OFFSETS = (1, 3)  # each content meets the held-out pictures this many places further on as styles


def _fit(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    if max(height, width) <= MAX_SIDE:
        return image
    scale = MAX_SIDE / max(height, width)
    return cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)


def composite(photo: np.ndarray, level: int) -> tuple[np.ndarray, np.ndarray]:
    """``photo`` shrunk to half of each side and centred on a uniform field of grey ``level`` (0–255),
    and the (H, W) mask of every pixel of the field, up to the photo's edge (where the output of any
    method that keeps flat regions flat has one colour: a halo beside the photo counts)."""
    height, width = photo.shape[:2]
    small = cv2.resize(photo, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    canvas = np.full_like(photo, level)
    top, left = (height - small.shape[0]) // 2, (width - small.shape[1]) // 2
    canvas[top:top + small.shape[0], left:left + small.shape[1]] = small
    inside = np.ones((height, width), bool)
    inside[top:top + small.shape[0], left:left + small.shape[1]] = 0
    return canvas, inside


def flat_spread(output: np.ndarray, inside: np.ndarray) -> int:
    """Largest range (max − min, levels) of any channel of ``output`` over ``inside``."""
    values = output[inside].astype(int)
    return int((values.max(0) - values.min(0)).max()) if len(values) else 0


FLAT_MASKS: dict[str, np.ndarray] = {}  # composited pair name → its uniform field's inside (make_pairs fills it)


def make_pairs() -> list[tuple[str, np.ndarray, str, np.ndarray]]:
    """(content name, content, style name, style): held-out pictures only, never one picture twice in a pair."""
    pictures = [(name, _fit(image)) for name, image in heldout_pictures()]
    pairs = []
    for i, (content_name, content) in enumerate(pictures):
        for offset in STYLE_OFFSETS:
            style_name, style = pictures[(i + offset) % len(pictures)]
            pairs.append((content_name, content, style_name, style))
    by_name = dict(pictures)
    for content_name, level, style_name in (("chelsea", 0, "bikes#53"), ("grace_hopper", 255, "chelsea")):
        canvas, FLAT_MASKS[f"{content_name} on {'black' if level == 0 else 'white'}"] = composite(
            by_name[content_name], level)
        pairs.append((f"{content_name} on {'black' if level == 0 else 'white'}", canvas, style_name,
                      by_name[style_name]))
    return pairs


CORPUS_COMPOSITES = 2  # corpus held-out photos also composited onto a black and onto a white field


def make_corpus_pairs() -> list[tuple[str, np.ndarray, str, np.ndarray]]:
    """Pairs from the photo corpus' held-out split only: every held-out photo and the middle frame of
    every held-out clip as content, the picture after it (in a fixed, seeded order that mixes the
    sources) as style, plus ``CORPUS_COMPOSITES`` photos on a black and on a white field."""
    from fedvst.corpus import corpus_files
    from fedvst.corpus.fetch import corpus_root
    from fedvst.video.io import read_frames
    from stylizer.images import load_image

    root = corpus_root() / "files"
    pictures = [(str(path.relative_to(root)), _fit(load_image(path))) for path in corpus_files("photo", "heldout")]
    for clip in corpus_files("clip", "heldout"):
        frames = list(read_frames(clip, step=1))
        middle = frames[len(frames) // 2]
        pictures.append((f"{clip.relative_to(root)}#{middle.index}", _fit(middle.image)))
    order = np.random.default_rng(0).permutation(len(pictures))
    pictures = [pictures[i] for i in order]
    pairs = [(name, image, pictures[(i + 1) % len(pictures)][0], pictures[(i + 1) % len(pictures)][1])
             for i, (name, image) in enumerate(pictures)]
    for k in range(CORPUS_COMPOSITES):
        (content_name, content), (style_name, style) = pictures[2 * k], pictures[2 * k + 3]
        for level in (0, 255):
            name = f"{content_name} on {'black' if level == 0 else 'white'}"
            canvas, FLAT_MASKS[name] = composite(content, level)
            pairs.append((name, canvas, style_name, style))
    return pairs


def mkl(content: np.ndarray, style: np.ndarray) -> np.ndarray:
    """The closed-form MKL transfer, the affine head's prior, applied globally."""
    image = to_tensor(content).double()
    return to_uint8(apply_global(image, mkl_transform(image, to_tensor(style).double())))


def ungated_copy(model):
    """``model``'s weights in a network whose config has no flat gate (flat_contrast 0)."""
    config = StylizerConfig.from_dict({**model.config.to_dict(), "flat_contrast": 0.0})
    copy = build_model(config, allow_download=False)
    copy.load_trainable_state(model.trainable_state())
    return copy


def methods(device: str | None, net_widths: tuple[int, ...] = (), ungated: bool = False,
            checkpoint: Path | None = None) -> dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """Name → stylize(content, style) at the content's size (``affine@W``: the affine head run W px wide);
    ``affine`` is ``checkpoint`` (default: the built-in)."""
    out: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {}
    builtin, _ = load_model(checkpoint or builtin_checkpoint_path(), allow_download=False)
    untrained = build_model(StylizerConfig.from_dict(builtin.config.to_dict()), allow_download=False)
    models = [("affine", builtin), ("prior", untrained)]
    if ungated:  # the same weights without the flat gate: what the gate removes
        models.append(("affine_ungated", ungated_copy(builtin)))
    for name, model in models:
        stylizer = Stylizer(model, device=device)
        out[name] = lambda c, s, st=stylizer: st.stylize_frame(c, s, size=c.shape[:2])
    if image_head_checkpoint_path().exists():
        stylizer = Stylizer.from_checkpoint(image_head_checkpoint_path(), device=device, allow_download=False)
        out["image"] = lambda c, s, st=stylizer: st.stylize_frame(c, s, size=c.shape[:2])
    for width in net_widths:
        stylizer = Stylizer(builtin, device=device, work_width=width)
        out[f"affine@{width}"] = lambda c, s, st=stylizer: st.stylize_frame(c, s, size=c.shape[:2])
    out["reinhard"] = reinhard
    out["mkl"] = mkl
    return out


def evaluate(pairs, stylizers) -> tuple[dict[str, dict], dict[str, list[np.ndarray]], dict[str, list[float]]]:
    """Per method: mean corr, colour and Eq. 5 terms; every output (for the figure); colour per pair."""
    scorer = Eq5Scorer()
    scores: dict[str, dict] = {}
    outputs: dict[str, list[np.ndarray]] = {}
    colours: dict[str, list[float]] = {}
    for name, stylize in stylizers.items():
        corr, colour, content_terms, style_terms, images, spreads, patches, regions = [], [], [], [], [], [], [], []
        for content_name, content, _, style in pairs:
            out = stylize(content, style)
            if content_name in FLAT_MASKS:
                spreads.append(flat_spread(out, FLAT_MASKS[content_name]))
            else:
                patches.append(patchwork(out, content)[0])
            regions.append(region_inconsistency(out, content)[0])  # composites too: a glow beside the field counts
            corr.append(structure_corr(out, content))
            colour.append(colour_distance(out, content, style))
            terms = scorer(out, content, style)
            content_terms.append(terms["content"])
            style_terms.append(terms["style"])
            images.append(out)
        scores[name] = {"corr": round(float(np.mean(corr)), 4), "colour": round(float(np.mean(colour)), 4),
                        "eq5": {"content": round(float(np.mean(content_terms)), 2),
                                "style": round(float(np.mean(style_terms)), 2)},
                        "flat_spread": max(spreads, default=0),
                        "patchwork_p99": {"mean": round(float(np.mean(patches)), 2),
                                          "max": round(float(np.max(patches)), 2)},
                        "region_inconsistency_p99": {"mean": round(float(np.mean(regions)), 3),
                                                     "max": round(float(np.max(regions)), 2)}}
        outputs[name] = images
        colours[name] = colour
    return scores, outputs, colours


def short_name(name: str) -> str:
    """A pair's picture as a figure labels it: the file's name (a corpus path's folders dropped), with
    its frame number or composite field kept ("cityCC0.mpg#95", "bulb.webp on black")."""
    head, sep, rest = name.partition(" on ")
    return Path(head).name + (sep + rest if sep else "")


def save_figure(path: Path, pairs, outputs, rows: tuple[int, ...] = (0, 2, 5, 7, 12, 16, 17)) -> None:
    """A grid: content | style | built-in | untrained prior | MKL for some of the pairs."""
    from simulations.learning_figure import picture_grid

    columns = [m for m in ("affine", "prior", "mkl") if m in outputs]
    titles = {"affine": "built-in (affine head)", "prior": "untrained prior", "mkl": "MKL (closed form)"}
    picture_grid([[pairs[i][1], pairs[i][3], *(outputs[m][i] for m in columns)] for i in rows],
                 ["content", "style", *(titles[m] for m in columns)],
                 [(short_name(pairs[i][0]), short_name(pairs[i][2])) for i in rows], path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object only")
    parser.add_argument("--figure", type=Path, default=None, help="also write the comparison grid (PNG)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--ungated", action="store_true",
                        help="also score the built-in's weights without the flat gate (affine_ungated)")
    parser.add_argument("--net-widths", type=int, nargs="*", default=[],
                        help="also score the affine head run at these network widths (px)")
    parser.add_argument("--corpus", action="store_true", help="pairs from the photo corpus' held-out split")
    parser.add_argument("--checkpoint", type=Path, default=None, help="the affine model to score (default: built-in)")
    parser.add_argument("--figure-rows", type=int, nargs="*", default=None, help="pair indices the figure shows")
    args = parser.parse_args()
    if args.checkpoint is not None and not args.checkpoint.is_file():
        parser.error(f"checkpoint {args.checkpoint} does not exist")
    pairs = make_corpus_pairs() if args.corpus else make_pairs()
    scores, outputs, colours = evaluate(pairs, methods(args.device, tuple(args.net_widths), args.ungated,
                                                       args.checkpoint))
    if args.figure is not None:
        save_figure(args.figure, pairs, outputs, *([tuple(args.figure_rows)] if args.figure_rows else []))
    if not args.json:
        for name, values in scores.items():
            print(f"{name:9s} corr {values['corr']:.4f}  colour {values['colour']:.4f}  eq5 content "
                  f"{values['eq5']['content']:.1f} style {values['eq5']['style']:.1f}  flat spread "
                  f"{values['flat_spread']}", file=sys.stderr)
    main_methods = {k: v for k, v in scores.items() if "@" not in k}
    margins = [a - p for a, p in zip(colours["affine"], colours["prior"], strict=True)]
    worst = int(np.argmax(margins))
    prior_eq5 = main_methods["prior"]["eq5"]
    report = {"pairs": len(pairs), "heldout": sorted({p[0] for p in pairs} | {p[2] for p in pairs}),
              "methods": main_methods,
              "affine_eq5_vs_prior": {term: round(main_methods["affine"]["eq5"][term] / prior_eq5[term], 4)
                                      for term in ("content", "style")},
              "worst_pair_vs_prior": {"content": pairs[worst][0], "style": pairs[worst][2],
                                      "colour_margin": round(float(margins[worst]), 4)}}
    if args.net_widths:
        report["affine_by_net_width"] = {k.split("@")[1]: v for k, v in scores.items() if "@" in k}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
