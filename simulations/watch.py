"""What a running simulation shows and measures from outside its rounds: a progress display fed
by the cloud's ``history.jsonl``, and the peak memory of this process and everything it started.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fedvst.processes import descendants

POLL_S = 0.5


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (0 once it has ended)."""
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss_bytes(root: int | None = None) -> int:
    """Resident memory of process ``root`` (default: this one) and all its descendants (Ray's GCS,
    raylet and workers descend from the process that started Ray)."""
    root = os.getpid() if root is None else root
    return rss_bytes(root) + sum(rss_bytes(pid) for pid in descendants(root))


class PeakMemory:
    """Samples ``tree_rss_bytes`` every ``POLL_S`` seconds while in use; ``peak_mb`` is the largest seen."""

    def __init__(self) -> None:
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-memory", daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak_bytes = max(self.peak_bytes, tree_rss_bytes())
            if self._stop.wait(POLL_S):
                return

    @property
    def peak_mb(self) -> float:
        return round(self.peak_bytes / 2**20, 1)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def history_rounds(path: Path) -> list[dict]:
    """The rounds the cloud has logged so far (a line being written is skipped)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


class RoundProgress:
    """A rich progress bar over every round of every run: N, seed, round, held-out loss, time left."""

    def __init__(self, total_rounds: int, enabled: bool) -> None:
        self.enabled = enabled
        self.total_rounds = total_rounds
        self._progress = None
        self._task = None
        self._done_before = 0  # rounds of the runs already finished

    def __enter__(self) -> RoundProgress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("rounds, left"), TimeRemainingColumn(), transient=False)
            self._progress.start()
            self._task = self._progress.add_task("starting", total=self.total_rounds)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    @contextmanager
    def run(self, edges: int, seed: int, rounds: int, history: Path) -> Iterator[None]:
        """Follow one run's ``history`` while the block runs it."""
        stop = threading.Event()

        def follow() -> None:
            while not stop.wait(POLL_S):
                self._show(edges, seed, rounds, history)

        thread = threading.Thread(target=follow, name="round-progress", daemon=True)
        if self.enabled:
            self._show(edges, seed, rounds, history)
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread.is_alive():
                thread.join(timeout=10)
            self._show(edges, seed, rounds, history)
            self._done_before += rounds

    def _show(self, edges: int, seed: int, rounds: int, history: Path) -> None:
        if self._progress is None:
            return
        logged = [h for h in history_rounds(history) if h.get("round", 0) > 0]
        loss = next((h["metrics"]["heldout_total"] for h in reversed(logged) if "heldout_total" in h["metrics"]),
                    None)
        text = f"N={edges} seed {seed} round {len(logged)}/{rounds}"
        if loss is not None:
            text += f" loss {loss:.4f}"
        self._progress.update(self._task, description=text, completed=self._done_before + min(len(logged), rounds))
