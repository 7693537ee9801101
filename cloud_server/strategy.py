"""The cloud's strategy: validate every reply, aggregate with a Flower strategy, checkpoint.

Wraps a Flower Message-API strategy (FedAvg weighted by ``num-examples`` by default, or
FedTrimmedAvg / Krum for untrusted edges). Replies that fail ``reply_problem`` are dropped
and logged with their node id; the round goes on with the rest. The accepted replies are
aggregated in an order fixed by their content, not their arrival, so the same replies always
give the same bits. After aggregation the round's global model (after the cloud's optional
FedAvgM step, ``server_optimizer.py``) is checkpointed; evaluation losses are added to its
metadata. Round numbers are global: Flower's ``server_round`` (which always starts at 1) plus
the offset of the run we resumed from.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, FedTrimmedAvg, Krum, Strategy

from cloud_server.history import append_round, heldout_score
from cloud_server.server_optimizer import ServerOptimizer
from cloud_server.store import CheckpointStore, round_path
from cloud_server.validation import NUM_EXAMPLES_KEY, ArraySpec, reply_problem, specs_of

log = logging.getLogger(__name__)
TRAIN_SECONDS = "train_seconds"  # an edge's reply metric: seconds in training steps (per node, not averaged)
AGGREGATORS = ("fedavg", "trimmed-mean", "krum")


def make_aggregator(name: str, min_nodes: int, *, sample_nodes: int = 0, trim_beta: float = 0.2,
                    krum_malicious: int = 0) -> Strategy:
    """A Flower strategy by name, once ``min_nodes`` nodes are connected. Every node trains and
    evaluates each round, or with ``sample_nodes`` K > 0 Flower samples K of them at random each
    round (its ``fraction_train`` with ``min_train_nodes`` K, so a fraction's rounding down cannot
    leave K − 1)."""
    if not 0 <= sample_nodes <= min_nodes:
        raise ValueError(f"sample-nodes must be in 0…{min_nodes} (min-nodes), got {sample_nodes}")
    fraction = sample_nodes / min_nodes if sample_nodes else 1.0
    each_round = sample_nodes or min_nodes
    common = {"fraction_train": fraction, "fraction_evaluate": fraction, "min_train_nodes": each_round,
              "min_evaluate_nodes": each_round, "min_available_nodes": min_nodes,
              "weighted_by_key": NUM_EXAMPLES_KEY}
    if name == "fedavg":
        return FedAvg(**common)
    if name == "trimmed-mean":
        return FedTrimmedAvg(beta=trim_beta, **common)
    if name == "krum":
        return Krum(num_malicious_nodes=krum_malicious, **common)
    raise ValueError(f"aggregator must be one of {AGGREGATORS}, got {name!r}")


def content_order(replies: Iterable[Message]) -> list[Message]:
    """``replies`` sorted by what they carry (content hashes of their arrays, then their metrics).

    Float sums depend on the order of their terms and replies arrive in a different order each
    run, so without this the same replies can average to different last bits, which training
    then amplifies. Error replies come first, in arrival order.
    """
    def key(message: Message) -> tuple:
        if message.has_error():
            return (0, (), ())
        content = message.content
        hashes = tuple(record.object_id for _, record in sorted(content.array_records.items()))
        metrics = tuple(sorted((name, repr(value)) for record in content.metric_records.values()
                               for name, value in record.items()))
        return (1, hashes, metrics)

    return sorted(replies, key=key)


@dataclass
class RoundLog:
    """What happened in one global round."""

    round: int
    nodes: list[int] = field(default_factory=list)
    examples: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    counted: bool = False  # aggregated and checkpointed
    names: dict[str, str] = field(default_factory=dict)  # node id → the edge's name
    train_seconds: dict[str, float] = field(default_factory=dict)  # node id → seconds in training steps
    phase_seconds: dict[str, float] = field(default_factory=dict)  # train, checkpoint, evaluate, heldout
    checkpoint: str = ""  # file name of the round's checkpoint
    finished_unix: float = 0.0
    moved_max: float | None = None  # largest |change| of any learned value since the previous global model
    moved_rms: float | None = None  # root mean square change over every learned value


def model_movement(before: ArrayRecord, after: ArrayRecord) -> tuple[float, float]:
    """(largest, RMS) absolute change between two global models' learned tensors (float64 sums)."""
    largest, squares, count = 0.0, 0.0, 0
    for key, array in after.items():
        delta = array.numpy().astype(np.float64) - before[key].numpy().astype(np.float64)
        if delta.size:
            largest = max(largest, float(np.abs(delta).max()))
            squares += float(np.square(delta).sum())
            count += delta.size
    return largest, (squares / count) ** 0.5 if count else 0.0


def movement_text(entry: RoundLog) -> str:
    """'model moved by at most 3.1e-04 (RMS 2.0e-06)', or a warning that the round changed nothing."""
    if entry.moved_max is None:
        return "model movement not measured"
    if entry.moved_max == 0.0:
        return "MODEL UNCHANGED: this round changed no learned value"
    return f"model moved by at most {entry.moved_max:.2e} (RMS {entry.moved_rms:.2e})"


def round_line(entry: RoundLog, *, initial_score: float | None, previous_unix: float | None) -> str:
    """The cloud's one line for a counted round: 'round 2 counted: edge-a (node 12) trained on 64
    images, edge-b (node 34) on 60; held-out total 0.1234 (round 0: 0.1300); model moved by at most
    3.1e-04 (RMS 2.0e-06); checkpoint round_000002.safetensors; 41 s after round 1'."""
    parts = []
    for i, node in enumerate(entry.nodes):
        name = entry.names.get(str(node))
        who = f"{name} (node {node})" if name else f"node {node}"
        images = entry.examples.get(str(node), 0)
        parts.append(f"{who} trained on {images} images" if i == 0 else f"{who} on {images}")
    line = f"round {entry.round} counted: " + (", ".join(parts) or "no edge")
    if entry.dropped:
        line += f" ({len(entry.dropped)} replies dropped)"
    score = heldout_score(entry.metrics)
    if score is not None:
        line += f"; held-out total {score:.5g}"
        if initial_score is not None:
            line += f" (round 0: {initial_score:.5g})"
    else:
        line += "; no held-out score"
    line += f"; {movement_text(entry)}; checkpoint {entry.checkpoint or '(none)'}"
    if previous_unix is not None and entry.finished_unix:
        line += f"; {entry.finished_unix - previous_unix:.0f} s after round {entry.round - 1}"
    return line


class FedVstStrategy(Strategy):
    """Validation + checkpointing around ``inner``; see module docstring."""

    def __init__(self, inner: Strategy, store: CheckpointStore, model_metadata: dict[str, Any],
                 initial: ArrayRecord, *, round_offset: int = 0, max_examples: int = 1_000_000,
                 central_eval: Callable[[ArrayRecord], dict[str, float]] | None = None,
                 history_path: Path | None = None, server_optimizer: ServerOptimizer | None = None,
                 participants: list[int] | None = None, min_replies: int = 1,
                 names: dict[int, str] | None = None, initial_score: float | None = None,
                 previous_unix: float | None = None) -> None:
        self.inner = inner
        self.names = dict(names or {})  # node id → edge name, from the readiness poll
        self.initial_score = initial_score  # round 0's held-out total, for the round line
        self.previous_unix = previous_unix  # when the round before was counted
        self.participants = None if participants is None else set(participants)  # who trains; None: all sampled
        self.min_replies = min_replies  # fewer valid replies: the round is not counted
        self.server_optimizer = server_optimizer
        self._global = initial  # the global model as of the last round (the initial one before any)
        self.central_eval = central_eval
        self.history_path = history_path
        self.started = time.monotonic()
        self.store = store
        self.model_metadata = model_metadata
        self.expected: dict[str, ArraySpec] = specs_of(initial)
        self.round_offset = round_offset
        self.max_examples = max_examples
        self.history: list[RoundLog] = []
        self._phase_started = time.monotonic()  # when the current phase's messages went out

    def current_arrays(self) -> ArrayRecord:
        """The global model after the last aggregated round (the initial one before any)."""
        return self._global

    def global_round(self, server_round: int) -> int:
        return self.round_offset + server_round

    def summary(self) -> None:
        self.inner.summary()

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        config["global-round"] = self.global_round(server_round)
        self._phase_started = time.monotonic()  # the round's train messages go out now
        return self._only_participants(self.inner.configure_train(server_round, arrays, config, grid))

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        entry = self._entry(self.global_round(server_round))
        if entry is not None and not entry.counted:
            return []  # nothing new to hand out: the edges keep their frames new for the retry
        config["global-round"] = self.global_round(server_round)
        self._phase_started = time.monotonic()
        return list(self.inner.configure_evaluate(server_round, arrays, config, grid))  # all: each hot-swaps it

    def _only_participants(self, messages: Iterable[Message]) -> list[Message]:
        messages = list(messages)
        if self.participants is None:
            return messages
        return [m for m in messages if m.metadata.dst_node_id in self.participants]

    def _entry(self, round_number: int) -> RoundLog | None:
        return next((e for e in self.history if e.round == round_number), None)

    def accepted_replies(self, server_round: int, replies: Iterable[Message]) -> tuple[list[Message], RoundLog]:
        """Replies that may be aggregated, in ``content_order`` (error replies pass through for Flower to log)."""
        entry = RoundLog(self.global_round(server_round))
        accepted = []
        for message in replies:
            node = message.metadata.src_node_id
            if message.has_error():
                accepted.append(message)
                continue
            problem = reply_problem(message.content, self.expected, self.max_examples)
            if problem is not None:
                log.warning("round %d: dropping reply of node %d: %s", entry.round, node, problem)
                entry.dropped[str(node)] = problem
                continue
            metrics = next(iter(message.content.metric_records.values()))
            entry.nodes.append(node)
            entry.examples[str(node)] = int(metrics[NUM_EXAMPLES_KEY])
            if node in self.names:
                entry.names[str(node)] = self.names[node]
            if isinstance(metrics.get(TRAIN_SECONDS), (int, float)):
                entry.train_seconds[str(node)] = float(metrics[TRAIN_SECONDS])
            accepted.append(message)
        entry.nodes.sort()
        return content_order(accepted), entry

    def aggregate_train(self, server_round: int,
                        replies: Iterable[Message]) -> tuple[ArrayRecord | None, MetricRecord | None]:
        accepted, entry = self.accepted_replies(server_round, replies)
        entry.phase_seconds["train"] = round(time.monotonic() - self._phase_started, 3)
        self.history.append(entry)
        if len(entry.nodes) < self.min_replies:
            log.warning("round %d not counted: %d valid replies, %d needed; the global model stays as it was",
                        entry.round, len(entry.nodes), self.min_replies)
            return None, None
        arrays, metrics = self.inner.aggregate_train(server_round, accepted)
        if arrays is None:
            return None, None
        entry.counted = True
        if self.server_optimizer is not None:
            arrays = self.server_optimizer.step(self._global, arrays, entry.round)
        entry.moved_max, entry.moved_rms = model_movement(self._global, arrays)
        if entry.moved_max == 0.0:
            log.warning("round %d changed no learned value: the edges' replies equal the previous global model",
                        entry.round)
        self._global = arrays
        entry.metrics = {f"train_{k}" if not k.startswith("train") else k: float(v)
                         for k, v in (metrics or {}).items() if k not in (NUM_EXAMPLES_KEY, TRAIN_SECONDS)}
        saving = time.monotonic()
        self.save_round(entry, arrays)
        entry.phase_seconds["checkpoint"] = round(time.monotonic() - saving, 3)
        return arrays, metrics

    def save_round(self, entry: RoundLog, arrays: ArrayRecord) -> None:
        """Checkpoint ``arrays`` as round ``entry.round``."""
        state = {key: torch.from_numpy(array.numpy()) for key, array in arrays.items()}
        self.store.save(entry.round, state, {**self.model_metadata, "nodes": entry.nodes, "names": entry.names,
                                             "examples": entry.examples, "dropped": entry.dropped,
                                             "metrics": entry.metrics, "resumed_from_round": self.round_offset})
        entry.checkpoint = round_path(self.store.folder, entry.round).name

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        """Edges' held-out losses, then the cloud's own held-out set (if any); logs the round."""
        metrics = self.inner.aggregate_evaluate(server_round, content_order(replies))
        round_number = self.global_round(server_round)
        values = {(k if k.startswith("eval") else f"eval_{k}"): float(v) for k, v in (metrics or {}).items()
                  if k != NUM_EXAMPLES_KEY}
        evaluated, scoring = time.monotonic() - self._phase_started, time.monotonic()
        if self.central_eval is not None:  # the global model after this round, even if it kept the last one
            values.update(self.central_eval(self._global))
        entry = self._entry(round_number)
        if entry is not None and entry.counted:  # history.jsonl records aggregated rounds only
            entry.phase_seconds.update(evaluate=round(evaluated, 3), heldout=round(time.monotonic() - scoring, 3))
            entry.metrics.update(values)
            if values:
                self.store.update_metrics(round_number, values)
            self.log_round(entry)
            log.info("%s", round_line(entry, initial_score=self.initial_score, previous_unix=self.previous_unix))
            self.previous_unix = entry.finished_unix
        return metrics

    def log_round(self, entry: RoundLog) -> None:
        """Append the round to history.jsonl (``history.py``)."""
        entry.finished_unix = round(time.time(), 3)
        if self.history_path is None:
            return
        append_round(self.history_path, {**asdict(entry), "wall_seconds": round(time.monotonic() - self.started, 2)})
