"""The photo corpus (``fedvst corpus``) as the simulations' and benchmarks' media: grey or colour,
the cloud's held-out folder from the corpus' held-out split, and non-IID edge slices of its
training split. Training touches ``train`` only; every score is taken on ``heldout`` only.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

GREY_CHROMA = 2.0  # mean |colour − its grey| in 8-bit levels under which a picture is grey (content only)
HELDOUT_SIDE = 256  # held-out pictures are stored this long (the cloud scores at 32–128 px)
HELDOUT_CLIP_STEP = 40  # every 40th frame of a held-out clip joins the held-out pictures


def shrunk(pixels: np.ndarray, side: int):
    """(H, W, 3) uint8 as a PIL image at most ``side`` px on its longer side (Lanczos; never enlarged)."""
    from PIL import Image

    image = Image.fromarray(pixels)
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return image


def is_grey(pixels: np.ndarray) -> bool:
    """Whether an (H, W, 3) uint8 picture is grey: no colour to lend as a style."""
    values = pixels.astype(np.float32)
    return bool(np.abs(values - values.mean(axis=2, keepdims=True)).mean() < GREY_CHROMA)


@functools.lru_cache(maxsize=1)
def colour_training_photos() -> tuple[Path, ...]:
    """The corpus' training photos that are in colour (the styles an edge can be sent), sorted."""
    from fedvst.corpus import corpus_files
    from stylizer.images import load_image

    return tuple(path for path in corpus_files("photo", "train") if not is_grey(load_image(path)))


def write_corpus_heldout(folder: Path) -> Path:
    """The corpus' held-out photos and every HELDOUT_CLIP_STEP-th frame of its held-out clips as
    ``folder/content``, the colour ones among them as ``folder/style`` (PNG, at most HELDOUT_SIDE
    px): a cloud's ``--heldout``. A folder that holds both already is left as it is."""
    from fedvst.corpus import corpus_files
    from fedvst.video.io import read_frames
    from stylizer.images import load_image

    if (folder / "content").is_dir() and (folder / "style").is_dir():
        return folder
    pictures = [(f"photo{n:03d}", load_image(path)) for n, path in enumerate(corpus_files("photo", "heldout"))]
    for n, clip in enumerate(corpus_files("clip", "heldout")):
        pictures += [(f"clip{n}_{frame.index:04d}", frame.image) for frame in read_frames(clip, step=HELDOUT_CLIP_STEP)]
    for sub in ("content", "style"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for name, pixels in pictures:
        image = shrunk(pixels, HELDOUT_SIDE)
        image.save(folder / "content" / f"{name}.png")
        if not is_grey(pixels):
            image.save(folder / "style" / f"{name}.png")
    return folder


def clip_stretches(frames: int) -> list[tuple[Path, int, int]]:
    """Whole ``frames``-frame stretches (clip, start, stop) of the corpus' training clips, the clips
    taken in turn while they last: no frame in two stretches."""
    from fedvst.corpus import corpus_files
    from fedvst.video.io import read_frames

    left = {clip: [(start, start + frames) for start in range(0, sum(1 for _ in read_frames(clip)) - frames + 1,
                                                              frames)]
            for clip in corpus_files("clip", "train")}
    order: list[tuple[Path, int, int]] = []
    while any(left.values()):
        order += [(clip, *stretches.pop(0)) for clip, stretches in left.items() if stretches]
    return order


def corpus_slices(count: int = 4, clip_frames: int = 120, photos: int = 12, styles: int = 6) -> list[dict]:
    """``count`` disjoint slices of the corpus' training split for simulated edges: each a stretch of
    a training clip (``clip``: path, start, stop), ``photos`` training photos as content and
    ``styles`` training colour photos as styles (paths as strings; a seeded, fixed choice)."""
    from fedvst.corpus import corpus_files

    stretches = clip_stretches(clip_frames)
    contents = [str(p) for p in corpus_files("photo", "train")]
    colours = [str(p) for p in colour_training_photos()]
    rng = np.random.default_rng(2020)
    contents = [contents[i] for i in rng.permutation(len(contents))]
    colours = [colours[i] for i in rng.permutation(len(colours))]
    if len(stretches) < count or len(contents) < count * photos or len(colours) < count * styles:
        raise ValueError(f"the corpus' training split is too small for {count} slices")
    return [{"clip": [str(stretches[i][0]), stretches[i][1], stretches[i][2]],
             "photos": contents[i * photos:(i + 1) * photos], "styles": colours[i * styles:(i + 1) * styles]}
            for i in range(count)]
