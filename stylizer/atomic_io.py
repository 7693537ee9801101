"""Crash-safe file writes: temp file in the same directory, fsync, rename, fsync the directory."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

from stylizer.crash_points import crash_point


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


TEMP_SUFFIX = ".tmp"


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def is_temp_file(path: Path) -> bool:
    """A temp file ``atomic_write_bytes`` left behind (``.<name>.<random>.tmp``): an unfinished write."""
    return path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX)


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never a mix.

    ``mode``: file permissions (default 0o666 less the umask; use 0o600 for secrets).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, mode if mode is not None else 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        crash_point("atomic-write", path.name)  # the temp file is complete, not yet renamed
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def move_aside(path: Path, folder: Path) -> Path:
    """Move ``path`` into ``folder`` under a name no other move can take, never over an existing file:
    ``<name>.<UTC time>.<first 12 hex of the file's sha256>`` (a counter is added on a collision).
    Returns the new path; both directories are fsynced."""
    path, folder = Path(path), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{path.name}.{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.{file_sha256(path)[:12]}"
    target = folder / stem
    counter = 1
    while True:
        try:
            os.link(path, target)  # fails if the name is taken: nothing is ever replaced
            break
        except FileExistsError:
            counter += 1
            target = folder / f"{stem}.{counter}"
    path.unlink()
    fsync_directory(folder)
    fsync_directory(path.parent)
    return target
