"""Where key frames get stylized: in-process (local) or on edge servers.

A backend turns a batch of ``KeyFrameJob`` into, per job, a stylized frame of the job's output
size or a colour field (``stylizer.field.ColourField``) that the phone renders on its own
frame (``render_key``). ``Dispatcher`` spreads jobs over one or more backends, one worker thread each,
always handing a free backend the largest pending job (longest-processing-time first);
results do not depend on which backend ran a job. A backend that fails (an edge that died)
is retired and its job goes back to the queue for the others; only when no other backend is
left does the job fail. A backend that is only busy (``BackendBusyError``: an edge at capacity) is
not retired: its job goes back to the queue, where another backend may take it, and the busy
one pauses for its own retry-after hint (or a jittered, growing back-off) before it takes
another; a job still refused after ``busy_timeout_s`` fails.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from stylizer.field import ColourField
from stylizer.render import render_field, resize_frame

log = logging.getLogger(__name__)

KeyResult = np.ndarray | ColourField  # what a backend returns for one key frame
BUSY_BACKOFF_S = (0.2, 5.0)  # first and longest pause of a busy backend without a hint


class BackendBusyError(RuntimeError):
    """A backend that is alive but refused a job for now; ``retry_after_s``: when to come back, if it said."""

    retry_after_s: float | None = None


@dataclass(frozen=True)
class KeyFrameJob:
    """A key frame to stylize: its index, (h, w, 3) uint8 pixels at working size, output (H, W), and
    the frame at its own full resolution (``full``), which a colour-field stylizer renders on, and the
    stylization ``strength`` in [0, 1] (``ColourField.toward_identity``)."""

    index: int
    image: np.ndarray
    size: tuple[int, int]
    full: np.ndarray | None = None
    strength: float = 1.0

    @property
    def work(self) -> int:
        """Relative cost: output pixels plus input pixels."""
        return self.size[0] * self.size[1] + self.image.shape[0] * self.image.shape[1]


class StylizeBackend(Protocol):
    """What the pipeline needs from a stylization service."""

    name: str

    def set_style(self, style: np.ndarray) -> None:
        """Make ``style`` (H, W, 3) uint8 the style of every following job."""

    def stylize_batch(self, jobs: list[KeyFrameJob]) -> list[KeyResult]:
        """Per job, in order: a stylized (H, W, 3) uint8 frame or a ColourField."""


def frame_at(job: KeyFrameJob) -> np.ndarray:
    """The job's frame at its output size, from its full-resolution pixels when it has them."""
    return resize_frame(job.full if job.full is not None else job.image, job.size)


def render_key(result: KeyResult, job: KeyFrameJob) -> np.ndarray:
    """The stylized key frame (H, W, 3) uint8: a field is rendered on ``frame_at(job)``."""
    if isinstance(result, ColourField):
        return render_field(frame_at(job), result)
    return result


class LocalBackend:
    """Runs the stylizer in this process; an affine-head model answers with fields, as an edge does."""

    def __init__(self, stylizer, name: str = "local") -> None:
        self.stylizer = stylizer
        self.name = name
        self._style: str | None = None

    def set_style(self, style: np.ndarray) -> None:
        self._style = self.stylizer.add_style(style)

    def stylize_batch(self, jobs: list[KeyFrameJob]) -> list[KeyResult]:
        if self._style is None:
            raise RuntimeError("set_style must be called before stylize_batch")
        if self.stylizer.head == "affine":  # in the wire's float16, so local and edge results are the same bits
            return [self.stylizer.colour_field(job.image, self._style, job.size, job.strength).quantized()
                    for job in jobs]
        return [self.stylizer.stylize_frame(job.image, self._style, job.size, strength=job.strength) for job in jobs]


@dataclass(order=True)
class _Pending:
    priority: tuple[int, int]
    job: KeyFrameJob = field(compare=False)
    future: Future = field(compare=False)
    started: bool = field(default=False, compare=False)  # already marked running (a retried job)
    busy_since: float | None = field(default=None, compare=False)  # first refused by a busy backend


class Dispatcher:
    """Thread-per-backend job queue, largest pending job first. Use as a context manager."""

    def __init__(self, backends: list[StylizeBackend], *, busy_timeout_s: float = 600.0) -> None:
        if not backends:
            raise ValueError("need at least one backend")
        self.backends = backends
        self.busy_timeout_s = busy_timeout_s
        self.busy_refusals = 0
        self._heap: list[_Pending] = []
        self._cond = threading.Condition()
        self._closed = False
        self.seconds: list[float] = []  # per key frame, as measured around each backend call
        self.assignments: dict[int, str] = {}
        self.failed: dict[str, str] = {}  # retired backends and why
        self._threads = [threading.Thread(target=self._worker, args=(b,), daemon=True, name=f"stylize-{b.name}")
                         for b in backends]
        for thread in self._threads:
            thread.start()

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_style(self, style: np.ndarray) -> None:
        """Send the style to every backend; one that refuses is retired (an error only if all do)."""
        errors = []
        for backend in self.backends:
            try:
                backend.set_style(style)
            except Exception as exc:
                errors.append(exc)
                self._retire(backend, exc)
        if len(errors) == len(self.backends):
            raise errors[0]

    def _retire(self, backend: StylizeBackend, exc: BaseException) -> bool:
        """Stop using ``backend``; False (and nothing changes) if it is the last one alive."""
        with self._cond:
            if backend.name in self.failed or len(self.failed) >= len(self.backends) - 1:
                return backend.name in self.failed
            self.failed[backend.name] = str(exc)
            self._cond.notify_all()
        log.warning("backend %s failed and is no longer used: %s", backend.name, exc)
        return True

    def submit(self, job: KeyFrameJob) -> Future:
        """Queue ``job``; the future yields its stylized frame."""
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("dispatcher is closed")
            heapq.heappush(self._heap, _Pending((-job.work, job.index), job, future))
            self._cond.notify()
        return future

    def _requeue_busy(self, pending: _Pending, exc: BackendBusyError, pause_s: float) -> float:
        """Put a refused job back (or fail it past its busy deadline); returns the backend's next pause."""
        now = time.monotonic()
        since = pending.busy_since if pending.busy_since is not None else now
        if now - since > self.busy_timeout_s:
            pending.future.set_exception(exc)
        else:
            with self._cond:
                self.busy_refusals += 1
                heapq.heappush(self._heap, _Pending(pending.priority, pending.job, pending.future, True, since))
                self._cond.notify_all()
        if exc.retry_after_s is not None:
            return min(BUSY_BACKOFF_S[1], exc.retry_after_s) * random.uniform(0.8, 1.2)
        return min(BUSY_BACKOFF_S[1], max(BUSY_BACKOFF_S[0], pause_s * 2)) * random.uniform(0.5, 1.0)

    def _worker(self, backend: StylizeBackend) -> None:
        pause_s = 0.0
        while True:
            with self._cond:
                while not self._heap and not self._closed and backend.name not in self.failed:
                    self._cond.wait()
                if not self._heap or backend.name in self.failed:
                    return
                pending = heapq.heappop(self._heap)
            if not pending.started and not pending.future.set_running_or_notify_cancel():
                continue
            try:
                start = time.perf_counter()
                result = backend.stylize_batch([pending.job])[0]
                elapsed = time.perf_counter() - start
                with self._cond:
                    self.seconds.append(elapsed)
                    self.assignments[pending.job.index] = backend.name
                pending.future.set_result(result)
                pause_s = 0.0
            except BackendBusyError as exc:
                pause_s = self._requeue_busy(pending, exc, pause_s)
                time.sleep(pause_s)
            except BaseException as exc:
                if self._retire(backend, exc):
                    with self._cond:  # another backend takes the job over
                        heapq.heappush(self._heap, _Pending(pending.priority, pending.job, pending.future, True))
                        self._cond.notify_all()
                    return
                pending.future.set_exception(exc)

    def close(self) -> None:
        """Stop the workers after the queued jobs; cancel nothing already submitted."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()
