"""How the federation stands, read from a cloud's data folder: the one source of ``fedvst status``
(through the registry's GetStatus) and of the dashboard.

Everything here only reads: ``status.json`` (the ServerApp's last report), ``history.jsonl`` (the
counted rounds and their held-out scores) and the checkpoint store (the newest verified round).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cloud_server.history import heldout_score, history_path, read_history
from cloud_server.status import read_status, status_path
from cloud_server.store import CheckpointStore

MAX_ROUNDS_SHOWN = 200  # the newest rounds a status reply or the dashboard carries


def round_summary(record: dict[str, Any]) -> dict[str, Any]:
    """One history record, cut to what a person reads: round, the held-out scores (None if not
    scored), how far the model moved in it (``moved_max``/``moved_rms``, None for round 0 and for
    records written before they were kept), the edges by name (node id where none) with the images
    each trained on, the checkpoint and when the round was counted."""
    metrics = record.get("metrics") or {}
    names = record.get("names") or {}
    examples = record.get("examples") or {}
    return {"round": record["round"], "heldout_total": heldout_score(metrics),
            "heldout_content": metrics.get("heldout_content"), "heldout_style": metrics.get("heldout_style"),
            "moved_max": record.get("moved_max"), "moved_rms": record.get("moved_rms"),
            "edges": {names.get(node, f"node {node}"): int(images) for node, images in examples.items()},
            "checkpoint": record.get("checkpoint", ""), "finished_unix": record.get("finished_unix")}


_NEWEST: dict[Path, tuple[tuple, dict[str, Any] | None]] = {}  # folder → (its files' signature, the answer)


def _signature(folder: Path) -> tuple:
    """Names, sizes and mtimes of the checkpoint files in ``folder``: any write changes it."""
    entries = []
    for path in sorted(folder.glob("round_*")):
        try:
            stat = path.stat()
        except OSError:
            continue
        entries.append((path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(entries)


def newest_checkpoint(store: CheckpointStore) -> dict[str, Any] | None:
    """The newest round that verifies: round, name, sha256, saved_unix; None before the first.
    Verified again only when a checkpoint file changed (a dashboard asks every few seconds)."""
    signature = _signature(store.folder)
    known = _NEWEST.get(store.folder)
    if known is not None and known[0] == signature:
        return known[1]
    latest = store.latest()
    answer = None if latest is None else {"round": latest.round, "name": latest.path.name,
                                          "sha256": latest.checkpoint.sha256, "saved_unix": latest.path.stat().st_mtime}
    _NEWEST[store.folder] = (signature, answer)
    return answer


def overview(cloud_root: Path, store: CheckpointStore | None = None) -> dict[str, Any]:
    """``newest`` (see newest_checkpoint), ``federation`` (status.json, None before any report),
    ``rounds`` (round_summary of the newest MAX_ROUNDS_SHOWN counted rounds, oldest first) and
    ``best_round`` (the store's pick: lowest held-out score; None if none)."""
    folder = Path(cloud_root) / "checkpoints"
    if store is None and folder.is_dir():  # a store's constructor makes its folder: not for a reader
        store = CheckpointStore(folder)
    rounds = [round_summary(record) for record in read_history(history_path(cloud_root))][-MAX_ROUNDS_SHOWN:]
    return {"newest": newest_checkpoint(store) if store is not None else None,
            "federation": read_status(status_path(cloud_root)), "rounds": rounds,
            "best_round": store.best_round() if store is not None else None}
