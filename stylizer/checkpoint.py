"""Checkpoint format: ``NAME.safetensors`` (learned tensors) + ``NAME.json`` (metadata).

The JSON is written last and is the commit record: it holds the format version, the
sha256 of the tensor file, each tensor's dtype and shape, the encoder identity, the
architecture config, and caller fields (round, metrics, …). Both files are written
atomically. ``load_checkpoint`` reads the tensor bytes once, verifies the hash, then
parses them with safetensors (never pickle) and checks every declared shape.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from stylizer.atomic_io import atomic_write_bytes, move_aside
from stylizer.crash_points import crash_point

FORMAT_VERSION = 1
MAX_METADATA_BYTES = 1 << 20


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, tampered with or incompatible (one-line reason)."""


@dataclass
class Checkpoint:
    """Learned tensors (CPU) and the metadata that travelled with them."""

    state: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return str(self.metadata.get("sha256", ""))


def metadata_path(tensor_path: Path) -> Path:
    """The JSON file that belongs to ``tensor_path``."""
    return Path(tensor_path).with_suffix(".json")


def move_checkpoint_aside(path: Path, folder: Path) -> list[Path]:
    """Move whatever exists of a checkpoint pair (metadata first: the commit record) into ``folder``,
    each file under a name no other move takes (``move_aside``); returns the new paths."""
    return [move_aside(part, folder) for part in (metadata_path(Path(path)), Path(path)) if part.exists()]


def tensor_bytes(state: dict[str, torch.Tensor]) -> bytes:
    """Canonical safetensors bytes of ``state`` (CPU, contiguous)."""
    return save_safetensors({k: v.detach().to("cpu").contiguous() for k, v in sorted(state.items())})


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 of ``state``'s canonical tensor bytes: what a checkpoint of it records as its sha256."""
    return hashlib.sha256(tensor_bytes(state)).hexdigest()


def save_checkpoint(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, Any]) -> str:
    """Write ``state`` + ``metadata`` atomically at ``path`` (.safetensors); returns the sha256."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"checkpoint path must end in .safetensors, got {path}")
    for key, value in state.items():
        if value.dtype.is_floating_point and not torch.isfinite(value).all():
            raise CheckpointError(f"refusing to save checkpoint: tensor {key} contains NaN or Inf")
    data = tensor_bytes(state)
    digest = hashlib.sha256(data).hexdigest()  # = state_sha256(state), without serializing twice
    record = dict(metadata)
    record.update({
        "format_version": FORMAT_VERSION,
        "sha256": digest,
        "tensor_file": path.name,
        "tensors": {k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape)}
                    for k, v in sorted(state.items())},
    })
    atomic_write_bytes(path, data)
    crash_point("checkpoint", path.name)  # tensors written, metadata (the commit record) not yet
    atomic_write_bytes(metadata_path(path), json.dumps(record, indent=1, sort_keys=True).encode())
    return digest


def read_metadata(path: Path) -> dict[str, Any]:
    """Parse and sanity-check the JSON next to ``path``."""
    meta_file = metadata_path(Path(path))
    if not meta_file.is_file():
        raise CheckpointError(f"checkpoint metadata {meta_file} is missing")
    raw = meta_file.read_bytes()
    if len(raw) > MAX_METADATA_BYTES:
        raise CheckpointError(f"checkpoint metadata {meta_file} is implausibly large ({len(raw)} bytes)")
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"checkpoint metadata {meta_file} is not valid JSON") from None
    if not isinstance(record, dict):
        raise CheckpointError(f"checkpoint metadata {meta_file} is not a JSON object")
    if record.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format version {record.get('format_version')!r}; "
                              f"this fedvst reads version {FORMAT_VERSION}")
    if not isinstance(record.get("sha256"), str) or not isinstance(record.get("tensors"), dict):
        raise CheckpointError(f"checkpoint metadata {meta_file} lacks sha256 or tensors")
    return record


def parse_checkpoint_bytes(data: bytes, record: dict[str, Any], where: str) -> Checkpoint:
    """Verify ``data`` against ``record`` (hash, keys, dtypes, shapes) and parse it."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != record["sha256"]:
        raise CheckpointError(f"checkpoint {where} is corrupt or was modified: sha256 {digest[:12]}… "
                              f"does not match the recorded {str(record['sha256'])[:12]}…")
    try:
        state = load_safetensors(data)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {where} has unreadable tensors: {exc}") from None
    declared = record["tensors"]
    if set(declared) != set(state):
        raise CheckpointError(f"checkpoint {where} holds tensors {sorted(set(state) ^ set(declared))[:3]} "
                              "that its metadata does not declare (or the reverse)")
    for key, value in state.items():
        spec = declared[key]
        if list(value.shape) != spec.get("shape") or str(value.dtype).removeprefix("torch.") != spec.get("dtype"):
            raise CheckpointError(f"checkpoint {where}: tensor {key} is {value.dtype} {list(value.shape)}, "
                                  f"metadata says {spec.get('dtype')} {spec.get('shape')}")
        if value.dtype.is_floating_point and not torch.isfinite(value).all():
            raise CheckpointError(f"checkpoint {where}: tensor {key} contains NaN or Inf")
    return Checkpoint(state, record)


def write_checkpoint_bytes(path: Path, data: bytes, record: dict[str, Any]) -> Checkpoint:
    """Verify received tensor bytes against their metadata, then store both atomically at ``path``."""
    if record.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint has format version {record.get('format_version')!r}; "
                              f"this fedvst reads version {FORMAT_VERSION}")
    checkpoint = parse_checkpoint_bytes(data, record, str(path))
    atomic_write_bytes(Path(path), data)
    crash_point("checkpoint", Path(path).name)
    atomic_write_bytes(metadata_path(Path(path)), json.dumps(record, indent=1, sort_keys=True).encode())
    return checkpoint


def load_checkpoint(path: Path) -> Checkpoint:
    """Read and fully verify the checkpoint at ``path`` (.safetensors)."""
    path = Path(path)
    record = read_metadata(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint tensor file {path} is missing")
    return parse_checkpoint_bytes(path.read_bytes(), record, str(path))
