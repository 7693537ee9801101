"""Training between syncs: the background trainer, the query that reports it, and the train reply
that sends what it learned (ClientApp handlers called with real Flower messages, no Flower run)."""

import io
import json

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.supercore.task_identity import TaskIdentity
from PIL import Image

from edge_client.app import evaluate_global, query, train
from edge_client.frame_store import FrameStore
from edge_client.local_training import LocalTrainer, local_path, read_local
from edge_client.readiness import new_training_frames
from fedvst.samples import sample_photo
from stylizer import StylizerConfig, build_model, load_checkpoint, save_model
from stylizer.checkpoint import state_sha256
from stylizer.encoder_weights import seeded_weights

SETTINGS = {"images-per-round": 4, "batch-size": 2, "learning-rate": 1e-3, "base-size": 32}


@pytest.fixture
def in_a_run(monkeypatch):
    for name in ("_run_id", "_node_id", "_task_id"):  # what Flower sets in the process it runs an app in
        monkeypatch.setattr(TaskIdentity, name, 1)


def keep_frames(data_dir, photo: str, count: int, offset: int = 0) -> None:
    store = FrameStore(data_dir)
    image = Image.open(sample_photo(photo)).convert("RGB")
    for i in range(offset, offset + count):
        buffer = io.BytesIO()
        image.crop((i * 7, i * 5, i * 7 + 64, i * 5 + 48)).save(buffer, format="PNG")
        store.add_frame(buffer.getvalue())
    if not store.styles():
        buffer = io.BytesIO()
        Image.open(sample_photo("rocket")).convert("RGB").crop((0, 0, 96, 96)).save(buffer, format="PNG")
        store.add_style(buffer.getvalue())
    store.close()


def new_frames(data_dir) -> int:
    store = FrameStore(data_dir, readonly=True)
    try:
        return len(new_training_frames(store, data_dir))
    finally:
        store.close()


def message(kind: str, state: dict, description: dict, round_number: int, **config) -> Message:
    record = ConfigRecord({"model": json.dumps(description), "global-round": round_number, "eval-images": 2,
                           **SETTINGS, **config})
    return Message(RecordDict({"arrays": ArrayRecord(state), "config": record}), dst_node_id=7,
                   message_type=kind)


def query_message(global_state: dict) -> Message:
    config = ConfigRecord({**SETTINGS, "global-sha256": state_sha256(global_state)})
    return Message(RecordDict({"config": config}), dst_node_id=7, message_type=MessageType.QUERY)


def answer(reply: Message) -> tuple[bool, str]:
    return bool(reply.content["metrics"]["ready"]), str(reply.content["config"]["reason"])


def test_an_edge_trains_between_syncs_and_its_sync_sends_what_it_learned(tmp_path, in_a_run):
    torch.manual_seed(0)
    save_model(tmp_path / "global.safetensors", build_model(StylizerConfig(decoder_width=0.25),
                                                            seeded_weights(0, announce=False)), source="test")
    checkpoint = load_checkpoint(tmp_path / "global.safetensors")
    description = {"encoder": checkpoint.metadata["encoder"], "config": checkpoint.metadata["config"]}
    global_state = checkpoint.state
    data_dir = tmp_path / "edge"
    keep_frames(data_dir, "astronaut", 7)
    context = Context(run_id=1, node_id=7, node_config={"data-dir": str(data_dir), "local-training": True},
                      state=RecordDict(), run_config={})
    evaluate_global(message(MessageType.EVALUATE, global_state, description, 3), context)  # now served here
    fresh = new_frames(data_dir)
    assert fresh >= SETTINGS["images-per-round"]

    # frames are here, but nothing is trained yet: not ready (without a trainer, 7 frames would be)
    ready, reason = answer(query(query_message(global_state), context))
    assert not ready and "trained on 0 of 4" in reason

    trainer = LocalTrainer(data_dir, device="cpu", save_every_s=1e9)
    trained = trainer.run_pass()
    assert trained == fresh - fresh % 2  # one image per new frame, in whole batches of 2
    local = read_local(data_dir)
    assert local is not None and local.images_trained == trained
    assert local.base_sha256 == state_sha256(global_state)
    assert trainer.run_pass() == 0  # nothing new since: it waits instead of re-training old frames
    ready, reason = answer(query(query_message(global_state), context))
    assert ready and f"trained on {trained} of 4" in reason

    # the sync replies with the local model as it is: no training in the handler
    reply = train(message(MessageType.TRAIN, global_state, description, 4), context)
    assert not reply.has_error()
    sent = reply.content["arrays"].to_torch_state_dict()
    learned = load_checkpoint(local_path(data_dir)).state
    assert sent.keys() == global_state.keys()
    assert all(torch.equal(sent[k], learned[k]) for k in sent)
    assert any(not torch.equal(sent[k], global_state[k]) for k in sent)
    assert reply.content["metrics"]["num-examples"] == trained

    # a train message for another global model trains itself, on images-per-round images
    other = {k: v + 0.01 for k, v in global_state.items()}
    fallback = train(message(MessageType.TRAIN, other, description, 4), context)
    assert fallback.content["metrics"]["num-examples"] == SETTINGS["images-per-round"]

    # the cloud counted round 4 and sends its model: the trainer starts over from it, and only
    # frames kept after what the reply counted are new (here: none, then 4 more)
    round_4 = {k: v + 0.02 for k, v in global_state.items()}
    train(message(MessageType.TRAIN, global_state, description, 4), context)  # the reply the cloud counted
    evaluate_global(message(MessageType.EVALUATE, round_4, description, 4), context)
    assert new_frames(data_dir) == fresh - trained
    assert trainer.run_pass() == 0 and trainer.images_trained == 0
    assert trainer.base is not None and trainer.base.sha256 == state_sha256(round_4)
    keep_frames(data_dir, "coffee", 5, offset=10)
    more = new_frames(data_dir)
    assert trainer.run_pass() == more - more % 2
    assert read_local(data_dir).base_sha256 == state_sha256(round_4)

    # a restarted trainer resumes what was saved rather than starting over
    resumed = LocalTrainer(data_dir, device="cpu")
    assert resumed.run_pass() == 0 and resumed.images_trained == trainer.images_trained

    # a damaged local model is never sent (the message trains itself), and the trainer starts afresh
    local_path(data_dir).write_bytes(b"damaged")
    fallback = train(message(MessageType.TRAIN, round_4, description, 5), context)
    assert fallback.content["metrics"]["num-examples"] == SETTINGS["images-per-round"]
    afresh = LocalTrainer(data_dir, device="cpu")
    assert afresh.run_pass() == more - more % 2 and read_local(data_dir).images_trained == more - more % 2
    # issue 26: the damaged file is moved aside under a name of its own, not written over
    moved = (data_dir / "quarantine" / "model").glob("local.safetensors.*")
    assert [p.read_bytes() for p in moved] == [b"damaged"]


def test_training_counts_for_the_round_it_grew_from_not_for_a_later_round_with_equal_weights(tmp_path,
                                                                                              small_model):
    """A round whose weights equal the last one's (same hash) is still a new round: training done on
    the round before does not make the edge ready again, nor is it sent as this round's reply."""
    from edge_client.local_training import local_reply
    from edge_client.model_slot import install_model, slot_path
    from stylizer.checkpoint import save_checkpoint

    slot = slot_path(tmp_path)
    slot.parent.mkdir(parents=True)
    save_model(slot, small_model, round=4)
    base = load_checkpoint(slot)
    local_metadata = {"encoder": base.metadata["encoder"], "config": base.metadata["config"],
                      "base_sha256": base.sha256, "base_round": 4, "images_trained": 24, "frames_until": 0.0,
                      "steps": 12, "losses": {"train_total": 1.0}}
    save_checkpoint(local_path(tmp_path), base.state, local_metadata)
    assert local_reply(tmp_path, base.sha256) is not None  # grew from round 4, which the slot serves
    install_model(slot, base.state, {**base.metadata, "round": 5})  # round 5: the same weights
    assert read_local(tmp_path).grew_from(base.sha256, 4) and not read_local(tmp_path).grew_from(base.sha256, 5)
    assert local_reply(tmp_path, base.sha256) is None  # round 4's training is not round 5's


def test_local_epochs_from_the_cloud_give_each_new_image_more_steps_not_more_count(tmp_path, small_model):
    """run config local-epochs = 3 (FedAvg's E), sent with the query: the trainer takes 3 steps per
    batch of new images, and still counts each new image once towards images-per-round."""
    from edge_client.local_training import save_settings
    from edge_client.model_slot import slot_path

    slot = slot_path(tmp_path)
    slot.parent.mkdir(parents=True)
    save_model(slot, small_model, round=1)
    keep_frames(tmp_path, "astronaut", 6)
    save_settings(tmp_path, {**SETTINGS, "local-epochs": 3, "unknown": 1})
    trainer = LocalTrainer(tmp_path, device="cpu", save_every_s=1e9)
    trained = trainer.run_pass()
    assert trained == new_frames(tmp_path) - new_frames(tmp_path) % 2 and trained >= 4
    assert trainer.steps == 3 * trained // 2 and trainer.images_trained == trained
    record = read_local(tmp_path)
    assert record is not None and record.images_trained == trained
