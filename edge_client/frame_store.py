"""Crash-safe store of the key frames (and styles) phones allowed the edge to keep.

Layout under ``root``: ``index.sqlite3`` (WAL mode; the truth), ``frames/ab/<sha256>.<ext>``
and ``styles/ab/<sha256>.<ext>`` (the bytes as received, PNG or JPEG). A file is written
atomically *before* its index row is committed, so a ``kill -9`` at any moment leaves at
worst an unindexed file, which the next open deletes; every indexed row has a complete
file. Over the disk quota the oldest frames are evicted first. One writer process (the
service) and any number of read-only readers (the ClientApp) may use it at once; only the
writer creates the index and cleans up after a crash.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stylizer.atomic_io import atomic_write_bytes
from stylizer.images import ImageError, load_image

SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (id INTEGER PRIMARY KEY, sha256 TEXT UNIQUE NOT NULL, path TEXT NOT NULL,
    bytes INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS styles (id INTEGER PRIMARY KEY, sha256 TEXT UNIQUE NOT NULL, path TEXT NOT NULL,
    bytes INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, created REAL NOT NULL);
"""
DEFAULT_QUOTA = 2 << 30


def image_suffix(data: bytes) -> str:
    """'.png' or '.jpg' from the magic bytes; ValueError for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if data.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    raise ValueError("image bytes are neither PNG nor JPEG")


@dataclass(frozen=True)
class StoredImage:
    """An indexed image: row id, content hash, file path, size on disk."""

    id: int
    sha256: str
    path: Path
    bytes: int


class FrameStore:
    """See module docstring. Thread-safe within a process."""

    def __init__(self, root: Path, quota_bytes: int = DEFAULT_QUOTA, *, readonly: bool = False) -> None:
        self.root = Path(root)
        self.quota_bytes = quota_bytes
        self._lock = threading.Lock()
        self.readonly = readonly
        index = self.root / "index.sqlite3"
        if readonly:
            # a reader (the ClientApp) never creates, migrates or cleans: that would race the writer
            if index.exists():
                self._db = sqlite3.connect(f"{index.resolve().as_uri()}?mode=ro", uri=True,
                                           check_same_thread=False, timeout=30, isolation_level=None)
            else:
                self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
                self._db.executescript(SCHEMA)  # nothing stored yet: an empty view
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(index, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self.recover()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def recover(self) -> int:
        """Delete temp files and files that no index row points to; returns how many."""
        with self._lock:
            indexed = {row[0] for table in ("frames", "styles")
                       for row in self._db.execute(f"SELECT path FROM {table}")}
        removed = 0
        for folder in ("frames", "styles"):
            base = self.root / folder
            if not base.is_dir():
                continue
            for path in base.rglob("*"):
                if path.is_file() and str(path.relative_to(self.root)) not in indexed:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def _add(self, table: str, data: bytes) -> StoredImage:
        if self.readonly:
            raise PermissionError("this frame store was opened read-only")
        suffix = image_suffix(data)
        digest = hashlib.sha256(data).hexdigest()
        relative = Path(table) / digest[:2] / f"{digest}{suffix}"
        with self._lock:
            row = self._db.execute(f"SELECT id, path, bytes FROM {table} WHERE sha256 = ?",
                                   (digest,)).fetchone()
        if row is not None:
            return StoredImage(row[0], digest, self.root / row[1], row[2])
        path = self.root / relative
        atomic_write_bytes(path, data)
        try:
            image = load_image(path, "stored image")  # decodes: refuse what we could never train on
        except ImageError:
            path.unlink(missing_ok=True)
            raise
        with self._lock:
            cursor = self._db.execute(
                f"INSERT OR IGNORE INTO {table} (sha256, path, bytes, width, height, created) "
                "VALUES (?, ?, ?, ?, ?, ?)", (digest, str(relative), len(data), image.shape[1], image.shape[0],
                                              time.time()))
            image_id = cursor.lastrowid
        self._evict()
        return StoredImage(int(image_id), digest, path, len(data))

    def add_frame(self, data: bytes) -> StoredImage:
        """Keep an encoded key frame; returns once it is durable (file fsynced, row committed)."""
        return self._add("frames", data)

    def add_style(self, data: bytes) -> StoredImage:
        """Keep an encoded style image (training pairs frames with the styles phones used)."""
        return self._add("styles", data)

    def _evict(self) -> None:
        with self._lock:
            total = self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM frames").fetchone()[0]
            while total > self.quota_bytes:
                row = self._db.execute("SELECT id, path, bytes FROM frames ORDER BY created, id LIMIT 1").fetchone()
                if row is None:
                    break
                self._db.execute("DELETE FROM frames WHERE id = ?", (row[0],))
                (self.root / row[1]).unlink(missing_ok=True)
                total -= row[2]

    def _list(self, table: str) -> list[StoredImage]:
        with self._lock:
            rows = self._db.execute(f"SELECT id, sha256, path, bytes FROM {table} ORDER BY id").fetchall()
        return [StoredImage(r[0], r[1], self.root / r[2], r[3]) for r in rows]

    def frames(self) -> list[StoredImage]:
        """Every indexed frame, oldest first."""
        return self._list("frames")

    def styles(self) -> list[StoredImage]:
        """Every indexed style image."""
        return self._list("styles")

    def total_bytes(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(SUM(bytes), 0) FROM frames").fetchone()[0])


def is_held_out(image: StoredImage, every: int = 8) -> bool:
    """Deterministic evaluation split by content hash: about 1 in ``every`` frames."""
    return int(image.sha256[:8], 16) % every == 0


def load_images(images: list[StoredImage]) -> list[np.ndarray]:
    """Decode stored images, skipping any that vanished or fail to decode."""
    out = []
    for image in images:
        try:
            out.append(load_image(image.path, "stored image"))
        except ImageError:
            continue
    return out
