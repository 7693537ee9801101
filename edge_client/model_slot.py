"""The edge's current model: a checkpoint file the service serves and hot-swaps.

``data_dir/model/current.safetensors`` (+ .json) is written atomically by whoever has a
newer global model (the ClientApp after an evaluate message, or a restore from the
cloud). ``ModelSlot`` reloads it when its hash changes; a request holds the model object it
started with, so a swap never disturbs a request in flight. Each file is atomic but the pair
is not, so every writer first copies the verified current model to ``previous.safetensors``
(``keep_previous``); an edge whose current pair was cut by a crash starts from that copy
(``recover_previous``), one log line saying so.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from stylizer.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    metadata_path,
    read_metadata,
    save_checkpoint,
    write_checkpoint_bytes,
)
from stylizer.factory import model_from_checkpoint
from stylizer.inference import Stylizer

log = logging.getLogger(__name__)


def slot_path(data_dir: Path) -> Path:
    """The current-model checkpoint of an edge."""
    return Path(data_dir) / "model" / "current.safetensors"


def previous_path(slot: Path) -> Path:
    """The copy of the last verified model kept beside the slot."""
    return Path(slot).with_name("previous.safetensors")


def _copy_verified(source: Path, target: Path) -> Checkpoint | None:
    """Copy the checkpoint pair at ``source`` to ``target`` if it verifies (read once, written
    atomically file by file); None, and nothing written, if it does not."""
    try:
        return write_checkpoint_bytes(target, source.read_bytes(), read_metadata(source))
    except (CheckpointError, OSError):
        return None


def keep_previous(slot: Path) -> None:
    """Before a write to ``slot``: copy its model, if it verifies, to ``previous_path``."""
    kept = _copy_verified(Path(slot), previous_path(slot))
    if kept is not None:  # else nothing sound to keep: the previous copy stays what it was
        log.debug("kept round %s as %s", kept.metadata.get("round"), previous_path(slot))


def install_model(slot: Path, state: dict, metadata: dict) -> str:
    """Hot swap: keep the current model as the previous one, then write ``state`` (+ metadata) to the
    slot, where the service picks it up; returns its sha256."""
    keep_previous(slot)
    return save_checkpoint(Path(slot), state, metadata)


def recover_previous(slot: Path, reason: str) -> bool:
    """Put the verified previous model back into ``slot``; False if there is none."""
    restored = _copy_verified(previous_path(slot), Path(slot))
    if restored is None:
        return False
    log.warning("model slot %s was unusable (%s); serving the previous model (round %s) until a newer one arrives",
                slot, reason, restored.metadata.get("round"))
    return True


def pair_signature(path: Path) -> tuple[tuple[int, int, int], ...] | None:
    """Identity of the checkpoint pair on disk now: (inode, mtime ns, size) of the metadata and
    tensor files; every atomic write changes it. None if either file is missing."""
    try:
        stats = [metadata_path(path).stat(), Path(path).stat()]
    except OSError:
        return None
    return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)


def _recorded(path: Path, key: str) -> object:
    try:
        metadata = json.loads(metadata_path(path).read_text())
    except (OSError, ValueError):
        return None
    return metadata.get(key) if isinstance(metadata, dict) else None


def recorded_sha256(path: Path) -> str | None:
    """The hash the slot's metadata claims (cheap: no tensor read), or None."""
    value = _recorded(path, "sha256")
    return value if isinstance(value, str) else None


def recorded_round(path: Path) -> int | None:
    """The global round the slot's metadata claims (cheap: no tensor read), or None."""
    value = _recorded(path, "round")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class ModelSlot:
    """Holds the Stylizer for the newest verified model in the slot file."""

    def __init__(self, path: Path, *, device: str | None = None, precision: str = "auto",
                 vgg_weights: Path | None = None) -> None:
        self.path = Path(path)
        self.device = device
        self.precision = precision
        self.vgg_weights = vgg_weights
        self._lock = threading.Lock()
        self._stylizer: Stylizer | None = None
        self.sha256: str | None = None
        self.round: int | None = None
        self.swaps = 0
        self._rejected: tuple[tuple[int, int, int], ...] | None = None  # the pair that failed to load

    def load(self) -> Stylizer:
        """(Re)load the slot file now; CheckpointError if it is missing or fails verification."""
        checkpoint = load_checkpoint(self.path)
        model = model_from_checkpoint(checkpoint, vgg_weights=self.vgg_weights)
        stylizer = Stylizer(model, device=self.device, precision=self.precision)
        with self._lock:
            previous = self._stylizer
            self._stylizer = stylizer
            self.sha256 = checkpoint.sha256
            self.round = checkpoint.metadata.get("round")
            self.swaps += previous is not None
        return stylizer

    def current(self) -> Stylizer:
        """The stylizer to use for one request (checks the file for a newer model first)."""
        return self.current_with_hash()[0]

    def current_with_hash(self) -> tuple[Stylizer, str]:
        """The stylizer for one request and the sha256 of the model it holds, read together."""
        claimed = recorded_sha256(self.path)
        if claimed is not None and claimed != self.sha256:
            self._try_swap()
        elif claimed is not None:
            self._note_new_round()
        with self._lock:
            if self._stylizer is None:
                raise CheckpointError(f"no model loaded from {self.path}")
            return self._stylizer, self.sha256 or ""

    def _note_new_round(self) -> None:
        """A round installed with the weights already served (its hash unchanged): serve it under its
        round number and say so, as for any other round."""
        claimed_round = recorded_round(self.path)
        if claimed_round is None or claimed_round == self.round:
            return
        with self._lock:
            if self._stylizer is None or claimed_round == self.round:
                return
            self.round = claimed_round
        log.info("model slot: now serving round %s (%s…, the same weights as the round before)", claimed_round,
                 (self.sha256 or "")[:12])

    def _try_swap(self, attempts: int = 3) -> None:
        """Load the slot's newer model. A load that fails while a writer replaces the pair (its
        signature changed during the read) is retried; one that fails on an unchanged pair is
        logged once and that pair, not its hash, is skipped until either file is written again."""
        for _ in range(attempts):
            before = pair_signature(self.path)
            if before is None or before == self._rejected:
                return
            try:
                self.load()
            except (CheckpointError, OSError) as exc:
                if pair_signature(self.path) != before:
                    continue  # read during a write: the pair moved under us, so try the new one
                self._rejected = before
                log.warning("model slot: new model is unusable (%s); still serving the old one", exc)
                return
            log.info("model slot: now serving round %s (%s…)", self.round, (self.sha256 or "")[:12])
            return
