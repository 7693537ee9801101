"""Image validation, conversion and file loading for the stylizer.

Arrays are (H, W, 3) uint8 RGB; tensors are (N, 3, H, W) float in [0, 1]. Every bad input
raises ``ImageError`` (a ValueError) with a one-line message naming what is wrong.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np
import torch

MAX_SIDE = 8192
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


class ImageError(ValueError):
    """An image that cannot be used, with a one-line reason."""


def check_size(height: int, width: int, what: str = "image") -> None:
    """Reject empty images and sides over MAX_SIDE."""
    if height <= 0 or width <= 0:
        raise ImageError(f"{what} is empty ({height}×{width})")
    if height > MAX_SIDE or width > MAX_SIDE:
        raise ImageError(f"{what} is {width}×{height}: sides over {MAX_SIDE} px are refused")


def as_rgb_uint8(array: np.ndarray, what: str = "image") -> np.ndarray:
    """Validate and convert gray (H, W)/(H, W, 1), RGB or RGBA (alpha dropped) to (H, W, 3) uint8.

    Float input must be finite and in [0, 1]; other dtypes must be uint8.
    """
    if not isinstance(array, np.ndarray):
        raise ImageError(f"{what} must be a NumPy array, got {type(array).__name__}")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise ImageError(f"{what} must have 2 or 3 dimensions, got shape {array.shape}")
    check_size(array.shape[0], array.shape[1], what)
    channels = array.shape[2]
    if channels == 1:
        array = np.repeat(array, 3, axis=2)
    elif channels == 4:
        array = array[:, :, :3]
    elif channels != 3:
        raise ImageError(f"{what} has {channels} channels; expected 1 (gray), 3 (RGB) or 4 (RGBA)")
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError(f"{what} contains NaN or infinite values")
        if array.min() < 0.0 or array.max() > 1.0:
            raise ImageError(f"float {what} must lie in [0, 1], got [{array.min():.3g}, {array.max():.3g}]")
        return np.ascontiguousarray((array * 255.0 + 0.5).astype(np.uint8))
    raise ImageError(f"{what} has dtype {array.dtype}; expected uint8 or float in [0, 1]")


def check_tensor(image: torch.Tensor, what: str = "image") -> torch.Tensor:
    """Validate a (N, 3, H, W) float tensor in [0, 1] (finite); returns it unchanged."""
    if image.ndim != 4 or image.shape[1] != 3:
        raise ImageError(f"{what} tensor must be (N, 3, H, W), got {tuple(image.shape)}")
    if not image.dtype.is_floating_point:
        raise ImageError(f"{what} tensor must be floating point, got {image.dtype}")
    check_size(image.shape[2], image.shape[3], what)
    if not torch.isfinite(image).all():
        raise ImageError(f"{what} tensor contains NaN or infinite values")
    return image


def to_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 → (1, 3, H, W) float32 in [0, 1]."""
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) float → (H, W, 3) uint8, clamped and rounded."""
    if image.ndim == 4:
        image = image[0]
    out = image.detach().float().clamp(0.0, 1.0).mul(255.0).add_(0.5).to(torch.uint8)
    return out.permute(1, 2, 0).contiguous().cpu().numpy()


_OPEN_LOCK = threading.Lock()
HIGH_DEPTH_MODES = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535}


def _open(source):
    """PIL's lazy image; its own decompression-bomb check is replaced by ours (check_size and the
    caller's pixel budget, both applied before any pixel is decoded), so every refusal names the rule."""
    from PIL import Image

    with _OPEN_LOCK:  # the limit is PIL's global; opening reads only the header
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(source)
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _to_rgb(handle) -> np.ndarray:
    """(H, W, 3) uint8 of an opened PIL image; 16-bit and 32-bit integer grey is scaled, not clipped."""
    if handle.mode in HIGH_DEPTH_MODES:
        grey = np.asarray(handle, dtype=np.float64)
        grey = np.clip(grey * (255.0 / HIGH_DEPTH_MODES[handle.mode]), 0.0, 255.0) + 0.5
        return np.repeat(grey.astype(np.uint8)[:, :, None], 3, axis=2)
    if handle.mode == "F":
        raise ImageError("floating-point images (PIL mode F) are not supported: save as 8- or 16-bit")
    return np.asarray(handle.convert("RGB"))


def _decode(source, what: str, name: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _open(source) as handle:
                check_size(handle.height, handle.width, f"{what} {name}".strip())
                handle.load()
                rgb = _to_rgb(handle)
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise ImageError(f"cannot read {what} {name}: not a readable image ({exc.__class__.__name__})".replace(
            "  ", " ")) from None
    return as_rgb_uint8(rgb, what)


def load_image(path: str | Path, what: str = "image") -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB; the size is checked before decoding."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{what} file not found: {path}")
    return _decode(path, what, str(path))


def decode_image_bytes(data: bytes, what: str = "image", max_pixels: int = MAX_SIDE * MAX_SIDE) -> np.ndarray:
    """Decode PNG/JPEG/… bytes to (H, W, 3) uint8 RGB; size and pixel count checked before decoding."""
    import io

    if not data:
        raise ImageError(f"{what} is empty (0 bytes)")
    try:
        with _open(io.BytesIO(data)) as probe:
            width, height = probe.width, probe.height
    except Exception:
        raise ImageError(f"cannot read {what}: not a readable image") from None
    check_size(height, width, what)
    pixels = width * height
    if pixels > max_pixels:
        raise ImageError(f"{what} has {pixels} pixels; at most {max_pixels} are accepted")
    return _decode(io.BytesIO(data), what, "")


def image_files(folder: Path) -> list[Path]:
    """The plain files in ``folder`` whose suffix names a picture (``IMAGE_SUFFIXES``, any case),
    sorted by name; [] for a folder that does not exist. Nothing is decoded."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_image_dir(folder: Path, what: str) -> list[np.ndarray]:
    """Every readable image in ``folder`` (sorted by name); unreadable files are an error."""
    if not folder.is_dir():
        raise ImageError(f"{what} folder not found: {folder}")
    files = image_files(folder)
    if not files:
        raise ImageError(f"{what} folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return [load_image(p, f"{what} image") for p in files]
