"""Every round's global model as a verified checkpoint, with a manifest.

Files in the store folder: ``round_000007.safetensors`` + ``.json`` per round (the stylizer
checkpoint format, with round, nodes, per-node examples and losses in the metadata) and
``manifest.json`` (rounds, hashes, losses, best round). The checkpoint files are the
truth; the manifest is rebuilt from them when missing or damaged. Only the last ``keep``
rounds and the best round are kept. The best round is the one with the lowest ``heldout_total``,
the cloud's score on one fixed held-out set, whenever rounds carry one: the edges' own losses
(``eval_total``, then ``train_total``) are measured on frames that change as phones share more,
so they pick a best round only in a store that has no held-out score at all. A checkpoint that fails verification is
moved to ``quarantine/`` by the writer (``latest(quarantine=True)``), one line each, so it never
holds one of the "last K" slots; readers (the registry) only skip it.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from stylizer.atomic_io import atomic_write_bytes, move_aside
from stylizer.checkpoint import Checkpoint, CheckpointError, load_checkpoint, metadata_path, save_checkpoint

log = logging.getLogger(__name__)
_NAME = re.compile(r"^round_(\d{6})\.json$")
_QUARANTINED = re.compile(r"^round_(\d{6})\.json\.")  # + move_aside's unique suffix
MANIFEST = "manifest.json"
QUARANTINE = "quarantine"


def round_path(folder: Path, round_number: int) -> Path:
    """Tensor file of ``round_number`` in ``folder``."""
    return folder / f"round_{round_number:06d}.safetensors"


@dataclass(frozen=True)
class StoredRound:
    """A checkpoint that passed verification."""

    round: int
    path: Path
    checkpoint: Checkpoint


class CheckpointStore:
    """Round checkpoints in ``folder``; safe against a crash at any point of a write."""

    def __init__(self, folder: Path, keep: int = 5) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.keep = keep

    def rounds(self) -> list[int]:
        """Round numbers that have a metadata file (verified or not), ascending."""
        found = []
        for path in self.folder.iterdir():
            match = _NAME.match(path.name)
            if match:
                found.append(int(match.group(1)))
        return sorted(found)

    def save(self, round_number: int, state: dict[str, torch.Tensor], metadata: dict[str, Any]) -> str:
        """Checkpoint round ``round_number``; update the manifest; prune. Returns the sha256."""
        if round_number < 0:
            raise ValueError("round numbers start at 0 (the initial model)")
        digest = save_checkpoint(round_path(self.folder, round_number), state, {**metadata, "round": round_number})
        self._prune()
        self.write_manifest()
        return digest

    def update_metrics(self, round_number: int, metrics: dict[str, float]) -> None:
        """Add ``metrics`` to a stored round's metadata (JSON only; tensors and hash untouched)."""
        meta_file = metadata_path(round_path(self.folder, round_number))
        if not meta_file.is_file():
            return
        meta = json.loads(meta_file.read_text())
        meta["metrics"] = {**(meta.get("metrics") or {}), **metrics}
        atomic_write_bytes(meta_file, json.dumps(meta, indent=1, sort_keys=True).encode())
        self._prune()
        self.write_manifest()

    def load(self, round_number: int) -> StoredRound:
        """Verified checkpoint of one round (CheckpointError if missing or corrupt)."""
        path = round_path(self.folder, round_number)
        return StoredRound(round_number, path, load_checkpoint(path))

    def latest(self, *, quarantine: bool = False) -> StoredRound | None:
        """Newest round that verifies; damaged newer ones are skipped with a warning, and moved to
        ``quarantine/`` when ``quarantine`` (only the writer may: a reader would race its saves)."""
        for round_number in reversed(self.rounds()):
            try:
                return self.load(round_number)
            except (CheckpointError, OSError) as exc:
                if quarantine:
                    moved = self.quarantine(round_number)
                    log.warning("checkpoint of round %d is unusable (%s); moved to %s", round_number, exc, moved)
                else:
                    log.warning("checkpoint of round %d is unusable (%s); falling back to an older one",
                                round_number, exc)
        return None

    def quarantine(self, round_number: int) -> Path:
        """Move a round's files (metadata first: it is the commit record) to ``quarantine/``, each under
        a name of its own (``move_aside``): a later damaged round of the same number never replaces it."""
        target = self.folder / QUARANTINE
        tensor = round_path(self.folder, round_number)
        for path in (metadata_path(tensor), tensor):
            if path.exists():
                move_aside(path, target)
        self.write_manifest()
        return target

    def quarantined_rounds(self) -> list[int]:
        """Round numbers whose files were moved to ``quarantine/``."""
        folder = self.folder / QUARANTINE
        if not folder.is_dir():
            return []
        return sorted({int(m.group(1)) for p in folder.iterdir() if (m := _QUARANTINED.match(p.name))})

    def _metrics(self, round_number: int) -> dict[str, Any]:
        try:
            meta = json.loads(metadata_path(round_path(self.folder, round_number)).read_text())
        except (OSError, ValueError):
            return {}
        metrics = meta.get("metrics") if isinstance(meta, dict) else None
        return metrics if isinstance(metrics, dict) else {}

    def best_round(self) -> int | None:
        """Round with the lowest held-out score (``heldout_total``) among those that have one; in a
        store where none has, the lowest edge evaluation, else training loss (see module docstring)."""
        metrics = {r: self._metrics(r) for r in self.rounds()}
        for key in ("heldout_total", "eval_total", "train_total"):
            scored = [(float(m[key]), r) for r, m in metrics.items()
                      if isinstance(m.get(key), (int, float)) and m[key] == m[key]]
            if scored:
                return min(scored)[1]
        return None

    def _prune(self) -> None:
        rounds = self.rounds()
        keep = set(rounds[-self.keep:])
        best = self.best_round()
        if best is not None:
            keep.add(best)
        for round_number in rounds:
            if round_number not in keep:
                tensor = round_path(self.folder, round_number)
                metadata_path(tensor).unlink(missing_ok=True)  # metadata first: the commit record
                tensor.unlink(missing_ok=True)

    def write_manifest(self) -> dict[str, Any]:
        """Rewrite manifest.json from the checkpoint files; returns it."""
        entries = []
        for round_number in self.rounds():
            try:
                meta = json.loads(metadata_path(round_path(self.folder, round_number)).read_text())
            except (OSError, ValueError):
                continue
            entries.append({"round": round_number, "sha256": meta.get("sha256"), "metrics": meta.get("metrics"),
                            "nodes": meta.get("nodes")})
        manifest = {"rounds": entries, "latest": entries[-1]["round"] if entries else None,
                    "best": self.best_round()}
        atomic_write_bytes(self.folder / MANIFEST, json.dumps(manifest, indent=1).encode())
        return manifest
