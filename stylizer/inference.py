"""``Stylizer``: the stylization API the phone's local backend and the edge server call.

Content and style are (H, W, 3) uint8 RGB arrays or (N, 3, H, W) float tensors in [0, 1];
the output has the content's kind. Style codes are computed once per style and cached,
keyed by the sha256 of the style's pixels. Runs channels_last, with bf16 autocast where
the hardware supports it (switchable), on CUDA when present.

With the affine head the network runs on a small copy of the content and predicts a colour
field (``field``/``colour_field``), which is rendered on the content at the output size: on the
CPU by the fused NumPy/numba renderer (``stylizer.render``), on CUDA by the torch one.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from stylizer.colorization import StyleCode
from stylizer.device import autocast_dtype, pick_device
from stylizer.factory import load_model
from stylizer.field import ColourField, check_strength
from stylizer.images import as_rgb_uint8, check_size, check_tensor, to_tensor, to_uint8
from stylizer.meta_smoothing import output_size
from stylizer.model import REFERENCE_WIDTH, StylizerNet, scale_factor
from stylizer.render import fit_within, resize_frame, working_size
from stylizer.render import render_field as render_field_fast
from stylizer.render_torch import render_field as render_field_torch
from stylizer.render_torch import to_colour_field
from stylizer.training import resize

DEFAULT_STYLE_SIZE = 512
DEFAULT_WORK_WIDTH = 512  # the image head's working width (what phones send)
AFFINE_WORK_WIDTH = 128  # the affine head's network width: chosen by measurement (docs/benchmarks.md)


def style_key(style: np.ndarray) -> str:
    """Cache key of a (H, W, 3) uint8 style image: sha256 of its shape and pixels."""
    digest = hashlib.sha256(f"{style.shape}".encode())
    digest.update(np.ascontiguousarray(style).tobytes())
    return digest.hexdigest()


class Stylizer:
    """A loaded stylizer on a device, with a style cache; safe to call from several threads."""

    def __init__(self, model: StylizerNet, *, device: str | torch.device | None = None, precision: str = "auto",
                 style_size: int = DEFAULT_STYLE_SIZE, cache_size: int = 16, work_width: int | None = None) -> None:
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.dtype = autocast_dtype(self.device, precision)
        self.model = model.to(self.device).to(memory_format=torch.channels_last).eval()
        self.style_size = style_size
        self.work_width = work_width or (AFFINE_WORK_WIDTH if model.head == "affine" else DEFAULT_WORK_WIDTH)
        self.cache_size = cache_size
        self._codes: OrderedDict[str, StyleCode] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_checkpoint(cls, path: Path | None = None, *, vgg_weights: Path | None = None,
                        allow_download: bool = True, **kwargs: object) -> Stylizer:
        """Load a verified checkpoint (default: built-in) into a ready Stylizer."""
        model, _ = load_model(path, vgg_weights=vgg_weights, allow_download=allow_download)
        return cls(model, **kwargs)  # type: ignore[arg-type]

    def _autocast(self) -> torch.autocast:
        return torch.autocast(device_type=self.device.type, dtype=self.dtype or torch.float32,
                              enabled=self.dtype is not None)

    def _prepare(self, image: torch.Tensor) -> torch.Tensor:
        return image.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)

    def add_style(self, style: np.ndarray | torch.Tensor, handle: str | None = None) -> str:
        """Compute and cache the style code of ``style``; returns its handle (cache key).

        A caller that already knows the handle (``style_key`` of the same pixels) passes it, and a
        cached style then costs nothing, not even hashing the pixels again.
        """
        if handle is not None:
            with self._lock:
                if handle in self._codes:
                    self._codes.move_to_end(handle)
                    return handle
        if isinstance(style, torch.Tensor):
            style = to_uint8(check_tensor(style, "style image")[:1])
        style = as_rgb_uint8(style, "style image")
        key = style_key(style)
        with self._lock:
            if key in self._codes:
                self._codes.move_to_end(key)
                return key
        tensor = to_tensor(style)
        tensor = resize(tensor, fit_within(*tensor.shape[-2:], self.style_size))
        with torch.inference_mode(), self._autocast():
            code = self.model.style_code(self._prepare(tensor))
        with self._lock:
            self._codes[key] = code
            while len(self._codes) > self.cache_size:
                self._codes.popitem(last=False)
        return key

    def _code(self, style: np.ndarray | torch.Tensor | str) -> StyleCode:
        handle = style if isinstance(style, str) else self.add_style(style)
        with self._lock:
            code = self._codes.get(handle)
        if code is None:
            raise KeyError(f"unknown style handle {handle[:16]}…: upload the style first")
        return code

    @property
    def head(self) -> str:
        return self.model.head

    def field(self, content: np.ndarray | torch.Tensor, style: np.ndarray | torch.Tensor | str,
              r: float = 1.0, reference: np.ndarray | None = None) -> torch.Tensor:
        """Affine head: the (N, D·12, gh, gw) float32 field of ``content`` (run at its own size) for scale r.

        ``reference``: the same picture as an (H', W', 3) uint8 array at a higher resolution (the
        frame the field will be rendered on, or any copy of it); the prior's colour statistics are
        measured on it shrunk to ``REFERENCE_WIDTH`` or ``content``'s width, whichever is wider (default:
        on ``content``, as small as it is)."""
        tensor = (to_tensor(as_rgb_uint8(content, "content image")) if isinstance(content, np.ndarray)
                  else check_tensor(content, "content"))
        code = self._code(style)
        detail = None
        if reference is not None:
            reference = as_rgb_uint8(reference, "reference image")
            width = max(REFERENCE_WIDTH, int(tensor.shape[-1]))
            detail = self._prepare(to_tensor(resize_frame(reference, working_size(*reference.shape[:2], width))))
        with torch.inference_mode(), self._autocast():
            return self.model.field(self._prepare(tensor), code.to(self.device), r, detail).float()

    def network_input(self, content: np.ndarray) -> np.ndarray:
        """A (h, w, 3) uint8 content shrunk (never enlarged) to this stylizer's working width."""
        return resize_frame(content, working_size(*content.shape[:2], self.work_width))

    def colour_field(self, content: np.ndarray, style: np.ndarray | str, size: tuple[int, int],
                     strength: float = 1.0) -> ColourField:
        """Affine head: the ColourField of a (h, w, 3) uint8 ``content`` (any size: the network runs at
        its working width) for an output of ``size`` = (H, W), blended toward the identity by
        ``strength`` in [0, 1] (``ColourField.toward_identity``)."""
        strength = check_strength(strength)
        content = as_rgb_uint8(content, "content image")
        small = self.network_input(content)
        check_size(size[0], size[1], "requested output")
        field = self.field(small, style, scale_factor(small.shape[:2], size), content)
        return to_colour_field(field).toward_identity(strength)

    def render(self, field: ColourField | torch.Tensor, frame: np.ndarray) -> np.ndarray:
        """Render a field on a (H, W, 3) uint8 frame at the frame's size → (H, W, 3) uint8."""
        if self.device.type == "cpu" or isinstance(field, ColourField):
            coefficients = field if isinstance(field, ColourField) else to_colour_field(field)
            return render_field_fast(frame, coefficients)
        with torch.inference_mode():
            image = self._prepare(to_tensor(frame))
            return to_uint8(render_field_torch(field.to(self.device), image))

    def stylize(self, content: np.ndarray | torch.Tensor, style: np.ndarray | torch.Tensor | str,
                r: float = 1.0, *, size: tuple[int, int] | None = None,
                full: np.ndarray | None = None) -> np.ndarray | torch.Tensor:
        """Stylize ``content`` at its own size; output round(r·H)×round(r·W) or exactly ``size``.

        Affine head: the field is rendered on ``full`` (an (H', W', 3) uint8 copy of the content at
        any resolution, e.g. the original frame) resized to the output size, else on ``content`` resized.
        """
        is_array = isinstance(content, np.ndarray)
        if is_array:
            content = as_rgb_uint8(content, "content image")
        height, width = content.shape[:2] if is_array else check_tensor(content, "content").shape[-2:]
        target = size if size is not None else output_size(height, width, r)
        check_size(target[0], target[1], "requested output")
        if self.head == "affine" and is_array:
            small = self.network_input(content)
            source = as_rgb_uint8(full, "full-resolution content") if full is not None else content
            field = self.field(small, style, scale_factor(small.shape[:2], target), source)
            return self.render(field, resize_frame(source, target))
        tensor = to_tensor(content) if is_array else content
        code = self._code(style)
        with torch.inference_mode(), self._autocast():
            out = self.model(self._prepare(tensor), code.to(self.device), target)
            out = out.float().clamp_(0.0, 1.0)
            if is_array:
                return to_uint8(out)
        return out.clone(memory_format=torch.contiguous_format)

    def stylize_frame(self, frame: np.ndarray, style: np.ndarray | str, size: tuple[int, int] | None = None,
                      work_width: int | None = None, strength: float = 1.0) -> np.ndarray:
        """A (H, W, 3) uint8 frame → stylized (size or H×W) uint8: the network runs at ≤ work_width; the
        affine head renders on the frame itself, the image head meta-smooths its output up. ``strength``
        in [0, 1] blends the result with the frame (for a field: the field toward the identity)."""
        strength = check_strength(strength)
        frame = as_rgb_uint8(frame, "frame")
        height, width = frame.shape[:2]
        target = size or (height, width)
        work = working_size(height, width, work_width or self.work_width)
        small = resize_frame(frame, work)
        if self.head == "affine" and strength < 1.0:
            field = self.field(small, style, scale_factor(work, target), frame)
            field = to_colour_field(field).toward_identity(strength)
            return self.render(field, resize_frame(frame, target))
        out = self.stylize(small, style, size=target, full=frame)
        if strength < 1.0:
            plain = resize_frame(frame, target).astype(np.float32)
            out = np.clip(strength * out + (1.0 - strength) * plain + 0.5, 0, 255).astype(np.uint8)
        return out
