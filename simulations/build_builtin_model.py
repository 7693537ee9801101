"""Re-create the built-in checkpoint shipped in ``stylizer/assets/`` from the training split.

    python -m simulations.build_builtin_model --steps 5500

Content: the training split of the sample media (``fedvst.samples.training_pictures``: every 10th
frame of the training clip segments, the training photos, grey ones too); style: the training
photos. No held-out picture is touched, so
``bench_photoreal`` measures the result on pictures it never saw. Trains with ``fedvst train``'s
own code path against the ImageNet VGG-16, then writes the result into the package.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from PIL import Image

from fedvst.samples import training_pictures
from fedvst.train_command import TrainSettings, run_training
from stylizer.config import StylizerConfig
from stylizer.factory import builtin_checkpoint_path

# The built-in model's loss, chosen on the held-out split (docs/benchmarks.md, "Choosing the loss").
BUILTIN_CONFIG = {"loss_layer": "relu4_1", "content_reference": "content", "colour_weight": 3e7,
                  "smoothness_weight": 0.0, "flat_contrast": 0.03}


def prepare_folders(root: Path, frame_step: int = 10) -> tuple[Path, Path]:
    """Write content/ and style/ image folders of the training split under ``root``; returns both."""
    content, style = root / "content", root / "style"
    content.mkdir(parents=True, exist_ok=True)
    style.mkdir(parents=True, exist_ok=True)
    contents, styles = training_pictures(frame_step)
    for name, pixels in contents:
        Image.fromarray(pixels).save(content / f"{name.replace('#', '_')}.png")
    for name, pixels in styles:
        Image.fromarray(pixels).save(style / f"{name}.png")
    return content, style


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5500)
    parser.add_argument("--base-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=builtin_checkpoint_path())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--config", default=json.dumps(BUILTIN_CONFIG), help="StylizerConfig fields as JSON")
    parser.add_argument("--style-jitter", action="store_true", help="vary the style crops' colours and flip crops")
    args = parser.parse_args()
    config = StylizerConfig(**json.loads(args.config))
    with tempfile.TemporaryDirectory() as tmp:
        content, style = prepare_folders(Path(tmp))
        losses = run_training(TrainSettings(content_dir=content, style_dir=style, steps=args.steps, out=args.out,
                                            base_size=args.base_size, seed=args.seed, lr=args.lr, config=config,
                                            style_jitter=args.style_jitter, checkpoint_every=250))
    print(f"wrote {args.out}: {losses}")


if __name__ == "__main__":
    main()
