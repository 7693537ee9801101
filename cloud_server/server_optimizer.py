"""The cloud's own step on the aggregated update (FedAvgM, Hsu et al. 2019; Reddi et al. 2021).

After the aggregator (FedAvg, trimmed mean, Krum) has combined the edges' models into ``m``,
the global model ``g`` moves by ``g ← g − η_t·v`` with ``v ← β·v + (g − m)``. η = 1, β = 0 gives
back ``m`` itself: plain Algorithm 2. With ``warmup_rounds`` W, η_t ramps linearly from 1 in
round 1 to η in round W + 1, and β_t likewise from 0 to β (Goyal et al. 2017): extrapolating,
or carrying along, the large first steps of a fresh model overshoots. Tensors are matched by
name, never by position.

The momentum ``v`` is saved after every step (safetensors, atomic) with the round it belongs
to, so a restarted cloud resumes it; a file from another round, or an unreadable one, is
ignored with a warning and ``v`` starts from zero.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from stylizer.atomic_io import atomic_write_bytes

log = logging.getLogger(__name__)
MOMENTUM_FILE = "server_momentum.safetensors"


class ServerOptimizer:
    """Server learning rate η > 0 and momentum β ∈ [0, 1) on float32 tensors keyed by name."""

    def __init__(self, learning_rate: float = 1.0, momentum: float = 0.0, state_path: Path | None = None,
                 warmup_rounds: int = 0) -> None:
        if not (learning_rate > 0 and 0 <= momentum < 1 and warmup_rounds >= 0):
            raise ValueError(f"server learning rate must be > 0, momentum in [0, 1) and warm-up ≥ 0 rounds, got "
                             f"{learning_rate}, {momentum} and {warmup_rounds}")
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.warmup_rounds = int(warmup_rounds)
        self.state_path = state_path
        self.velocity: dict[str, np.ndarray] = {}

    @property
    def active(self) -> bool:
        """False for η = 1, β = 0 (the aggregate is the new global model as it is)."""
        return self.learning_rate != 1.0 or self.momentum != 0.0

    def _progress(self, round_number: int) -> float:
        """How far round ``round_number`` (1-based) is through the warm-up: 0 in round 1, 1 from W + 1."""
        if self.warmup_rounds == 0:
            return 1.0
        return min(1.0, max(0, round_number - 1) / self.warmup_rounds)

    def rate(self, round_number: int) -> float:
        """η_t of global round ``round_number`` (1-based)."""
        return 1.0 + (self.learning_rate - 1.0) * self._progress(round_number)

    def momentum_at(self, round_number: int) -> float:
        """β_t of global round ``round_number`` (1-based)."""
        return self.momentum * self._progress(round_number)

    def resume(self, round_number: int) -> None:
        """Load the momentum saved after ``round_number`` (the round the cloud resumes from), if any."""
        if self.momentum == 0.0 or self.state_path is None or not self.state_path.exists():
            return
        try:
            with safe_open(str(self.state_path), "np") as handle:
                saved_round = int((handle.metadata() or {}).get("round", -1))
                tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (a safe_open handle, not a dict)
        except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
            log.warning("ignoring unreadable server momentum %s: %s", self.state_path, exc)
            return
        if saved_round != round_number:
            log.warning("server momentum is from round %d, resuming after round %d: starting it from zero",
                        saved_round, round_number)
            return
        if not all(np.isfinite(v).all() for v in tensors.values()):
            log.warning("server momentum %s holds NaN/Inf: starting it from zero", self.state_path)
            return
        self.velocity = tensors

    def step(self, current: ArrayRecord, aggregate: ArrayRecord, round_number: int) -> ArrayRecord:
        """The next global model from the current one and the aggregate of round ``round_number``."""
        if not self.active:
            return aggregate
        rate, momentum = self.rate(round_number), self.momentum_at(round_number)
        updated = ArrayRecord()
        for key, array in aggregate.items():
            now = current[key].numpy().astype(np.float32, copy=False)
            pseudo_gradient = now - array.numpy().astype(np.float32, copy=False)
            if self.momentum:
                previous = self.velocity.get(key)
                if previous is not None and previous.shape == pseudo_gradient.shape:
                    pseudo_gradient = momentum * previous + pseudo_gradient
                self.velocity[key] = pseudo_gradient
            updated[key] = Array(np.ascontiguousarray(now - rate * pseudo_gradient))
        if self.momentum and self.state_path is not None:
            atomic_write_bytes(self.state_path, save(self.velocity, metadata={"round": str(round_number)}))
        return updated
