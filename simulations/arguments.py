"""Argument types for the benchmarks' command lines: a value no run could use is refused by argparse
in one line (exit 2) before anything starts, never a traceback minutes later."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high] (no upper bound when ``high`` is None)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"{low}–{high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value
    return parse


def seconds(low_exclusive: float, high: float) -> Callable[[str], float]:
    """An argparse type: a number of seconds in (low_exclusive, high]."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
        if not low_exclusive < value <= high:
            raise argparse.ArgumentTypeError(f"must be above {low_exclusive:g} and at most {high:g} s, got {text}")
        return value
    return parse


def weight(high_exclusive: float) -> Callable[[str], float]:
    """An argparse type: a loss weight, a finite number in [0, high_exclusive)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if not 0.0 <= value < high_exclusive:  # NaN fails this too
            raise argparse.ArgumentTypeError(f"must be at least 0 and below {high_exclusive:g}, got {text}")
        return value
    return parse
