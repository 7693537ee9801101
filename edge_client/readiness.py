"""When an edge is ready to sync (the paper's "after training on N images, when idle"): it has
at least ``images-per-round`` training frames (not held out) that phones left since its last
sync. ``DATA/model/synced.json`` records when the last sync's training began; frames kept
after that count for the next one. A train reply only proposes the new mark
(``sync_pending.json``); the evaluate message, which the cloud sends only after it aggregated
the round, commits it, so a round the cloud did not count leaves the frames new.
The cloud asks with a Flower query message.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from edge_client.frame_store import FrameStore, is_held_out
from stylizer.atomic_io import atomic_write_bytes


def marker_path(data_dir: Path) -> Path:
    return Path(data_dir) / "model" / "synced.json"


def last_sync(data_dir: Path) -> float:
    """When the last sync's training began (epoch seconds); 0 before the first."""
    try:
        return float(json.loads(marker_path(data_dir).read_text())["training_began"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def pending_path(data_dir: Path) -> Path:
    return Path(data_dir) / "model" / "sync_pending.json"


def propose_sync(data_dir: Path, training_began: float, round_number: int) -> None:
    """A train reply is ready: once the cloud counts the round, frames kept before ``training_began``
    are no longer new."""
    record = {"training_began": training_began, "round": round_number, "written": time.time()}
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
    """New training frames since the last sync, and how many a sync needs."""

    new_images: int
    needed: int
    stored_styles: int

    @property
    def ready(self) -> bool:
        return self.new_images >= self.needed and self.stored_styles > 0

    def reason(self, name: str) -> str:
        """One line: why this edge is, or is not, ready."""
        if self.stored_styles == 0:
            return f"{name} has no style stored yet ({self.new_images} new images)"
        return f"{name} has {self.new_images} of {self.needed} new images"


def readiness(store: FrameStore, data_dir: Path, needed: int) -> Readiness:
    """This edge's readiness, read from its (read-only) store."""
    fresh = [f for f in store.frames_after(last_sync(data_dir)) if not is_held_out(f)]
    return Readiness(len(fresh), needed, len(store.styles()))
