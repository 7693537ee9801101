"""Read tensors from a ``torch.save`` checkpoint without unpickling it.

The pickle stream is walked opcode by opcode (``pickletools.genops``) by a tiny stack
machine that knows only dicts, lists, tuples, scalars, strings, a whitelist of globals
(OrderedDict, torch's tensor rebuilders and typed storages) and persistent storage ids.
Nothing in the file is ever executed. Both the zip format (torch ≥ 1.6) and the legacy
stream format (torchvision's 2017 ImageNet checkpoints) are handled.
"""

from __future__ import annotations

import io
import pickletools
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_MARK = object()


@dataclass
class _StorageRef:
    key: str
    dtype: Any


@dataclass
class _TensorRef:
    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: _StorageRef, offset: int, size: tuple, stride: tuple, *_: Any) -> _TensorRef:
    return _TensorRef(storage, int(offset), tuple(size), tuple(stride))


def _resolve_global(module: str, name: str) -> Any:
    if (module, name) == ("collections", "OrderedDict"):
        return lambda *args: dict(*args)
    if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
        return _rebuild_tensor
    if module == "torch" and name in _STORAGE_DTYPES:
        return ("storage_type", _STORAGE_DTYPES[name])
    raise ValueError(f"checkpoint references {module}.{name}, which a weights file never needs; refused")


def _run_pickle(stream: io.BufferedIOBase, persistent: Callable[[tuple], Any]) -> Any:
    """Evaluate one pickle from ``stream`` with the whitelist above; returns its value."""
    stack: list[Any] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        idx = len(stack) - 1 - stack[::-1].index(_MARK)
        items = stack[idx + 1:]
        del stack[idx:]
        return items

    for opcode, arg, _ in pickletools.genops(stream):
        name = opcode.name
        if name in ("PROTO", "FRAME"):
            continue
        if name == "STOP":
            return stack.pop()
        if name == "MARK":
            stack.append(_MARK)
        elif name in ("EMPTY_DICT",):
            stack.append({})
        elif name == "EMPTY_LIST":
            stack.append([])
        elif name == "EMPTY_TUPLE":
            stack.append(())
        elif name in ("BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG", "BINFLOAT", "FLOAT",
                      "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE", "BINSTRING",
                      "SHORT_BINSTRING", "STRING", "SHORT_BINBYTES", "BINBYTES"):
            stack.append(arg)
        elif name == "NONE":
            stack.append(None)
        elif name in ("NEWTRUE", "NEWFALSE"):
            stack.append(name == "NEWTRUE")
        elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
            memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET", "GET"):
            stack.append(memo[arg])
        elif name in ("GLOBAL", "STACK_GLOBAL"):
            if name == "GLOBAL":
                module, _, attr = arg.partition(" ")
            else:
                attr = stack.pop()
                module = stack.pop()
            stack.append(_resolve_global(module, attr))
        elif name == "TUPLE":
            stack.append(tuple(pop_mark()))
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            count = int(name[-1])
            items = tuple(stack[-count:])
            del stack[-count:]
            stack.append(items)
        elif name == "LIST":
            stack.append(pop_mark())
        elif name == "DICT":
            items = pop_mark()
            stack.append(dict(zip(items[::2], items[1::2], strict=True)))
        elif name == "APPEND":
            value = stack.pop()
            stack[-1].append(value)
        elif name == "APPENDS":
            items = pop_mark()
            stack[-1].extend(items)
        elif name == "SETITEM":
            value = stack.pop()
            key = stack.pop()
            stack[-1][key] = value
        elif name == "SETITEMS":
            items = pop_mark()
            stack[-1].update(zip(items[::2], items[1::2], strict=True))
        elif name == "BINPERSID":
            stack.append(persistent(stack.pop()))
        elif name == "REDUCE":
            args = stack.pop()
            func = stack.pop()
            if not callable(func):
                raise ValueError("checkpoint calls something that is not a whitelisted function; refused")
            stack.append(func(*args))
        elif name == "BUILD":
            stack.pop()  # state of an OrderedDict (its _metadata): not needed
        else:
            raise ValueError(f"unsupported pickle opcode {name} in checkpoint; refused")
    raise ValueError("pickle stream ended without STOP")


def _storage_from_pid(pid: tuple) -> _StorageRef:
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
        raise ValueError(f"unexpected persistent id in checkpoint: {pid!r:.80}")
    storage_type = pid[1]
    if not (isinstance(storage_type, tuple) and storage_type[0] == "storage_type"):
        raise ValueError("unexpected storage type in checkpoint")
    return _StorageRef(str(pid[2]), storage_type[1])


def _materialize(refs: dict[str, Any], buffers: dict[str, bytes]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, ref in refs.items():
        if not isinstance(ref, _TensorRef):
            continue
        flat = np.frombuffer(buffers[ref.storage.key], dtype=ref.storage.dtype)
        itemsize = flat.itemsize
        view = np.lib.stride_tricks.as_strided(flat[ref.offset:], shape=ref.size,
                                               strides=[s * itemsize for s in ref.stride])
        out[str(name)] = torch.from_numpy(np.array(view))
    return out


def _read_zip(path: Path) -> dict[str, torch.Tensor]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = next((n for n in names if n.endswith("/data.pkl") or n == "data.pkl"), None)
        if pkl is None:
            raise ValueError("zip checkpoint has no data.pkl")
        prefix = pkl[: -len("data.pkl")]
        refs = _run_pickle(io.BytesIO(archive.read(pkl)), _storage_from_pid)
        if not isinstance(refs, dict):
            raise ValueError("checkpoint does not hold a state dict")
        keys = {r.storage.key for r in refs.values() if isinstance(r, _TensorRef)}
        buffers = {k: archive.read(f"{prefix}data/{k}") for k in keys}
    return _materialize(refs, buffers)


def _read_legacy(path: Path) -> dict[str, torch.Tensor]:
    storages: dict[str, _StorageRef] = {}

    def persistent(pid: tuple) -> _StorageRef:
        ref = _storage_from_pid(pid)
        storages[ref.key] = ref
        return ref

    with path.open("rb") as stream:
        if _run_pickle(stream, persistent) != _LEGACY_MAGIC:
            raise ValueError("not a torch checkpoint (bad magic number)")
        _run_pickle(stream, persistent)  # protocol version
        _run_pickle(stream, persistent)  # sys info
        refs = _run_pickle(stream, persistent)
        order = _run_pickle(stream, persistent)
        buffers: dict[str, bytes] = {}
        for key in order:
            count = struct.unpack("<q", stream.read(8))[0]
            nbytes = count * np.dtype(storages[key].dtype).itemsize
            data = stream.read(nbytes)
            if len(data) != nbytes:
                raise ValueError("checkpoint is truncated")
            buffers[key] = data
    if not isinstance(refs, dict):
        raise ValueError("checkpoint does not hold a state dict")
    return _materialize(refs, buffers)


def read_torch_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``torch.save``-d state dict at ``path``, by static parsing only."""
    if zipfile.is_zipfile(path):
        return _read_zip(path)
    return _read_legacy(path)
