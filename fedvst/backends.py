"""Where key frames get stylized: in-process (local) or on edge servers.

A backend turns a batch of ``KeyFrameJob`` into stylized frames of each job's output
size. ``Dispatcher`` spreads jobs over one or more backends, one worker thread each,
always handing a free backend the largest pending job (longest-processing-time first);
results do not depend on which backend ran a job.
"""

from __future__ import annotations

import heapq
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class KeyFrameJob:
    """A key frame to stylize: its index, (h, w, 3) uint8 pixels at working size, output (H, W)."""

    index: int
    image: np.ndarray
    size: tuple[int, int]

    @property
    def work(self) -> int:
        """Relative cost: output pixels plus input pixels."""
        return self.size[0] * self.size[1] + self.image.shape[0] * self.image.shape[1]


class StylizeBackend(Protocol):
    """What the pipeline needs from a stylization service."""

    name: str

    def set_style(self, style: np.ndarray) -> None:
        """Make ``style`` (H, W, 3) uint8 the style of every following job."""

    def stylize_batch(self, jobs: list[KeyFrameJob]) -> list[np.ndarray]:
        """Stylized (H, W, 3) uint8 frames, one per job, in order."""


class LocalBackend:
    """Runs the stylizer in this process."""

    def __init__(self, stylizer, name: str = "local") -> None:
        self.stylizer = stylizer
        self.name = name
        self._style: str | None = None

    def set_style(self, style: np.ndarray) -> None:
        self._style = self.stylizer.add_style(style)

    def stylize_batch(self, jobs: list[KeyFrameJob]) -> list[np.ndarray]:
        if self._style is None:
            raise RuntimeError("set_style must be called before stylize_batch")
        return [self.stylizer.stylize(job.image, self._style, size=job.size) for job in jobs]


@dataclass(order=True)
class _Pending:
    priority: tuple[int, int]
    job: KeyFrameJob = field(compare=False)
    future: Future = field(compare=False)


class Dispatcher:
    """Thread-per-backend job queue, largest pending job first. Use as a context manager."""

    def __init__(self, backends: list[StylizeBackend]) -> None:
        if not backends:
            raise ValueError("need at least one backend")
        self.backends = backends
        self._heap: list[_Pending] = []
        self._cond = threading.Condition()
        self._closed = False
        self.seconds: list[float] = []  # per key frame, as measured around each backend call
        self.assignments: dict[int, str] = {}
        self._threads = [threading.Thread(target=self._worker, args=(b,), daemon=True, name=f"stylize-{b.name}")
                         for b in backends]
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_style(self, style: np.ndarray) -> None:
        """Send the style to every backend (once each)."""
        for backend in self.backends:
            backend.set_style(style)

    def submit(self, job: KeyFrameJob) -> Future:
        """Queue ``job``; the future yields its stylized frame."""
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("dispatcher is closed")
            heapq.heappush(self._heap, _Pending((-job.work, job.index), job, future))
            self._cond.notify()
        return future

    def _worker(self, backend: StylizeBackend) -> None:
        while True:
            with self._cond:
                while not self._heap and not self._closed:
                    self._cond.wait()
                if not self._heap:
                    return
                pending = heapq.heappop(self._heap)
            if not pending.future.set_running_or_notify_cancel():
                continue
            try:
                start = time.perf_counter()
                result = backend.stylize_batch([pending.job])[0]
                elapsed = time.perf_counter() - start
                with self._cond:
                    self.seconds.append(elapsed)
                    self.assignments[pending.job.index] = backend.name
                pending.future.set_result(result)
            except BaseException as exc:
                pending.future.set_exception(exc)

    def close(self) -> None:
        """Stop the workers after the queued jobs; cancel nothing already submitted."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
