"""Seconds spent per named stage, for benchmarks that say where each millisecond goes."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Iterator


class StageClock:
    """Accumulates wall seconds per stage name: ``with clock.stage("flow"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Adds the wall time of the ``with`` body to ``seconds[name]`` (also when it raises)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started

    def ms_per(self, count: int) -> dict[str, float]:
        """Milliseconds per item of ``count`` items, per stage, in the order the stages first ran."""
        return {name: round(1000 * seconds / max(count, 1), 3) for name, seconds in self.seconds.items()}


def stage_of(clock: StageClock | None, name: str) -> contextlib.AbstractContextManager:
    """``clock.stage(name)``, or a context that does nothing when there is no clock."""
    return clock.stage(name) if clock is not None else contextlib.nullcontext()
