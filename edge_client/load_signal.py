"""How busy the stylization service is, shared with the training process through a file.

The service (one writer) keeps the number of requests waiting or running, and when that
last fell to zero, in a 16-byte memory-mapped file; the ClientApp (a reader in another
process) backs off training until the service has been quiet for a moment, and trains at a
lower CPU priority, so phones are served first.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import threading
import time
from pathlib import Path

_FORMAT = "<qq"  # requests in flight; time.monotonic_ns() when that last fell to 0 (0: never busy)
_SIZE = struct.calcsize(_FORMAT)


class LoadSignal:
    """Counter of in-flight requests in ``path`` (created if missing), and since when it has been 0.

    The time is ``CLOCK_MONOTONIC``, which all processes on one Linux host share.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists() or self.path.stat().st_size != _SIZE:
            self.path.write_bytes(struct.pack(_FORMAT, 0, 0))
        self._file = self.path.open("r+b")
        self._map = mmap.mmap(self._file.fileno(), _SIZE)
        self._lock = threading.Lock()

    def add(self, delta: int) -> int:
        """Change the count by ``delta`` (writer side); returns the new count."""
        with self._lock:
            count, idle_since = self._read()
            value = max(0, count + delta)
            if value == 0 and count > 0:
                idle_since = time.monotonic_ns()
            self._map[:_SIZE] = struct.pack(_FORMAT, value, idle_since)
            return value

    def reset(self) -> None:
        with self._lock:
            self._map[:_SIZE] = struct.pack(_FORMAT, 0, 0)

    def _read(self) -> tuple[int, int]:
        return struct.unpack(_FORMAT, self._map[:_SIZE])

    def value(self) -> int:
        return self._read()[0]

    def idle_seconds(self) -> float:
        """Seconds since the last request finished (inf if none ever ran; 0 while one is in flight)."""
        count, idle_since = self._read()
        if count > 0:
            return 0.0
        now = time.monotonic_ns()
        if idle_since == 0 or idle_since > now:  # never busy, or a stamp from before a reboot
            return float("inf")
        return (now - idle_since) / 1e9

    def wait_until_idle(self, max_wait_s: float = 5.0, quiet_s: float = 0.5, poll_s: float = 0.02) -> float:
        """Block until no request has been in flight for ``quiet_s`` (at most ``max_wait_s`` in all, so
        training still advances under constant load); returns seconds waited. A service that has
        been quiet for ``quiet_s`` already costs no wait at all."""
        start = time.monotonic()
        while time.monotonic() - start < max_wait_s and self.idle_seconds() < quiet_s:
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
