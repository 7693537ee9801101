"""Flower ClientApp of an edge (``edge_client.app:app``): Algorithm 2, client side.

query: say whether this edge is ready to sync (``readiness.py``): its background trainer
(``local_training.py``) has trained the cloud's current global model on ``images-per-round`` new
images, or, where no trainer runs (simulations, an edge serving another model), that many new
frames were kept since the last sync. train: reply with that locally trained model as it is; else
load the global arrays, train on a sample of the frames phones left here (paired with the styles
they used), and reply with the new arrays. Either way with ``num-examples`` and the Eq. 5 losses;
an edge with nothing to train on replies with a Flower error that says why.
evaluate: put the global model in the edge's model slot so the service serves it (every
connected edge, whether it trained in the round or not), then report the same losses of it on
held-out stored frames.

Node config: ``data-dir`` (the edge's data folder), optional ``vgg-weights``,
``train-threads``, ``local-training`` (set by ``fedvst edge serve``: a background trainer runs).
In simulations, ``data-root`` + ``partition-id`` pick the folder.
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

from edge_client.frame_store import FrameStore
from edge_client.load_signal import LoadSignal, lower_priority
from edge_client.local_training import (
    local_reply,
    read_local,
    restore_optimizer,
    save_optimizer,
    save_settings,
    stored_pairs,
)
from edge_client.model_slot import install_model, recorded_round, recorded_sha256, slot_path
from edge_client.readiness import commit_sync, propose_sync, readiness
from edge_client.style_bank import NONE, bank_pictures
from stylizer.checkpoint import state_sha256
from stylizer.device import pick_device
from stylizer.factory import model_from_description
from stylizer.model import StylizerNet
from stylizer.training import PairSampler, evaluate, make_optimizer, train_step

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


NAME_KEY = "name"  # node config: the edge's name (``fedvst edge serve --name``)


def edge_name(context: Context) -> str:
    """How the cloud names this edge: ``fedvst edge serve --name`` (host:port unless given), else, in
    simulations, its data folder's name."""
    name = context.node_config.get(NAME_KEY)
    return str(name) if name else edge_dir(context).name


def global_model(msg: Message, context: Context) -> StylizerNet:
    """The global model the message carries, rebuilt against its encoder."""
    config = msg.content["config"]
    description: dict[str, Any] = json.loads(str(config["model"]))
    state = msg.content["arrays"].to_torch_state_dict()
    vgg = context.node_config.get("vgg-weights")
    return model_from_description(description, state, vgg_weights=Path(str(vgg)) if vgg else None,
                                  allow_download=False)


TRAIN_SECONDS = "train_seconds"  # reply metric: seconds this train message spent in training steps
NOT_READY = 4001  # Flower error code of a train reply from an edge with nothing to train on


def _not_ready(msg: Message, reason: str) -> Message:
    log.warning("not ready to train: %s", reason)
    return Message(Error(NOT_READY, f"not ready: {reason}"), reply_to=msg)


def trained_since_sync(context: Context, data_dir: Path, global_sha256: str) -> int | None:
    """Images this edge's background trainer has trained on since the last sync, when it trains the
    cloud's current global model (its slot serves it); None where no trainer runs (simulations) or
    the edge serves another model: then readiness counts new frames and the train message trains."""
    if not context.node_config.get("local-training") or not global_sha256:
        return None
    if recorded_sha256(slot_path(data_dir)) != global_sha256:
        return None
    local = read_local(data_dir)
    served_round = recorded_round(slot_path(data_dir))
    return local.images_trained if local is not None and local.grew_from(global_sha256, served_round) else 0


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Readiness: images trained on (or, without a trainer, new frames) since the last sync, against
    the images a sync needs. Keeps the cloud's training settings for the trainer."""
    data_dir = edge_dir(context)
    config = msg.content["config"]
    needed = int(config.get("images-per-round", 64))
    save_settings(data_dir, dict(config))
    trained = trained_since_sync(context, data_dir, str(config.get("global-sha256", "")))
    store = FrameStore(data_dir, readonly=True)
    try:
        state = readiness(store, data_dir, needed, trained=trained)
    finally:
        store.close()
    name = edge_name(context)
    serving = recorded_round(slot_path(data_dir))
    return Message(content=RecordDict({
        "metrics": MetricRecord({"new-images": state.new_images, "needed": state.needed, "ready": int(state.ready),
                                 "trained": -1 if state.trained is None else state.trained,
                                 "serving-round": -1 if serving is None else serving}),
        "config": ConfigRecord({"reason": state.reason(name), NAME_KEY: name})}), reply_to=msg)


def _reply(msg: Message, arrays: ArrayRecord | None, metrics: dict[str, float]) -> Message:
    content = RecordDict({"metrics": MetricRecord(metrics)})
    if arrays is not None:
        content["arrays"] = arrays
    return Message(content=content, reply_to=msg)


def reply_with_local(msg: Message, data_dir: Path, round_number: int, name: str) -> Message | None:
    """The train reply from what the background trainer learned on the global model the message
    carries, as it is now; None if it has nothing for that model."""
    found = local_reply(data_dir, state_sha256(msg.content["arrays"].to_torch_state_dict()))
    if found is None:
        return None
    checkpoint, local = found
    log.info("edge %s round %d: replying with what it trained between syncs (%d images, loss %.4f)", name, round_number,
             local.images_trained, local.losses.get("train_total", float("nan")))
    propose_sync(data_dir, local.frames_until, round_number)
    return _reply(msg, ArrayRecord(checkpoint.state), {"num-examples": local.images_trained, **local.losses})


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Reply with the model trained between syncs, else retrain the global model on this edge's
    stored frames now."""
    config = msg.content["config"]
    data_dir = edge_dir(context)
    round_number = int(config.get("global-round", config.get("server-round", 0)))
    if context.node_config.get("local-training"):  # else (simulations, --no-train-between-syncs) train here
        replied = reply_with_local(msg, data_dir, round_number, edge_name(context))
        if replied is not None:
            return replied
    torch.set_num_threads(int(context.node_config.get("train-threads", 1)))
    lower_priority(int(context.node_config.get("train-nice", 10)))
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
    examples = max(1, images // batch_size) * batch_size  # the images this round learns from (FedAvg's weight)
    steps = examples // batch_size * max(1, int(config.get("local-epochs", 1)))  # local-epochs steps per batch
    seed = int(context.node_config.get("seed", 0)) * 100_003 + round_number
    styles = styles + list(bank_pictures(str(context.node_config.get("style-bank", NONE))))
    sampler = PairSampler(contents, styles, base_size=int(config.get("base-size", 64)), seed=seed)
    optimizer = make_optimizer(model, lr=float(config.get("learning-rate", 1e-4)))
    restore_optimizer(optimizer, data_dir)
    load = LoadSignal(data_dir / "serving.load")
    totals = np.zeros(3)
    stepping = 0.0  # seconds in training steps alone (no waiting for phones, no loading)
    try:
        for _ in range(steps):
            load.wait_until_idle()
            started = time.perf_counter()
            values = train_step(model, sampler.sample(batch_size), optimizer)
            stepping += time.perf_counter() - started
            totals += (values.total, values.content, values.style)
    finally:
        load.close()
    save_optimizer(optimizer, data_dir)
    mean = totals / steps
    metrics = {"num-examples": examples, "train_total": float(mean[0]),
               "train_content": float(mean[1]), "train_style": float(mean[2]), TRAIN_SECONDS: round(stepping, 4)}
    log.info("edge %s round %d: trained on %d images (%d steps), loss %.4f", edge_name(context), round_number,
             examples, steps, mean[0])
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
