"""Flower ClientApp of an edge (``edge_client.app:app``): Algorithm 2, client side.

query: say whether this edge is ready to sync (``readiness.py``: enough new frames since the
last sync). train: load the global arrays, train on a sample of the frames phones left here
(paired with the styles they used), reply with the new arrays, ``num-examples`` and the Eq. 5
losses; an edge with nothing to train on replies with a Flower error that says why.
evaluate: put the global model in the edge's model slot so the service serves it (every
connected edge, whether it trained in the round or not), then report the same losses of it on
held-out stored frames.

Node config: ``data-dir`` (the edge's data folder), optional ``vgg-weights``,
``train-threads``. In simulations, ``data-root`` + ``partition-id`` pick the folder.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from safetensors.torch import load as load_safetensors

from edge_client.frame_store import FrameStore, is_held_out, load_images
from edge_client.load_signal import LoadSignal, lower_priority
from edge_client.model_slot import install_model, slot_path
from edge_client.readiness import commit_sync, propose_sync, readiness
from stylizer.atomic_io import atomic_write_bytes
from stylizer.checkpoint import tensor_bytes
from stylizer.device import pick_device
from stylizer.factory import model_from_description
from stylizer.model import StylizerNet
from stylizer.training import (
    PairSampler,
    evaluate,
    load_optimizer_state,
    make_optimizer,
    optimizer_state_tensors,
    train_step,
)

log = logging.getLogger(__name__)
app = ClientApp()


def edge_dir(context: Context) -> Path:
    """This edge's data folder from the node config."""
    config = context.node_config
    if "data-dir" in config:
        return Path(str(config["data-dir"]))
    if "data-root" in config and "partition-id" in config:
        return Path(str(config["data-root"])) / f"edge_{int(config['partition-id'])}"
    raise ValueError("node config needs data-dir (or data-root and partition-id)")


def global_model(msg: Message, context: Context) -> StylizerNet:
    """The global model the message carries, rebuilt against its encoder."""
    config = msg.content["config"]
    description: dict[str, Any] = json.loads(str(config["model"]))
    state = msg.content["arrays"].to_torch_state_dict()
    vgg = context.node_config.get("vgg-weights")
    return model_from_description(description, state, vgg_weights=Path(str(vgg)) if vgg else None,
                                  allow_download=False)


def stored_pairs(store: FrameStore, held_out: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Decoded (contents, styles) of the training or the held-out split."""
    everything = store.frames()
    frames = [f for f in everything if is_held_out(f) == held_out]
    if held_out and not frames:
        log.warning("no held-out frames on this edge yet: evaluating on all %d stored frames", len(everything))
        frames = everything
    styles = store.styles()
    if not frames or not styles:
        split = "held-out" if held_out else "training"
        raise ValueError(f"edge has no {split} frames or no styles stored yet ({len(frames)} frames, "
                         f"{len(styles)} styles)")
    return load_images(frames), load_images(styles)


def optimizer_path(data_dir: Path) -> Path:
    """Where an edge keeps its Adam moments between rounds (edges are long-lived servers)."""
    return data_dir / "model" / "optimizer.safetensors"


def restore_optimizer(optimizer: torch.optim.Optimizer, data_dir: Path) -> None:
    """Continue from this edge's Adam moments of the last round, if they fit."""
    path = optimizer_path(data_dir)
    if not path.is_file():
        return
    try:
        restored = load_optimizer_state(optimizer, load_safetensors(path.read_bytes()))
    except Exception as exc:
        log.warning("ignoring unreadable optimizer state %s: %s", path, exc)
        return
    if not restored:
        log.warning("optimizer state %s does not fit this model; starting Adam afresh", path)


def save_optimizer(optimizer: torch.optim.Optimizer, data_dir: Path) -> None:
    atomic_write_bytes(optimizer_path(data_dir), tensor_bytes(optimizer_state_tensors(optimizer)))


NOT_READY = 4001  # Flower error code of a train reply from an edge with nothing to train on


def _not_ready(msg: Message, reason: str) -> Message:
    log.warning("not ready to train: %s", reason)
    return Message(Error(NOT_READY, f"not ready: {reason}"), reply_to=msg)


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Readiness: new training frames since the last sync, against the images a sync needs."""
    data_dir = edge_dir(context)
    needed = int(msg.content["config"].get("images-per-round", 64))
    store = FrameStore(data_dir, readonly=True)
    try:
        state = readiness(store, data_dir, needed)
    finally:
        store.close()
    return Message(content=RecordDict({
        "metrics": MetricRecord({"new-images": state.new_images, "needed": state.needed,
                                 "ready": int(state.ready)}),
        "config": ConfigRecord({"reason": state.reason(data_dir.name)})}), reply_to=msg)


def _reply(msg: Message, arrays: ArrayRecord | None, metrics: dict[str, float]) -> Message:
    content = RecordDict({"metrics": MetricRecord(metrics)})
    if arrays is not None:
        content["arrays"] = arrays
    return Message(content=content, reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Retrain the global model on this edge's stored frames."""
    torch.set_num_threads(int(context.node_config.get("train-threads", 1)))
    lower_priority(int(context.node_config.get("train-nice", 10)))
    config = msg.content["config"]
    data_dir = edge_dir(context)
    training_began = time.time()
    store = FrameStore(data_dir, readonly=True)
    try:
        contents, styles = stored_pairs(store, held_out=False)
    except ValueError as exc:
        return _not_ready(msg, str(exc))
    finally:
        store.close()
    model = global_model(msg, context).to(pick_device(context.node_config.get("device")))
    batch_size = int(config.get("batch-size", 2))
    images = int(config.get("images-per-round", 64))
    steps = max(1, images // batch_size)
    round_number = int(config.get("global-round", config.get("server-round", 0)))
    seed = int(context.node_config.get("seed", 0)) * 100_003 + round_number
    sampler = PairSampler(contents, styles, base_size=int(config.get("base-size", 64)), seed=seed)
    optimizer = make_optimizer(model, lr=float(config.get("learning-rate", 1e-4)))
    restore_optimizer(optimizer, data_dir)
    load = LoadSignal(data_dir / "serving.load")
    totals = np.zeros(3)
    try:
        for _ in range(steps):
            load.wait_until_idle()
            values = train_step(model, sampler.sample(batch_size), optimizer)
            totals += (values.total, values.content, values.style)
    finally:
        load.close()
    save_optimizer(optimizer, data_dir)
    mean = totals / steps
    metrics = {"num-examples": steps * batch_size, "train_total": float(mean[0]),
               "train_content": float(mean[1]), "train_style": float(mean[2])}
    log.info("edge %s round %d: trained on %d images, loss %.4f", data_dir.name, round_number, steps * batch_size,
             mean[0])
    propose_sync(data_dir, training_began, round_number)
    return _reply(msg, ArrayRecord({k: v.cpu() for k, v in model.trainable_state().items()}), metrics)


NOTHING_TO_EVALUATE = 4002  # Flower error code of an evaluate reply from an edge with no frames to score on


@app.evaluate()
def evaluate_global(msg: Message, context: Context) -> Message:
    """Serve the global model here (every connected edge gets it, trained in the round or not); then
    its losses on this edge's held-out frames, or a Flower error saying there are none to score on."""
    config = msg.content["config"]
    data_dir = edge_dir(context)
    model = global_model(msg, context).to(pick_device(context.node_config.get("device")))
    description = json.loads(str(config["model"]))
    round_number = int(config.get("global-round", config.get("server-round", 0)))
    commit_sync(data_dir, round_number)  # evaluate comes only after the cloud counted the round
    install_model(slot_path(data_dir), {k: v.cpu() for k, v in model.trainable_state().items()},
                  {**description, "round": round_number, "source": "federated round"})
    store = FrameStore(data_dir, readonly=True)
    try:
        contents, styles = stored_pairs(store, held_out=True)
    except ValueError as exc:
        log.info("serving round %d; nothing to evaluate it on: %s", round_number, exc)
        return Message(Error(NOTHING_TO_EVALUATE, f"serving round {round_number}; not evaluated: {exc}"),
                       reply_to=msg)
    finally:
        store.close()
    count = int(config.get("eval-images", 8))
    sampler = PairSampler(contents, styles, base_size=int(config.get("base-size", 64)), seed=12345)
    batches = list(sampler.batches(max(1, count // 2), batch_size=2))
    values = evaluate(model, batches)
    return _reply(msg, None, {"num-examples": len(batches) * 2, "eval_total": values.total,
                              "eval_content": values.content, "eval_style": values.style})
