"""The edge's ClientApp handlers called directly with Flower messages (no Flower run around them)."""

import json

import pytest
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from edge_client.app import NOTHING_TO_EVALUATE, evaluate_global
from edge_client.frame_store import FrameStore
from edge_client.model_slot import slot_path
from stylizer import StylizerConfig, build_model, load_checkpoint, save_model
from stylizer.encoder_weights import seeded_weights


@pytest.fixture
def in_a_run(monkeypatch):
    for name in ("_run_id", "_node_id", "_task_id"):  # what Flower sets in the process it runs an app in
        monkeypatch.setattr(TaskIdentity, name, 1)


def global_model_message(tmp_path, round_number: int) -> Message:
    torch.manual_seed(0)
    model = build_model(StylizerConfig(decoder_width=0.25), seeded_weights(0, announce=False))
    save_model(tmp_path / "global.safetensors", model, source="test")
    checkpoint = load_checkpoint(tmp_path / "global.safetensors")
    description = {"encoder": checkpoint.metadata["encoder"], "config": checkpoint.metadata["config"]}
    config = ConfigRecord({"model": json.dumps(description), "global-round": round_number, "eval-images": 2,
                           "base-size": 32})
    content = RecordDict({"arrays": ArrayRecord(checkpoint.state), "config": config})
    return Message(content, dst_node_id=7, message_type=MessageType.EVALUATE)


def test_an_edge_that_did_not_train_still_serves_the_new_global_model(tmp_path, in_a_run):
    data_dir = tmp_path / "edge"
    FrameStore(data_dir).close()  # nothing stored: it was not ready, so it sat the round out
    context = Context(run_id=1, node_id=7, node_config={"data-dir": str(data_dir)}, state=RecordDict(),
                      run_config={})
    reply = evaluate_global(global_model_message(tmp_path, 3), context)
    assert reply.has_error() and reply.error.code == NOTHING_TO_EVALUATE
    assert "serving round 3" in reply.error.reason
    served = load_checkpoint(slot_path(data_dir))
    assert served.metadata["round"] == 3
    assert served.sha256 == load_checkpoint(tmp_path / "global.safetensors").sha256
