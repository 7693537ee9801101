import json

import pytest
import torch

from cloud_server.store import CheckpointStore, round_path


def state(value: float) -> dict[str, torch.Tensor]:
    return {"decoder.w": torch.full((3, 3), value), "decoder.b": torch.full((3,), value)}


def test_survives_a_truncated_newest_checkpoint(tmp_path, caplog):
    store = CheckpointStore(tmp_path, keep=3)
    for r in (1, 2, 3):
        store.save(r, state(float(r)), {"metrics": {"train_total": 1.0 / r}})
    newest = round_path(tmp_path, 3)
    newest.write_bytes(newest.read_bytes()[:50])
    latest = store.latest()
    assert latest.round == 2
    assert torch.equal(latest.checkpoint.state["decoder.w"], state(2.0)["decoder.w"])
    assert "round 3 is unusable" in caplog.text


def test_keeps_last_k_and_the_best(tmp_path):
    store = CheckpointStore(tmp_path, keep=2)
    losses = {1: 0.2, 2: 0.9, 3: 0.8, 4: 0.7, 5: 0.6}
    for r, loss in losses.items():
        store.save(r, state(float(r)), {"metrics": {"train_total": loss}})
    assert store.rounds() == [1, 4, 5]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["best"] == 1 and manifest["latest"] == 5
    assert [e["round"] for e in manifest["rounds"]] == [1, 4, 5]


def test_evaluation_metrics_update_the_json_only(tmp_path):
    store = CheckpointStore(tmp_path)
    digest = store.save(1, state(1.0), {"metrics": {"train_total": 0.5}})
    store.update_metrics(1, {"eval_total": 0.4})
    loaded = store.load(1).checkpoint
    assert loaded.sha256 == digest
    assert loaded.metadata["metrics"] == {"train_total": 0.5, "eval_total": 0.4}


def test_leftover_temp_files_are_ignored(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save(1, state(1.0), {})
    (tmp_path / ".round_000002.safetensors.abc.tmp").write_bytes(b"partial")
    assert store.rounds() == [1] and store.latest().round == 1


def _corrupt_every_round(folder, rounds):
    for r in rounds:
        path = round_path(folder, r)
        path.write_bytes(path.read_bytes()[:40])


def test_damaged_rounds_are_quarantined_and_never_hold_a_kept_slot(tmp_path, caplog):
    """Case 2: corrupt rounds kept the "last K" slots, so the round written next was pruned at once."""
    store = CheckpointStore(tmp_path, keep=2)
    for r in (1, 2, 3):
        store.save(r, state(float(r)), {"metrics": {"train_total": 1.0}})
    _corrupt_every_round(tmp_path, (2, 3))
    assert store.latest(quarantine=True).round == 1
    assert store.rounds() == [1] and store.quarantined_rounds() == [2, 3]
    assert "moved to" in caplog.text
    store.save(4, state(4.0), {"metrics": {"train_total": 1.0}})
    assert store.rounds() == [1, 4]


def test_a_second_damaged_round_of_the_same_number_never_replaces_the_first_in_quarantine(tmp_path):
    """Issue 26: quarantine renamed to a fixed name, so the second damaged round 3 replaced the first."""
    store = CheckpointStore(tmp_path)
    store.save(1, state(1.0), {})
    kept = []
    for value in (3.0, 4.0):
        store.save(3, state(value), {})
        _corrupt_every_round(tmp_path, (3,))
        kept.append(round_path(tmp_path, 3).read_bytes())
        assert store.latest(quarantine=True).round == 1
    moved = sorted((tmp_path / "quarantine").iterdir())
    assert len(moved) == 4 and store.quarantined_rounds() == [3]
    assert sorted(p.read_bytes() for p in moved if ".safetensors." in p.name) == sorted(kept)


def test_a_reader_only_skips_damaged_rounds(tmp_path):
    store = CheckpointStore(tmp_path)
    for r in (1, 2):
        store.save(r, state(float(r)), {})
    _corrupt_every_round(tmp_path, (2,))
    assert store.latest().round == 1 and store.rounds() == [1, 2]


def test_starting_over_when_every_round_is_damaged_needs_fresh(tmp_path, caplog):
    from cloud_server.app import starting_point
    from stylizer.checkpoint import CheckpointError

    store = CheckpointStore(tmp_path / "checkpoints")
    done, initial_state, _ = starting_point(store, "")
    assert done == 0
    store.save(1, initial_state, store.load(0).checkpoint.metadata)
    _corrupt_every_round(store.folder, (0, 1))
    with pytest.raises(CheckpointError, match="--fresh"):
        starting_point(store, "")
    assert store.rounds() == []  # nothing was written over the damage
    done, _, _ = starting_point(store, "", fresh=True)
    assert done == 0 and store.rounds() == [0] and store.quarantined_rounds() == [0, 1]
    assert "starting over" in caplog.text


@pytest.mark.parametrize("round_number", [-5, -(2 ** 63)])
def test_the_registry_refuses_round_numbers_below_zero(tmp_path, round_number):
    """Issue 26: GetModel(-5) and GetModel(INT64_MIN) quietly returned the newest round."""
    import grpc

    from cloud_server.registry import start_registry
    from fedvst.protocol import fedvst_pb2, fedvst_pb2_grpc

    store = CheckpointStore(tmp_path)
    store.save(2, state(2.0), {})
    server, port = start_registry(tmp_path, "127.0.0.1:0")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = fedvst_pb2_grpc.ModelRegistryStub(channel)
            newest = list(stub.GetModel(fedvst_pb2.GetModelRequest(round=-1), timeout=30))
            assert newest[0].header.round == 2
            with pytest.raises(grpc.RpcError) as refused:
                list(stub.GetModel(fedvst_pb2.GetModelRequest(round=round_number), timeout=30))
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "ask for a round ≥ 0, or -1 for the newest" in refused.value.details()
    finally:
        server.stop(1)
