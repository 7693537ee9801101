"""Re-create the built-in checkpoint shipped in ``stylizer/assets/`` from the training split.

    python -m simulations.build_builtin_model --corpus --steps 3500 [--device cuda]
    python -m simulations.build_builtin_model --corpus --init BUILTIN --steps 300 --glow-weight 1e8 --out NEW
    python -m simulations.build_builtin_model --corpus --init BUILTIN --steps 300 --seed 1000 \
        --override '{"colour_projection": true, "style_from": "", "colour_weight": 0}' --out NEW

The second form continues a checkpoint (the built-in of 2026-12-05, for the built-in of 2026-12-07)
with the glow term of ``stylizer.losses.glow`` switched on; the third (from the built-in of
2026-12-07, ``git show c010745:stylizer/assets/builtin.safetensors``, for the shipped model of
2026-12-08) with the colour projection on and Eq. 5's style term over every tap instead of the
CIELAB term (docs/benchmarks.md, "A hard colour projection"). Adding ``"style_regions": 3`` to that
override compares the style per semantic region instead (``stylizer.feature_regions``; not shipped:
docs/benchmarks.md, "Issue 32's other two recipes").

With ``--corpus`` (``fedvst corpus`` first): content is the photo corpus' training split (its
photos, longer side scaled to 512 px, and every 20th frame of its training clips) and style every
colour photo of it. Without: content is the training split of the sample media
(``fedvst.samples.training_pictures``: every 10th frame of the training clip segments, the
training photos, grey ones too); style: every colour picture of it (the training photos and the
clip frames). No held-out picture is touched, so ``bench_photoreal`` measures the result on
pictures it never saw. Trains with ``fedvst train``'s own code path against the ImageNet VGG-16,
then writes the result into the package.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from PIL import Image

from fedvst.samples import TRAINING_GREY_PHOTOS, training_pictures
from fedvst.train_command import TrainSettings, run_training
from stylizer.config import NEUTRAL_RESIDUALS, StylizerConfig
from stylizer.factory import builtin_checkpoint_path

# The built-in model's loss, chosen on the held-out split (docs/benchmarks.md, "Choosing the built-in's recipe").
# Eq. 5 with λ = 4 on the taps relu3_1 and relu4_1; the CIELAB term holds the colour the shallow taps measure.
BUILTIN_CONFIG = {"loss_layer": "relu4_1", "content_reference": "content", "style_weight": 4.0,
                  "style_from": "relu3_1", "colour_weight": 7.5e6, "smoothness_weight": 0.0, "flat_contrast": 0.03}


def prepare_folders(root: Path, frame_step: int = 10) -> tuple[Path, Path]:
    """Write content/ and style/ image folders of the training split under ``root``; returns both.
    Every picture is a content; every colour one (all but ``TRAINING_GREY_PHOTOS``) is also a style."""
    content, style = root / "content", root / "style"
    content.mkdir(parents=True, exist_ok=True)
    style.mkdir(parents=True, exist_ok=True)
    contents, _ = training_pictures(frame_step)
    for name, pixels in contents:
        file_name = f"{name.replace('#', '_')}.png"
        Image.fromarray(pixels).save(content / file_name)
        if name not in TRAINING_GREY_PHOTOS:
            Image.fromarray(pixels).save(style / file_name)
    return content, style


CORPUS_SIDE = 512  # corpus pictures are scaled to this longer side first: crops see 64–192 px of them anyway
CORPUS_FRAME_STEP = 20


def prepare_corpus_folders(root: Path) -> tuple[Path, Path]:
    """content/ and style/ folders of the photo corpus' training split under ``root`` (PNG)."""
    import numpy as np

    from fedvst.corpus import corpus_files
    from fedvst.video.io import read_frames
    from simulations.corpus_media import is_grey, shrunk
    from stylizer.images import load_image

    content, style = root / "content", root / "style"
    content.mkdir(parents=True, exist_ok=True)
    style.mkdir(parents=True, exist_ok=True)

    def save(folder: Path, name: str, pixels: np.ndarray) -> None:
        shrunk(pixels, CORPUS_SIDE).save(folder / f"{name}.png")

    for number, path in enumerate(corpus_files("photo", "train")):
        pixels = load_image(path)
        save(content, f"photo{number:04d}", pixels)
        if not is_grey(pixels):
            save(style, f"photo{number:04d}", pixels)
    for number, clip in enumerate(corpus_files("clip", "train")):
        for frame in read_frames(clip, step=CORPUS_FRAME_STEP):
            save(content, f"clip{number}_{frame.index:05d}", frame.image)
    return content, style


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3250)
    parser.add_argument("--base-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=builtin_checkpoint_path())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--config", default=json.dumps(BUILTIN_CONFIG), help="StylizerConfig fields as JSON")
    parser.add_argument("--style-jitter", action="store_true", help="vary the style crops' colours and flip crops")
    parser.add_argument("--scale", type=float, nargs=2, default=(3.0, 3.0), metavar=("MIN", "MAX"),
                        help="output scales r of the training crops (3: the field drives a 192 px crop from 64 px)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--checkpoint-every", type=int, default=250)
    parser.add_argument("--corpus", action="store_true", help="train on the photo corpus' training split")
    parser.add_argument("--init", type=Path, default=None,
                        help="continue from this checkpoint (its config; --config is then not used)")
    parser.add_argument("--glow-weight", type=float, default=None,
                        help="the model's glow_weight (stylizer.losses.glow) for this training and after")
    parser.add_argument("--neutral-residual", choices=NEUTRAL_RESIDUALS, default=None,
                        help="the model's neutral_residual (what the learned part may do to greys) for this "
                             "training and after")
    parser.add_argument("--override", default="{}",
                        help="JSON of config fields no tensor's shape depends on (fedvst.train_command."
                             "TRAINING_OVERRIDABLE), set for this training and after, with --init too")
    args = parser.parse_args()
    config = StylizerConfig(**json.loads(args.config))
    try:
        overrides = json.loads(args.override)
    except json.JSONDecodeError as error:
        parser.error(f"--override is not JSON ({error}); give an object such as '{{\"colour_projection\": true}}'")
    if not isinstance(overrides, dict):
        parser.error("--override must be a JSON object of config fields, such as '{\"colour_projection\": true}'")
    with tempfile.TemporaryDirectory() as tmp:
        content, style = prepare_corpus_folders(Path(tmp)) if args.corpus else prepare_folders(Path(tmp))
        print(f"training on {sum(1 for _ in content.iterdir())} contents and {sum(1 for _ in style.iterdir())} styles")
        losses = run_training(TrainSettings(content_dir=content, style_dir=style, steps=args.steps, out=args.out,
                                            base_size=args.base_size, seed=args.seed, lr=args.lr, config=config,
                                            scale_min=args.scale[0], scale_max=args.scale[1], device=args.device,
                                            style_jitter=args.style_jitter, checkpoint_every=args.checkpoint_every,
                                            init=args.init, glow_weight=args.glow_weight,
                                            neutral_residual=args.neutral_residual, overrides=overrides))
    print(f"wrote {args.out}: {losses}")


if __name__ == "__main__":
    main()
