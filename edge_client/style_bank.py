"""Styles an edge trains with besides the ones its phones used: a bank of colour photos.

An edge's training pairs the frames its phones shared with the styles they used. In its first
round after deployment that is one or two styles, and a model fine-tuned on one style drifts
toward it. On the photo corpus, in three seeded trials of one local pass from the built-in, adding
the 7 sample photos below to the phone's one style lowered the held-out total more than the one
style alone in each trial, and in bench_learning round 1 then lowered it instead of raising it
(docs/benchmarks.md, "A style bank at the edges"). So an edge keeps a bank:

* ``samples`` (``fedvst edge serve``'s default): the sample media's training colour photos
  (``fedvst.samples.TRAINING_PHOTOS``: 7 pictures from scikit-image, never held out);
* ``none``: the phones' styles only (the paper's setting; simulations use it);
* a folder: every picture in it (an operator's own licensed photos).

Bank pictures are shrunk to at most ``BANK_SIDE`` px (training crops are small) and decoded once
per process.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from stylizer.images import IMAGE_SUFFIXES, ImageError, image_files, load_image
from stylizer.render import fit_within, resize_frame

SAMPLES = "samples"
NONE = "none"
BANK_SIDE = 640
_LOADED: dict[str, tuple[np.ndarray, ...]] = {}
log = logging.getLogger(__name__)


def bank_files(spec: str) -> list[Path]:
    """The pictures ``spec`` names (``samples``, ``none`` or a folder); ValueError, one line saying
    what to do, for a folder that is missing or holds no pictures, or for missing sample media."""
    if spec == NONE:
        return []
    if spec == SAMPLES:
        from fedvst.samples import TRAINING_PHOTOS, SampleMediaError, sample_photo

        try:
            return [sample_photo(name) for name in TRAINING_PHOTOS]
        except SampleMediaError as exc:
            raise ValueError(f"style bank 'samples': {exc}; or pass --style-bank none or a folder") from None
    folder = Path(spec)
    if not folder.is_dir():
        raise ValueError(f"style bank folder {folder} is missing: pass --style-bank a folder of colour photos, "
                         f"'{SAMPLES}' or '{NONE}'")
    files = image_files(folder)
    if not files:
        raise ValueError(f"style bank folder {folder} holds no pictures ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def check_style_bank(spec: str) -> str:
    """Reads every picture of the bank once; returns 'N style pictures (SPEC)', or raises ValueError
    (one line naming the file) before an edge starts."""
    files = bank_files(spec)
    for path in files:
        try:
            load_image(path, "style bank picture")
        except ImageError as exc:
            raise ValueError(f"style bank picture {path} is unreadable ({exc}): replace or remove it") from None
    return f"{len(files)} style pictures ({spec})"


def bank_pictures(spec: str) -> tuple[np.ndarray, ...]:
    """The bank's pictures as (H, W, 3) uint8 RGB, at most BANK_SIDE px (cached per process); a
    picture that no longer decodes, or a bank folder gone since the edge started, is left out (with
    a warning) rather than stopping training."""
    if spec not in _LOADED:
        try:
            files = bank_files(spec)
        except ValueError as exc:
            log.warning("training without the style bank: %s", exc)
            return ()
        pictures = []
        for path in files:
            try:
                pixels = load_image(path, "style bank picture")
                pictures.append(resize_frame(pixels, fit_within(*pixels.shape[:2], BANK_SIDE)))
            except ImageError:
                continue
        _LOADED[spec] = tuple(pictures)
    return _LOADED[spec]
