import json

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
