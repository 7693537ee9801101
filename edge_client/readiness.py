"""When an edge is ready to sync (the paper's "after training on N images, when idle"): its
background trainer has trained on at least ``images-per-round`` new images since its last sync
(one per new training frame; ``local_training.py``), or, where no trainer runs, phones left at
least that many training frames (not held out) since its last sync. ``DATA/model/synced.json``
records the kept-time up to which the last sync's training counted frames (with no trainer: when
it began); frames kept after that count for the next one. A train reply only proposes the new mark
(``sync_pending.json``); the evaluate message, which the cloud sends only after it aggregated
the round, commits it, so a round the cloud did not count leaves the frames new.
The cloud asks with a Flower query message.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from edge_client.frame_store import FrameStore, StoredImage, is_held_out
from stylizer.atomic_io import atomic_write_bytes


def marker_path(data_dir: Path) -> Path:
    return Path(data_dir) / "model" / "synced.json"


def last_sync(data_dir: Path) -> float:
    """Kept-time up to which the last sync counted frames (epoch s; key ``training_began``, its name
    from before training between syncs); 0 before the first."""
    try:
        return float(json.loads(marker_path(data_dir).read_text())["training_began"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def pending_path(data_dir: Path) -> Path:
    return Path(data_dir) / "model" / "sync_pending.json"


def propose_sync(data_dir: Path, counted_until: float, round_number: int) -> None:
    """A train reply is ready: once the cloud counts the round, frames kept up to ``counted_until``
    (epoch s: the newest frame the reply's training counted, or when it began) are no longer new."""
    record = {"training_began": counted_until, "round": round_number, "written": time.time()}
    atomic_write_bytes(pending_path(data_dir), json.dumps(record).encode())


def commit_sync(data_dir: Path, round_number: int) -> bool:
    """The cloud aggregated ``round_number``: make its proposed mark the last sync. False if this edge
    proposed none for that round (it did not train in it)."""
    try:
        record = json.loads(pending_path(data_dir).read_text())
    except (OSError, ValueError):
        return False
    if record.get("round") != round_number:
        return False
    atomic_write_bytes(marker_path(data_dir), json.dumps(record).encode())
    pending_path(data_dir).unlink(missing_ok=True)
    return True


@dataclass(frozen=True)
class Readiness:
    """New training frames since the last sync, images trained on since (None: no background
    trainer), and how many a sync needs."""

    new_images: int
    needed: int
    stored_styles: int
    trained: int | None = None

    @property
    def ready(self) -> bool:
        counted = self.new_images if self.trained is None else self.trained
        return counted >= self.needed and self.stored_styles > 0

    def reason(self, name: str) -> str:
        """One line: why this edge is, or is not, ready."""
        if self.stored_styles == 0:
            return f"{name} has no style stored yet ({self.new_images} new images)"
        if self.trained is None:
            return f"{name} has {self.new_images} of {self.needed} new images"
        return f"{name} has trained on {self.trained} of {self.needed} new images ({self.new_images} kept)"


def new_training_frames(store: FrameStore, data_dir: Path) -> list[StoredImage]:
    """Training frames (not held out) kept since the last sync, oldest first."""
    return [f for f in store.frames_after(last_sync(data_dir)) if not is_held_out(f)]


def readiness(store: FrameStore, data_dir: Path, needed: int, *, trained: int | None = None) -> Readiness:
    """This edge's readiness, read from its (read-only) store; ``trained``: what its background
    trainer reports (None where none runs)."""
    return Readiness(len(new_training_frames(store, data_dir)), needed, len(store.styles()), trained)
