"""Flower ServerApp of the cloud (``cloud_server.app:app``): Algorithm 2, server side.

Run config (``[tool.flwr.app.config]``, overridable with ``flwr run --run-config``):
num-server-rounds (total global rounds, resumed runs included), images-per-round, batch-size,
local-epochs (training steps each new image takes part in: FedAvg's E), learning-rate, base-size,
min-nodes, aggregator, server-learning-rate and server-momentum (FedAvgM; 1 and 0 are plain
FedAvg), server-warmup-rounds, keep-last, data-dir, initial-checkpoint, eval-images (the held-out
frames each edge scores the new model on: extra metrics), heldout-dir (a folder with content/ and
style/ images the cloud scores every round's global model on; no edge trains on them),
heldout-images (how many pairs of them it scores), wait-for-ready (rounds start only when
min-nodes edges have images-per-round new images; see run_server), ready-poll-s and retry-wait-s,
sample-nodes (K > 0: Flower samples K of the min-nodes connected edges for each round; needs
wait-for-ready false). num-server-rounds 0 means no cap: the cloud runs until stopped.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from cloud_server.heldout import HeldOutSet
from cloud_server.history import heldout_score, history_path, read_history
from cloud_server.readiness import EdgeState, wait_until_ready
from cloud_server.server_optimizer import MOMENTUM_FILE, ServerOptimizer
from cloud_server.status import read_status, status_path, write_status
from cloud_server.store import QUARANTINE, CheckpointStore, round_path
from cloud_server.strategy import AGGREGATORS, FedVstStrategy, RoundLog, make_aggregator
from stylizer.checkpoint import CheckpointError, load_checkpoint, state_sha256
from stylizer.factory import builtin_checkpoint_path

log = logging.getLogger(__name__)
CLOUD_DIR_ENV = "FEDVST_CLOUD_DIR"
DEFAULTS: dict[str, Any] = {
    "num-server-rounds": 3, "images-per-round": 64, "batch-size": 2, "local-epochs": 1, "learning-rate": 1e-4,
    "base-size": 64,
    "min-nodes": 1, "aggregator": "fedavg", "server-learning-rate": 1.0, "server-momentum": 0.0,
    "server-warmup-rounds": 0, "keep-last": 5,
    "data-dir": "", "initial-checkpoint": "", "eval-images": 8, "heldout-dir": "",
    "heldout-images": 16,
    "wait-for-ready": True, "ready-poll-s": 15, "retry-wait-s": 10, "sample-nodes": 0,
}
TRAIN_KEYS = ("images-per-round", "batch-size", "local-epochs", "learning-rate", "base-size", "eval-images")

app = ServerApp()


# the smallest value each counted setting may take
MINIMUM: dict[str, int] = {"num-server-rounds": 0, "images-per-round": 1, "batch-size": 1, "local-epochs": 1,
                           "base-size": 16, "min-nodes": 1, "server-warmup-rounds": 0, "keep-last": 1, "eval-images": 1,
                           "heldout-images": 2, "ready-poll-s": 1, "retry-wait-s": 1, "sample-nodes": 0}


def run_settings(run_config: dict[str, Any]) -> dict[str, Any]:
    """Run config with defaults filled in, keys we do not know left out, numbers as numbers;
    ValueError naming the key for a value the run could not use (so that ``fedvst cloud serve``
    refuses it up front instead of its ServerApp failing inside Flower)."""
    settings = {**DEFAULTS, **{k: v for k, v in run_config.items() if k in DEFAULTS}}
    for key, least in MINIMUM.items():
        try:
            settings[key] = int(settings[key])
        except (TypeError, ValueError):
            raise ValueError(f"run config {key} must be a whole number, got {settings[key]!r}") from None
        if settings[key] < least:
            raise ValueError(f"run config {key} must be at least {least}, got {settings[key]}")
    for key in ("learning-rate", "server-learning-rate", "server-momentum"):
        try:
            settings[key] = float(settings[key])
        except (TypeError, ValueError):
            raise ValueError(f"run config {key} must be a number, got {settings[key]!r}") from None
    flag = settings["wait-for-ready"]
    if isinstance(flag, str):
        if flag.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"run config wait-for-ready must be true or false, got {flag!r}")
        flag = flag.lower() in ("true", "1")
    settings["wait-for-ready"] = bool(flag)
    if not 0 < settings["learning-rate"] < float("inf"):
        raise ValueError(f"run config learning-rate must be > 0, got {settings['learning-rate']}")
    if settings["sample-nodes"]:
        if settings["wait-for-ready"]:
            raise ValueError("run config sample-nodes needs wait-for-ready false (ready edges are not sampled)")
        if settings["sample-nodes"] > settings["min-nodes"]:
            raise ValueError(f"run config sample-nodes ({settings['sample-nodes']}) is more than min-nodes "
                             f"({settings['min-nodes']}), the edges there are to sample from")
    if settings["aggregator"] not in AGGREGATORS:
        raise ValueError(f"run config aggregator must be one of {', '.join(AGGREGATORS)}, got "
                         f"{settings['aggregator']!r}")
    ServerOptimizer(settings["server-learning-rate"], settings["server-momentum"],
                    warmup_rounds=settings["server-warmup-rounds"])  # raises for values it cannot step with
    return settings


def cloud_dir(settings: dict[str, Any]) -> Path:
    """Where the cloud keeps its checkpoints: run config, then $FEDVST_CLOUD_DIR, then ./fedvst-cloud."""
    return Path(settings["data-dir"] or os.environ.get(CLOUD_DIR_ENV) or "fedvst-cloud")


def model_description(metadata: dict[str, Any]) -> dict[str, Any]:
    """The parts of checkpoint metadata that fix the architecture and encoder."""
    return {"encoder": metadata["encoder"], "config": metadata["config"]}


def starting_point(store: CheckpointStore, initial: str, *, fresh: bool = False,
                   announce: bool = True) -> tuple[int, dict[str, torch.Tensor], dict[str, Any]]:
    """(rounds already done, tensors, model description): newest stored round, else the initial checkpoint;
    ``announce``: log which (the ServerApp does; ``fedvst cloud serve``'s check before it does not repeat it).

    Damaged rounds are quarantined. When every round the store held is damaged, starting over
    from the initial model is refused (CheckpointError) unless ``fresh``: the operator decides."""
    latest = store.latest(quarantine=True)
    if latest is not None:
        if announce and latest.round == 0:  # a fresh cloud: nothing to resume
            log.info("starting from the initial model (%s); round 1 is next", latest.path.name)
        elif announce:
            log.info("resuming after round %d (%s)", latest.round, latest.path.name)
        return latest.round, latest.checkpoint.state, model_description(latest.checkpoint.metadata)
    damaged = store.quarantined_rounds()
    if damaged and not fresh:
        raise CheckpointError(f"no usable checkpoint in {store.folder}: rounds {', '.join(map(str, damaged))} are "
                              f"damaged (moved to {store.folder / QUARANTINE}); restore them, or start over from "
                              "the initial model with --fresh")
    if damaged:
        log.warning("starting over from the %s model (--fresh); damaged rounds %s stay in %s",
                    "initial" if initial else "built-in", damaged, store.folder / QUARANTINE)
    checkpoint = load_checkpoint(Path(initial) if initial else builtin_checkpoint_path())
    description = model_description(checkpoint.metadata)
    store.save(0, checkpoint.state, {**description, "metrics": {}, "nodes": [], "source": initial or "built-in"})
    return 0, checkpoint.state, description


def run_server(grid: Grid, settings: dict[str, Any]) -> FedVstStrategy | None:
    """Algorithm 2 on the server for the remaining rounds; returns the last strategy (None if all done).

    With ``wait-for-ready`` (the cloud's default) each round waits until ``min-nodes`` edges are
    ready, trains only those, and counts only if ``min-nodes`` valid replies came back; otherwise
    the same round number is tried again after ``retry-wait-s``. ``num-server-rounds`` 0: no cap.
    Without it (simulations) every round trains every sampled node, as Flower's start() runs them."""
    root = cloud_dir(settings)
    store = CheckpointStore(root / "checkpoints", keep=int(settings["keep-last"]))
    done, state, description = starting_point(store, str(settings["initial-checkpoint"]))
    cap = int(settings["num-server-rounds"])
    if cap and cap - done <= 0:
        log.info("all %d rounds are done already", cap)
        return None
    current = ArrayRecord({k: v.to(torch.float32) for k, v in state.items()})
    central = None
    if settings["heldout-dir"]:
        central = HeldOutSet(Path(str(settings["heldout-dir"])), description, int(settings["base-size"]),
                             int(settings["heldout-images"]))
    train_config = ConfigRecord({k: settings[k] for k in TRAIN_KEYS} | {"model": json.dumps(description)})
    evaluate_config = ConfigRecord({"eval-images": settings["eval-images"], "base-size": settings["base-size"],
                                    "model": json.dumps(description)})
    min_nodes = int(settings["min-nodes"])

    history = history_path(root)
    recorded = {record["round"]: record for record in read_history(history)}
    initial_score = heldout_score(recorded[0].get("metrics")) if 0 in recorded else None
    previous_unix = recorded[done].get("finished_unix") if done in recorded else None

    def strategy_for(offset: int, participants: list[int] | None, min_replies: int,
                     names: dict[int, str] | None = None) -> FedVstStrategy:
        server_optimizer = ServerOptimizer(float(settings["server-learning-rate"]),
                                           float(settings["server-momentum"]), root / "checkpoints" / MOMENTUM_FILE,
                                           int(settings["server-warmup-rounds"]))
        server_optimizer.resume(offset)
        inner = make_aggregator(str(settings["aggregator"]), min_nodes, sample_nodes=int(settings["sample-nodes"]))
        return FedVstStrategy(inner, store, description, current,
                              round_offset=offset, central_eval=central, history_path=history,
                              server_optimizer=server_optimizer, participants=participants, min_replies=min_replies,
                              names=names, initial_score=initial_score, previous_unix=previous_unix)

    strategy = strategy_for(done, None, 1)
    if done == 0 and central is not None and initial_score is None:  # round 0's score, once
        entry = RoundLog(0, metrics=central(current), checkpoint=round_path(store.folder, 0).name)
        store.update_metrics(0, entry.metrics)
        strategy.log_round(entry)
        initial_score, previous_unix = heldout_score(entry.metrics), entry.finished_unix
        strategy.initial_score, strategy.previous_unix = initial_score, previous_unix
        log.info("round 0 (the initial model): held-out total %.5g on %s", initial_score, settings["heldout-dir"])
    if not settings["wait-for-ready"]:
        strategy.start(grid=grid, initial_arrays=current, num_rounds=cap - done, train_config=train_config,
                       evaluate_config=evaluate_config)
        return strategy
    status = status_path(root)

    def waiting(states: list[EdgeState], line: str) -> None:
        write_status(status, "waiting", done + 1, min_nodes, line, states)

    while not cap or done < cap:
        query_config = {k: settings[k] for k in TRAIN_KEYS if k != "eval-images"} | {
            "global-sha256": state_sha256(current.to_torch_state_dict())}
        live = wait_until_ready(grid, min_nodes, query_config, poll_s=float(settings["ready-poll-s"]),
                                on_poll=waiting)
        ready = [edge for edge in live if edge.ready]
        write_status(status, "training", done + 1, min_nodes,
                     f"training round {done + 1} on {len(ready)} ready edges ({', '.join(e.label for e in ready)})",
                     live)
        strategy = strategy_for(done, [edge.node for edge in ready], min_nodes,
                                {edge.node: edge.name for edge in live if edge.name})
        strategy.start(grid=grid, initial_arrays=current, num_rounds=1, train_config=train_config,
                       evaluate_config=evaluate_config)
        if strategy.history and strategy.history[-1].counted:
            done += 1
            current = strategy.current_arrays()
            previous_unix = strategy.previous_unix
            continue
        log.warning("round %d was not counted; asking the edges again in %d s", done + 1,
                    int(settings["retry-wait-s"]))
        time.sleep(float(settings["retry-wait-s"]))
    write_status(status, "finished", done, min_nodes, f"finished: all {cap} rounds are done")
    return strategy


SERVERAPP_LOG = "serverapp.log"  # in CLOUD/logs/; ``fedvst cloud serve`` prints what lands here


def log_to_file(path: Path) -> None:
    """Our INFO lines (why no round starts, what each round did) in ``path``: Flower keeps the
    ServerApp's own output in its database (``flwr log``), where an operator would not look."""
    ours = logging.getLogger("cloud_server")
    if any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path.resolve() for h in ours.handlers):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ours.addHandler(handler)
    ours.setLevel(logging.INFO)


@app.main()
def main(grid: Grid, context: Context) -> None:
    """Run the remaining global rounds, checkpointing each. A failure is logged with its traceback
    and written to status.json as state ``failed`` with its last line, for ``fedvst cloud serve``
    to report and end on, before Flower sees the exception."""
    settings = run_settings(dict(context.run_config))
    root = cloud_dir(settings)
    log_to_file(root / "logs" / SERVERAPP_LOG)
    try:
        run_server(grid, settings)
    except Exception as exc:  # a stop (SystemExit, KeyboardInterrupt) is not a failure
        reason = failure_line(exc)
        log.exception("the ServerApp failed: %s", reason)
        last = read_status(status_path(root)) or {}
        write_status(status_path(root), "failed", int(last.get("round", 0)), int(settings["min-nodes"]),
                     f"the ServerApp failed: {reason}")
        raise


def failure_line(exc: BaseException) -> str:
    """'ImageError: picture x is unreadable': an exception's type and the last line of its message."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[-1]}" if lines else type(exc).__name__
