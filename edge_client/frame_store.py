"""Crash-safe store of the key frames (and styles) phones allowed the edge to keep.

Layout under ``root``: ``index.sqlite3`` (WAL mode), ``frames/ab/<sha256>.<ext>`` and
``styles/ab/<sha256>.<ext>`` (the bytes as received, PNG or JPEG), ``quarantine/`` (files and
index copies found damaged: moved aside, never deleted). The files are content-addressed, so
the index can always be rebuilt from them. Invariants, re-established by the writer on every
open (``reconcile``) and logged in one line whenever it had to act:

- every indexed row has a complete file whose sha256 is its name (a file written atomically
  *before* its row is committed; a missing file drops its row, a damaged one is quarantined);
- every complete, hash-true, decodable file is indexed (a crash between the file and its row,
  or a missing, empty or corrupt index, re-indexes it: a missing index never means "delete");
- frames and styles together stay under the quota; the oldest frames go first.

One writer process (the service) and any number of read-only readers (the ClientApp) may use
it at once; only the writer creates the index and repairs it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stylizer.atomic_io import atomic_write_bytes, file_sha256, fsync_directory, is_temp_file, move_aside
from stylizer.crash_points import crash_point
from stylizer.images import ImageError, decode_image_bytes

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (id INTEGER PRIMARY KEY, sha256 TEXT UNIQUE NOT NULL, path TEXT NOT NULL,
    bytes INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS styles (id INTEGER PRIMARY KEY, sha256 TEXT UNIQUE NOT NULL, path TEXT NOT NULL,
    bytes INTEGER NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL, created REAL NOT NULL);
"""
DEFAULT_QUOTA = 2 << 30
INDEX = "index.sqlite3"
QUARANTINE = "quarantine"
TABLES = ("frames", "styles")


def image_suffix(data: bytes) -> str:
    """'.png' or '.jpg' from the magic bytes; ValueError for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if data.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    raise ValueError("image bytes are neither PNG nor JPEG")


@dataclass(frozen=True)
class StoredImage:
    """An indexed image: row id, content hash, file path, size on disk, when it was kept (epoch s;
    0 where the caller did not read it)."""

    id: int
    sha256: str
    path: Path
    bytes: int
    created: float = 0.0


@dataclass
class Reconciled:
    """What ``FrameStore.reconcile`` had to do; all zero for a healthy store."""

    temp_removed: int = 0
    reindexed: int = 0
    missing_dropped: int = 0
    quarantined: list[str] = field(default_factory=list)
    index_rebuilt: str = ""  # why the index was rebuilt from the files, if it was
    left_unindexed: int = 0  # sound files the index could not take now (disk full); kept for the next open
    why_unindexed: str = ""

    def changed(self) -> bool:
        return bool(self.reindexed or self.missing_dropped or self.quarantined or self.index_rebuilt
                    or self.left_unindexed)

    def line(self, root: Path) -> str:
        """One line for the operator's log."""
        parts = [f"index rebuilt from the files ({self.index_rebuilt})"] if self.index_rebuilt else []
        if self.reindexed:
            parts.append(f"re-indexed {self.reindexed} unindexed file(s)")
        if self.missing_dropped:
            parts.append(f"dropped {self.missing_dropped} row(s) whose file is missing")
        if self.quarantined:
            parts.append(f"quarantined {len(self.quarantined)} damaged file(s) in {root / QUARANTINE}: "
                         + ", ".join(self.quarantined[:3]) + (" …" if len(self.quarantined) > 3 else ""))
        if self.left_unindexed:
            parts.append(f"left {self.left_unindexed} sound file(s) unindexed for now ({self.why_unindexed})")
        return f"frame store {root}: " + "; ".join(parts)


def read_verified(path: Path, digest: str) -> bytes:
    """A stored file's bytes, read once; ImageError if they do not hash to ``digest`` (its name)."""
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != digest:
        raise ImageError(f"{path} does not match its sha256")
    return data


class FrameStore:
    """See module docstring. Thread-safe within a process."""

    def __init__(self, root: Path, quota_bytes: int = DEFAULT_QUOTA, *, readonly: bool = False) -> None:
        self.root = Path(root)
        self.quota_bytes = quota_bytes
        self._lock = threading.Lock()
        self.readonly = readonly
        index = self.root / INDEX
        if readonly:
            # a reader (the ClientApp) never creates, migrates or repairs: that would race the writer
            if index.exists() and index.stat().st_size > 0:
                try:
                    self._db = sqlite3.connect(f"{index.resolve().as_uri()}?mode=ro", uri=True,
                                               check_same_thread=False, timeout=30, isolation_level=None)
                    self._db.execute("SELECT COUNT(*) FROM frames").fetchone()
                    return
                except sqlite3.DatabaseError as exc:
                    log.warning("frame store %s: cannot read %s (%s); the edge service repairs it when it "
                                "restarts", self.root, index, exc)
            self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            self._db.executescript(SCHEMA)  # nothing readable yet: an empty view
            return
        self.root.mkdir(parents=True, exist_ok=True)
        rebuilt = self._open_index(index)
        self.last_reconcile = self.reconcile(rebuilt)
        if self.last_reconcile.changed():
            log.warning("%s", self.last_reconcile.line(self.root))

    def _open_index(self, index: Path) -> str:
        """Open (or create) the writable index; a damaged one is quarantined. Returns why the index
        must be rebuilt from the files ("" if it was sound)."""
        had_files = any((self.root / t).is_dir() and any((self.root / t).rglob("*")) for t in TABLES)
        if not index.exists():
            reason = "index missing" if had_files else ""
        elif index.stat().st_size == 0:
            reason = "index empty" if had_files else ""
        else:
            reason = ""
        try:
            self._connect(index)
            if self._db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("integrity check failed")
        except sqlite3.DatabaseError as exc:
            self._db.close()
            moved = self._quarantine_index(index)
            self._connect(index)
            reason = f"index {index.name} unreadable ({exc}); moved to {moved}"
        return reason

    def _connect(self, index: Path) -> None:
        self._db = sqlite3.connect(index, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    def _quarantine_index(self, index: Path) -> Path:
        target = move_aside(index, self.root / QUARANTINE)
        for suffix in ("-wal", "-shm"):  # its journal files follow it under its unique name
            source = Path(f"{index}{suffix}")
            if source.exists():
                os.link(source, f"{target}{suffix}")
                source.unlink()
        fsync_directory(self.root)
        return target

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _quarantine(self, path: Path, report: Reconciled) -> None:
        move_aside(path, (self.root / QUARANTINE / path.relative_to(self.root)).parent)
        report.quarantined.append(str(path.relative_to(self.root)))

    def reconcile(self, index_rebuilt: str = "") -> Reconciled:
        """Re-establish the invariants of the module docstring: check every row's file (exists, hash),
        index every sound unindexed file, quarantine damaged ones, delete unfinished temp files."""
        report = Reconciled(index_rebuilt=index_rebuilt)
        with self._lock:
            for table in TABLES:
                rows = self._db.execute(f"SELECT id, sha256, path FROM {table}").fetchall()
                for row_id, digest, relative in rows:
                    path = self.root / relative
                    if not path.is_file():
                        self._db.execute(f"DELETE FROM {table} WHERE id = ?", (row_id,))
                        report.missing_dropped += 1
                    elif file_sha256(path) != digest:
                        self._db.execute(f"DELETE FROM {table} WHERE id = ?", (row_id,))
                        self._quarantine(path, report)
                indexed = {row[0] for row in self._db.execute(f"SELECT path FROM {table}")}
                base = self.root / table
                if not base.is_dir():
                    continue
                for path in sorted(base.rglob("*")):
                    if not path.is_file() or str(path.relative_to(self.root)) in indexed:
                        continue
                    if is_temp_file(path):
                        path.unlink(missing_ok=True)
                        report.temp_removed += 1
                        continue
                    try:
                        sound = self._reindex(table, path)
                    except sqlite3.OperationalError as exc:  # disk full: keep the file, index it next time
                        report.left_unindexed += 1
                        report.why_unindexed = str(exc)
                        continue
                    if sound:
                        report.reindexed += 1
                    else:
                        self._quarantine(path, report)
        self._evict()
        return report

    def _reindex(self, table: str, path: Path) -> bool:
        """Index an unindexed file if it is sound (name = its sha256, decodable); False if it is not."""
        digest, suffix = path.stem, path.suffix
        if suffix not in (".png", ".jpg") or len(digest) != 64:
            return False
        try:
            data = read_verified(path, digest)
            image = decode_image_bytes(data, "stored image")
        except ImageError:
            return False
        self._db.execute(f"INSERT OR IGNORE INTO {table} (sha256, path, bytes, width, height, created) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (digest, str(path.relative_to(self.root)), len(data),
                                                       image.shape[1], image.shape[0], path.stat().st_mtime))
        return True

    def _add(self, table: str, data: bytes) -> StoredImage:
        if self.readonly:
            raise PermissionError("this frame store was opened read-only")
        suffix = image_suffix(data)
        digest = hashlib.sha256(data).hexdigest()
        relative = Path(table) / digest[:2] / f"{digest}{suffix}"
        path = self.root / relative
        with self._lock:
            row = self._db.execute(f"SELECT id, path, bytes FROM {table} WHERE sha256 = ?",
                                   (digest,)).fetchone()
        if row is not None:
            stored = self.root / row[1]
            if stored.is_file() and stored.stat().st_size == row[2] and file_sha256(stored) == digest:
                return StoredImage(row[0], digest, stored, row[2])
            log.warning("frame store %s: %s was indexed but its file is %s; writing it again", self.root, row[1],
                        "damaged" if stored.is_file() else "missing")
            atomic_write_bytes(stored, data)  # the same bytes, by their hash
            return StoredImage(row[0], digest, stored, row[2])
        image = decode_image_bytes(data, "stored image")  # refuse what we could never train on
        atomic_write_bytes(path, data)
        crash_point("frame-store", table)  # the file is in place, its row not yet committed
        with self._lock:
            try:
                cursor = self._db.execute(
                    f"INSERT OR IGNORE INTO {table} (sha256, path, bytes, width, height, created) "
                    "VALUES (?, ?, ?, ?, ?, ?)", (digest, str(relative), len(data), image.shape[1], image.shape[0],
                                                  time.time()))
            except sqlite3.Error:  # e.g. disk full: not kept, so no file either
                path.unlink(missing_ok=True)
                raise
            image_id = cursor.lastrowid
        self._evict()
        return StoredImage(int(image_id), digest, path, len(data))

    def add_frame(self, data: bytes) -> StoredImage:
        """Keep an encoded key frame; returns once it is durable (file fsynced, row committed).
        OSError (disk full, …) leaves the store as it was."""
        return self._add("frames", data)

    def add_style(self, data: bytes) -> StoredImage:
        """Keep an encoded style image (training pairs frames with the styles phones used); it counts
        against the quota like a frame."""
        return self._add("styles", data)

    def _evict(self) -> None:
        """Oldest frames first, then oldest styles, until frames and styles fit the quota."""
        with self._lock:
            total = self._total_locked()
            for table in TABLES:
                while total > self.quota_bytes:
                    row = self._db.execute(f"SELECT id, path, bytes FROM {table} ORDER BY created, id LIMIT 1"
                                           ).fetchone()
                    if row is None:
                        break
                    self._db.execute(f"DELETE FROM {table} WHERE id = ?", (row[0],))
                    (self.root / row[1]).unlink(missing_ok=True)
                    total -= row[2]

    def _total_locked(self) -> int:
        return sum(int(self._db.execute(f"SELECT COALESCE(SUM(bytes), 0) FROM {t}").fetchone()[0]) for t in TABLES)

    def _list(self, table: str, created_after: float | None = None) -> list[StoredImage]:
        where, params = ("WHERE created > ?", (created_after,)) if created_after is not None else ("", ())
        with self._lock:
            rows = self._db.execute(f"SELECT id, sha256, path, bytes, created FROM {table} {where} ORDER BY id",
                                    params).fetchall()
        return [StoredImage(r[0], r[1], self.root / r[2], r[3], float(r[4])) for r in rows]

    def frames(self) -> list[StoredImage]:
        """Every indexed frame, oldest first."""
        return self._list("frames")

    def frames_after(self, since: float) -> list[StoredImage]:
        """Frames kept after ``since`` (seconds since the epoch), oldest first."""
        return self._list("frames", created_after=since)

    def styles(self) -> list[StoredImage]:
        """Every indexed style image."""
        return self._list("styles")

    def total_bytes(self) -> int:
        """Bytes of every kept frame and style (what the quota bounds)."""
        with self._lock:
            return self._total_locked()


def is_held_out(image: StoredImage, every: int = 8) -> bool:
    """Deterministic evaluation split by content hash: about 1 in ``every`` frames."""
    return int(image.sha256[:8], 16) % every == 0


class DecodedCache:
    """Decoded stored images, most recently used first, up to ``max_bytes`` of pixels, keyed by the
    file's path, content hash and (inode, mtime, size): a file written again is read and verified
    again. Training reads the same store every round; decoding and hashing it each time was most of
    a simulated round's cost that was not training."""

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self.max_bytes = max_bytes
        self._images: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def key(image: StoredImage) -> tuple | None:
        try:
            stat = image.path.stat()
        except OSError:
            return None
        return str(image.path), image.sha256, stat.st_ino, stat.st_mtime_ns, stat.st_size

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            found = self._images.get(key)
            if found is not None:
                self._images.move_to_end(key)
            return found

    def put(self, key: tuple, pixels: np.ndarray) -> None:
        if pixels.nbytes > self.max_bytes:
            return
        pixels.setflags(write=False)  # shared by every reader: nobody may change it in place
        with self._lock:
            if key in self._images:
                return
            self._images[key] = pixels
            self._bytes += pixels.nbytes
            while self._bytes > self.max_bytes:
                _, dropped = self._images.popitem(last=False)
                self._bytes -= dropped.nbytes


DECODED = DecodedCache()


def load_images(images: list[StoredImage]) -> list[np.ndarray]:
    """Decode stored images (read-only arrays, shared through ``DECODED``); one that vanished, fails
    its hash or fails to decode is skipped and logged (the writer drops or quarantines it when it
    next opens the store)."""
    out = []
    for image in images:
        key = DECODED.key(image)
        cached = DECODED.get(key) if key is not None else None
        if cached is not None:
            out.append(cached)
            continue
        try:
            pixels = decode_image_bytes(read_verified(image.path, image.sha256), f"stored image {image.path}")
        except (ImageError, OSError) as exc:
            log.warning("skipping stored image %s: %s", image.path.name, exc)
            continue
        if key is not None:
            DECODED.put(key, pixels)
        out.append(pixels)
    return out
