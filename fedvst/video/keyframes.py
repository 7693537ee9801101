"""Key-frame selection (seeds/000 §3.1–3.2): which frames the edge stylizes.

Modes:
* ``interval``: every K-th frame;
* ``codec``: the encoder's own I-frames (the paper allows H.264 key frames);
* ``adaptive`` (default): a new key frame when the interpolation error predicted from the
  original frames grows too large — the fraction of pixels that the last key frame,
  warped along the flow, fails to explain (occluded, revealed, or mis-tracked) — within
  [min_interval, max_interval].

In every mode frame 0 is a key frame, so is the first frame after a scene cut (a cut is a
sharp drop in gray-histogram correlation between consecutive frames), and so is any frame
``max_interval`` after the last key (which also bounds the phone's buffer).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fedvst.video.warp import Grid, photometric_error

MODES = ("adaptive", "interval", "codec")


@dataclass(frozen=True)
class KeyFramePolicy:
    """Settings of the selector; thresholds are for the adaptive mode."""

    mode: str = "adaptive"
    interval: int = 10
    min_interval: int = 2
    max_interval: int = 30
    max_unexplained: float = 0.08  # fraction of pixels the warped key cannot explain
    unexplained_level: float = 24.0  # gray-level error above which a pixel counts as unexplained
    cut_correlation: float = 0.5  # histogram correlation below this between neighbours = cut

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"key-frame mode must be one of {MODES}, got {self.mode!r}")
        if self.interval < 1 or self.min_interval < 1 or self.max_interval < self.min_interval:
            raise ValueError(f"need interval >= 1 and 1 <= min_interval <= max_interval, got interval "
                             f"{self.interval}, min_interval {self.min_interval}, max_interval {self.max_interval}")


@dataclass(frozen=True)
class Decision:
    """Whether a frame is a key frame and why (first, cut, interval, codec, error, max)."""

    is_key: bool
    reason: str = ""
    unexplained: float = 0.0


def _histogram(gray: np.ndarray) -> np.ndarray:
    hist = cv2.calcHist([gray], [0], None, [64], [0, 256])
    return cv2.normalize(hist, hist).astype(np.float32)


class KeyFrameSelector:
    """Stateful: call ``decide`` once per frame, in order, with its analysis frame."""

    def __init__(self, policy: KeyFramePolicy) -> None:
        self.policy = policy
        self._last_key: np.ndarray | None = None
        self._last_key_index = -1
        self._previous_hist: np.ndarray | None = None
        self._grid: Grid | None = None

    def is_cut(self, gray: np.ndarray) -> bool:
        """True when ``gray`` starts a new shot relative to the previous frame given."""
        hist = _histogram(gray)
        previous, self._previous_hist = self._previous_hist, hist
        if previous is None:
            return False
        return cv2.compareHist(previous, hist, cv2.HISTCMP_CORREL) < self.policy.cut_correlation

    def unexplained_fraction(self, gray: np.ndarray, flow_to_key: np.ndarray) -> float:
        """Fraction of pixels of ``gray`` that the last key frame warped by ``flow_to_key`` misses."""
        if self._grid is None or self._grid.size != gray.shape:
            self._grid = Grid(*gray.shape)
        error = photometric_error(gray, self._last_key, flow_to_key, self._grid)
        return float((error > self.policy.unexplained_level).mean())

    def decide(self, index: int, gray: np.ndarray, *, codec_key: bool = False,
               flow_to_key: np.ndarray | None = None) -> Decision:
        """Decide for frame ``index``; ``flow_to_key`` = flow(gray, last key) for adaptive mode."""
        policy = self.policy
        cut = self.is_cut(gray)
        since = index - self._last_key_index
        decision = Decision(False)
        if self._last_key is None:
            decision = Decision(True, "first")
        elif cut:
            decision = Decision(True, "cut")
        elif since >= policy.max_interval:
            decision = Decision(True, "max")
        elif policy.mode == "interval" and since >= policy.interval:
            decision = Decision(True, "interval")
        elif policy.mode == "codec" and codec_key and since >= policy.min_interval:
            decision = Decision(True, "codec")
        elif policy.mode == "adaptive" and since >= policy.min_interval:
            if flow_to_key is None:
                raise ValueError("adaptive key-frame selection needs the flow to the last key frame")
            unexplained = self.unexplained_fraction(gray, flow_to_key)
            decision = Decision(unexplained > policy.max_unexplained, "error", unexplained)
        if decision.is_key:
            self._last_key = gray
            self._last_key_index = index
        return decision

    @property
    def needs_flow(self) -> bool:
        """Whether ``decide`` will want ``flow_to_key`` for frames that are not forced keys."""
        return self.policy.mode == "adaptive"
