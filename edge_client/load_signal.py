"""How busy the stylization service is, shared with the training process through a file.

The service (one writer) keeps the number of requests waiting or running in an 8-byte
memory-mapped file; the ClientApp (a reader in another process) backs off training while
it is non-zero, and trains at a lower CPU priority, so phones are served first.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import threading
import time
from pathlib import Path

_FORMAT = "<q"


class LoadSignal:
    """Counter of in-flight requests in ``path`` (created if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists() or self.path.stat().st_size != 8:
            self.path.write_bytes(struct.pack(_FORMAT, 0))
        self._file = self.path.open("r+b")
        self._map = mmap.mmap(self._file.fileno(), 8)
        self._lock = threading.Lock()

    def add(self, delta: int) -> int:
        """Change the count by ``delta`` (writer side); returns the new count."""
        with self._lock:
            value = max(0, self.value() + delta)
            self._map[:8] = struct.pack(_FORMAT, value)
            return value

    def reset(self) -> None:
        with self._lock:
            self._map[:8] = struct.pack(_FORMAT, 0)

    def value(self) -> int:
        return struct.unpack(_FORMAT, self._map[:8])[0]

    def wait_until_idle(self, max_wait_s: float = 5.0, quiet_s: float = 0.5, poll_s: float = 0.02) -> float:
        """Block until no request has been in flight for ``quiet_s`` (at most ``max_wait_s`` in all, so
        training still advances under constant load); returns seconds waited."""
        start = time.monotonic()
        quiet_since = start if self.value() == 0 else None
        while time.monotonic() - start < max_wait_s:
            now = time.monotonic()
            if self.value() > 0:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= quiet_s:
                break
            time.sleep(poll_s)
        return time.monotonic() - start

    def close(self) -> None:
        self._map.close()
        self._file.close()


def lower_priority(niceness: int = 10) -> str:
    """Make this (training) process yield the CPU to the service.

    Linux SCHED_IDLE first (the process runs only when the service leaves a core idle), else
    a higher nice value. Returns which one took effect.
    """
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return "SCHED_IDLE"
        except OSError:
            pass
    with contextlib.suppress(OSError):
        os.nice(niceness)
        return f"nice +{niceness}"
    return "unchanged"
