"""``CLOUD/history.jsonl``: one JSON object per counted round (round 0 is the initial model).

Keys (``strategy.RoundLog``): ``round``, ``nodes`` (Flower node ids that took part), ``names``
(node id → the edge's name), ``examples`` (node id → images it trained on), ``train_seconds``
(node id → seconds its reply spent in training steps), ``phase_seconds`` (train: messages out to
replies in; checkpoint; evaluate: the edges' hot swap and own check; heldout: the cloud's score),
``dropped``, ``metrics``
(``heldout_total``/``heldout_content``/``heldout_style``: the cloud's score on its fixed held-out
set; ``eval_*``: the edges' own held-out frames; ``train_*``), ``counted``, ``checkpoint`` (file
name), ``finished_unix`` and ``wall_seconds``. Lines are appended and fsynced; readers skip a line
cut by a crash.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

HISTORY_FILE = "history.jsonl"
MAX_HISTORY_BYTES = 64 << 20  # a reader looks at the last this many bytes


def history_path(cloud_root: Path) -> Path:
    """Where the cloud in ``cloud_root`` records its rounds."""
    return Path(cloud_root) / HISTORY_FILE


def append_round(path: Path, record: dict[str, Any]) -> None:
    """Append one round's record as a line, fsynced."""
    with Path(path).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_history(path: Path) -> list[dict[str, Any]]:
    """The rounds recorded in ``path``, oldest first, the last record of each round number winning
    (a round re-run after a crash is recorded again); [] when there is no file."""
    try:
        with Path(path).open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - MAX_HISTORY_BYTES))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return []
    rounds: dict[int, dict[str, Any]] = {}
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash, or the tail of one cut by the size window
        if isinstance(record, dict) and isinstance(record.get("round"), int):
            rounds[record["round"]] = record
    return [rounds[r] for r in sorted(rounds)]


def heldout_score(metrics: dict[str, Any] | None) -> float | None:
    """A round's score on the cloud's held-out set (``heldout_total`` of its metrics), or None."""
    value = (metrics or {}).get("heldout_total")
    return float(value) if isinstance(value, (int, float)) else None
