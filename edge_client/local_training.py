"""Training between syncs: the paper's edge trains on the frames phones leave, while idle, and
syncs once it has trained on enough of them (seeds/000 §3.4, Algorithm 2).

``fedvst edge serve --cloud`` runs ``python -m edge_client.local_training`` beside its service, at
idle priority. It starts from the model the edge serves (the last global one, in the model slot)
and trains one image per new training frame kept since the last sync, as frames arrive, pausing
while phones are being served. What it learned is kept in ``model/local.safetensors`` (+ .json:
the base model's sha256, the images trained, the newest frame they cover, the mean losses), saved
atomically every ``save_every_s`` and whenever it runs out of new frames, so a crash loses at most
that much work. When the slot's model changes (a new global round), it starts over from it.

The ClientApp's query reports this edge ready once the local model, grown from the cloud's current
global model, has trained on ``images-per-round`` images; its train handler then replies with the
local model as it is, without training (``local_reply``). The cloud's training settings reach
this process through the query (``model/train_settings.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_safetensors

from edge_client.frame_store import QUARANTINE, FrameStore, is_held_out, load_images
from edge_client.load_signal import LoadSignal, lower_priority
from edge_client.model_slot import recorded_round, recorded_sha256, slot_path
from edge_client.readiness import last_sync, new_training_frames
from edge_client.style_bank import NONE, SAMPLES, bank_pictures
from stylizer.atomic_io import atomic_write_bytes
from stylizer.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    metadata_path,
    move_checkpoint_aside,
    save_checkpoint,
    tensor_bytes,
)
from stylizer.device import pick_device
from stylizer.factory import model_from_checkpoint, model_from_description
from stylizer.model import StylizerNet
from stylizer.training import (
    PairSampler,
    load_optimizer_state,
    make_optimizer,
    optimizer_state_tensors,
    train_step,
)

log = logging.getLogger(__name__)

# the cloud's training settings, sent with its query
SETTING_KEYS = ("images-per-round", "batch-size", "local-epochs", "learning-rate", "base-size")
MAX_POOL_FRAMES = 256  # frames decoded per pass: every new one first, then a random sample of older ones


def local_path(data_dir: Path) -> Path:
    """Where the model trained since the last sync lives."""
    return Path(data_dir) / "model" / "local.safetensors"


def settings_path(data_dir: Path) -> Path:
    return Path(data_dir) / "model" / "train_settings.json"


def optimizer_path(data_dir: Path) -> Path:
    """Where an edge keeps its Adam moments between rounds (edges are long-lived servers)."""
    return Path(data_dir) / "model" / "optimizer.safetensors"


def save_settings(data_dir: Path, config: dict[str, Any]) -> None:
    """Keep the cloud's training settings (from a query) for the trainer; written only when changed."""
    wanted = {k: config[k] for k in SETTING_KEYS if k in config}
    if load_settings(data_dir) == wanted:
        return
    atomic_write_bytes(settings_path(data_dir), json.dumps(wanted, sort_keys=True).encode())


def load_settings(data_dir: Path) -> dict[str, Any] | None:
    """The cloud's last training settings, or None before its first query."""
    try:
        record = json.loads(settings_path(data_dir).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


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


@dataclass(frozen=True)
class LocalModel:
    """What ``local.safetensors`` records about the training since the last sync."""

    base_sha256: str
    images_trained: int
    frames_until: float  # kept-time of the newest new frame the training counted (epoch s)
    losses: dict[str, float]
    base_round: int | None = None  # the global round it grew from: a round is counted by number, not by hash

    def grew_from(self, sha256: str | None, round_number: int | None) -> bool:
        """Whether this training started from the global model ``sha256`` of round ``round_number``
        (a round whose weights equal the last one's is still a new round: its training starts at 0)."""
        return self.base_sha256 == sha256 and self.base_round == round_number


def read_local(data_dir: Path) -> LocalModel | None:
    """The local model's record (metadata only, cheap), or None if there is none or it is unreadable."""
    try:
        return read_local_from(json.loads(metadata_path(local_path(data_dir)).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def local_reply(data_dir: Path, global_sha256: str, attempts: int = 3) -> tuple[Checkpoint, LocalModel] | None:
    """The verified local model if it grew from the global model ``global_sha256`` and trained on
    something; None otherwise (the train message then trains itself). A pair read while the
    trainer rewrites it is read again."""
    for _ in range(attempts):
        record = read_local(data_dir)
        if (record is None or not record.grew_from(global_sha256, recorded_round(slot_path(data_dir)))
                or record.images_trained <= 0):
            return None
        try:
            checkpoint = load_checkpoint(local_path(data_dir))
        except (CheckpointError, OSError):
            time.sleep(0.2)
            continue
        if checkpoint.metadata.get("base_sha256") == global_sha256:
            return checkpoint, read_local_from(checkpoint.metadata)
    return None


def read_local_from(metadata: dict[str, Any]) -> LocalModel:
    """The local model's record from its checkpoint metadata (KeyError/ValueError if it lacks one)."""
    base_round = metadata.get("base_round")
    return LocalModel(str(metadata["base_sha256"]), int(metadata["images_trained"]), float(metadata["frames_until"]),
                      {k: float(v) for k, v in dict(metadata.get("losses", {})).items()},
                      base_round if isinstance(base_round, int) and not isinstance(base_round, bool) else None)


class LocalTrainer:
    """Trains the served model on new frames between syncs (one edge, one process)."""

    def __init__(self, data_dir: Path, *, device: str | None = None, vgg_weights: Path | None = None,
                 seed: int = 0, save_every_s: float = 30.0, style_bank: str = NONE) -> None:
        self.data_dir = Path(data_dir)
        self.style_bank = style_bank  # besides the phones' styles (``edge_client.style_bank``)
        self.device = pick_device(device)
        self.vgg_weights = vgg_weights
        self.seed = seed
        self.save_every_s = save_every_s
        self.stop = threading.Event()
        self.model: StylizerNet | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.base: Checkpoint | None = None
        self.images_trained = 0
        self.frames_until = 0.0
        self.loss_sums = np.zeros(3)
        self.steps = 0
        self.passes = 0
        self._waiting_said = ""

    def _say_waiting(self, why: str) -> None:
        if why != self._waiting_said:
            log.info("local training waits: %s", why)
            self._waiting_said = why

    def _start_from_slot(self, learning_rate: float) -> bool:
        """(Re)base on the slot's model: resume ``local.safetensors`` if it grew from it, else start
        fresh. False if the slot holds no verified model right now."""
        try:
            base = load_checkpoint(slot_path(self.data_dir))
        except (CheckpointError, OSError) as exc:
            self._say_waiting(f"no verified model in the slot ({exc})")
            return False
        self.base = base
        self.images_trained, self.frames_until, self.loss_sums, self.steps = 0, 0.0, np.zeros(3), 0
        model = None
        local = read_local(self.data_dir)
        if local is not None and local.grew_from(base.sha256, base.metadata.get("round")):
            try:
                checkpoint = load_checkpoint(local_path(self.data_dir))
                saved = read_local_from(checkpoint.metadata)
                model = model_from_description(base.metadata, checkpoint.state, vgg_weights=self.vgg_weights,
                                               allow_download=False)
            except (CheckpointError, OSError, KeyError, ValueError, RuntimeError) as exc:
                moved = move_checkpoint_aside(local_path(self.data_dir), self.data_dir / QUARANTINE / "model")
                log.warning("starting local training afresh: %s is unusable (%s); moved to %s",
                            local_path(self.data_dir), exc, moved[0].parent if moved else "nowhere (gone)")
            else:
                self.images_trained, self.frames_until = saved.images_trained, saved.frames_until
                self.steps = int(checkpoint.metadata.get("steps", 0))
                self.loss_sums = np.array([saved.losses.get(k, 0.0) for k in ("train_total", "train_content",
                                                                                 "train_style")]) * self.steps
                log.info("resuming local training on round %s: %d images trained", base.metadata.get("round"),
                         self.images_trained)
        if model is None:  # nothing to resume: the served model itself
            model = model_from_checkpoint(base, vgg_weights=self.vgg_weights, allow_download=False)
        self.model = model.to(self.device)
        self.optimizer = make_optimizer(self.model, lr=learning_rate)
        restore_optimizer(self.optimizer, self.data_dir)
        return True

    def _base_changed(self) -> bool:
        slot = slot_path(self.data_dir)
        return (self.base is None or recorded_sha256(slot) != self.base.sha256
                or recorded_round(slot) != self.base.metadata.get("round"))

    def save(self) -> None:
        """Write the local model and its record atomically (nothing if nothing was trained)."""
        if self.model is None or self.base is None or self.images_trained == 0:
            return
        steps = max(self.steps, 1)
        losses = dict(zip(("train_total", "train_content", "train_style"), (self.loss_sums / steps).tolist(),
                          strict=True))
        metadata = {"encoder": self.base.metadata["encoder"], "config": self.base.metadata["config"],
                    "base_sha256": self.base.sha256, "base_round": self.base.metadata.get("round"),
                    "images_trained": self.images_trained, "frames_until": self.frames_until, "steps": self.steps,
                    "losses": losses, "source": "local training", "saved": time.time()}
        save_checkpoint(local_path(self.data_dir), {k: v.detach().cpu() for k, v in
                                                    self.model.trainable_state().items()}, metadata)
        if self.optimizer is not None:
            save_optimizer(self.optimizer, self.data_dir)

    def run_pass(self) -> int:
        """Train on the new frames not yet trained on (``local-epochs`` steps of ``batch-size`` pairs per
        ``batch-size`` new images: one step each by default); returns the new images trained on."""
        settings = load_settings(self.data_dir)
        if settings is None:
            self._say_waiting("the cloud has not sent its training settings yet (they come with its first query)")
            return 0
        batch_size = max(1, int(settings.get("batch-size", 2)))
        epochs = max(1, int(settings.get("local-epochs", 1)))
        if self._base_changed() and not self._start_from_slot(float(settings.get("learning-rate", 1e-4))):
            return 0
        store = FrameStore(self.data_dir, readonly=True)
        try:
            new = new_training_frames(store, self.data_dir)
            budget = len(new) - self.images_trained
            styles = store.styles()
            if budget < batch_size or not styles:
                self._say_waiting(f"{len(new)} new training frames, {self.images_trained} trained on"
                                  f"{'' if styles else ', no style stored yet'}")
                return 0
            rng = random.Random(self.seed * 100_003 + self.passes)
            older = [f for f in store.frames() if not is_held_out(f) and f.created <= last_sync(self.data_dir)]
            pool = new[-MAX_POOL_FRAMES:] + rng.sample(older, min(len(older), max(0, MAX_POOL_FRAMES - len(new))))
            contents, style_images = load_images(pool), load_images(styles) + list(bank_pictures(self.style_bank))
        finally:
            store.close()
        if not contents or not style_images:
            return 0
        self._waiting_said = ""
        self.passes += 1
        sampler = PairSampler(contents, style_images, base_size=int(settings.get("base-size", 64)),
                              seed=self.seed * 100_003 + self.passes)
        load = LoadSignal(self.data_dir / "serving.load")
        trained, last_save = 0, time.monotonic()
        try:
            for _ in range(budget // batch_size):
                if self.stop.is_set() or self._base_changed():
                    break
                for _ in range(epochs):  # each new image's share of steps: local-epochs of them
                    load.wait_until_idle()
                    values = train_step(self.model, sampler.sample(batch_size), self.optimizer)
                    self.loss_sums += (values.total, values.content, values.style)
                    self.steps += 1
                self.images_trained += batch_size
                trained += batch_size
                self.frames_until = new[min(self.images_trained, len(new)) - 1].created
                if time.monotonic() - last_save > self.save_every_s:
                    self.save()
                    last_save = time.monotonic()
        finally:
            load.close()
        if trained and not self._base_changed():
            self.save()
            log.info("local training on round %s: %d images trained since the last sync (loss %.4f)",
                     self.base.metadata.get("round") if self.base else "?", self.images_trained,
                     self.loss_sums[0] / max(self.steps, 1))
        return trained

    def run(self, poll_s: float = 2.0) -> None:
        """Train whenever there is something new, until ``stop`` is set; saves before returning."""
        while not self.stop.is_set():
            try:
                trained = self.run_pass()
            except Exception:  # a bad batch or a full disk must not end the edge's training for good
                log.exception("local training pass failed; trying again in %.0f s", poll_s * 5)
                self.stop.wait(poll_s * 5)
                continue
            if not trained:
                self.stop.wait(poll_s)
        if not self._base_changed():
            self.save()


def main(argv: list[str] | None = None) -> None:
    """``python -m edge_client.local_training --data-dir DATA``: train between syncs until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--vgg-weights", type=Path)
    parser.add_argument("--device")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-every-s", type=float, default=30.0)
    parser.add_argument("--style-bank", default=NONE,
                        help=f"'{SAMPLES}', '{NONE}' or a folder (edge_client.style_bank)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(max(1, args.threads))
    priority = lower_priority()
    trainer = LocalTrainer(args.data_dir, device=args.device, vgg_weights=args.vgg_weights, seed=args.seed,
                           save_every_s=args.save_every_s, style_bank=args.style_bank)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: trainer.stop.set())
    log.info("local training for %s on %s (%s, %d threads), style bank: %s", args.data_dir, trainer.device, priority,
             args.threads, args.style_bank)
    trainer.run()


if __name__ == "__main__":
    main()
