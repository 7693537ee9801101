"""The federation as the ServerApp last saw it, in ``CLOUD/status.json`` for ``fedvst status``.

The ServerApp runs in a process of Flower's; it rewrites this file (atomically) at every
readiness poll and every round, and the registry in ``fedvst cloud serve`` reads it to answer
GetStatus. Keys: ``updated`` (unix s), ``state`` (waiting, training, finished), ``round`` (the
round being waited for or trained), ``min_nodes``, ``line`` (one line for a person), ``edges``
(per live edge: node, name, ready, reason, new_images, trained, serving_round, last_seen; see
``readiness.EdgeState``) and ``pid`` (the process that wrote it). ``fedvst cloud serve`` writes
``starting`` when it starts, so a report left by a process that died is never read as current.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cloud_server.readiness import EdgeState
from stylizer.atomic_io import atomic_write_bytes

log = logging.getLogger(__name__)
STATUS_FILE = "status.json"
MAX_STATUS_BYTES = 1 << 20


def status_path(cloud_root: Path) -> Path:
    """Where the cloud in ``cloud_root`` keeps its status."""
    return Path(cloud_root) / STATUS_FILE


def write_status(path: Path, state: str, round_number: int, min_nodes: int, line: str,
                 edges: Sequence[EdgeState] = ()) -> None:
    """Replace the status; a failed write is logged, never raised (the rounds matter more)."""
    record = {"updated": round(time.time(), 3), "state": state, "round": round_number, "min_nodes": min_nodes,
              "line": line, "edges": [e.as_json() for e in edges], "pid": os.getpid()}
    try:
        atomic_write_bytes(path, json.dumps(record).encode())
    except OSError as exc:
        log.warning("could not write %s: %s", path, exc)


def read_status(path: Path) -> dict[str, Any] | None:
    """The last status written, or None if there is none or it is unreadable."""
    try:
        if path.stat().st_size > MAX_STATUS_BYTES:
            return None
        record = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None
