"""The cloud's FedAvgM step: η, β, name matching, and momentum that survives a restart."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord

from cloud_server.server_optimizer import ServerOptimizer
from cloud_server.store import CheckpointStore
from cloud_server.strategy import FedVstStrategy, make_aggregator
from tests.cloud_server.test_strategy import SHAPES, arrays, as_numpy, reply


def record(values: dict[str, np.ndarray], order: list[str] | None = None) -> ArrayRecord:
    return ArrayRecord({k: torch.from_numpy(values[k]) for k in (order or list(values))})


def test_plain_fedavg_returns_the_aggregate_itself():
    aggregate = record(arrays(2))
    assert ServerOptimizer().step(record(arrays(1)), aggregate, 1) is aggregate


def test_learning_rate_scales_the_step_and_tensors_match_by_name():
    current, mean = arrays(1), arrays(2)
    reversed_order = list(reversed(list(mean)))  # replies may list tensors in another order
    result = as_numpy(ServerOptimizer(learning_rate=2.0).step(record(current), record(mean, reversed_order), 1))
    for key in SHAPES:
        np.testing.assert_allclose(result[key], current[key] - 2.0 * (current[key] - mean[key]), atol=1e-5)


def test_momentum_accumulates_and_resumes_after_a_restart(tmp_path):
    path = tmp_path / "momentum.safetensors"
    g0, m1, m2 = arrays(1), arrays(2), arrays(3)
    first = ServerOptimizer(momentum=0.5, state_path=path)
    g1 = as_numpy(first.step(record(g0), record(m1), 1))
    np.testing.assert_allclose(g1["decoder.w"], m1["decoder.w"], atol=1e-6)  # v = g0 − m1 at first
    expected_v = {k: 0.5 * (g0[k] - m1[k]) + (g1[k] - m2[k]) for k in SHAPES}

    restarted = ServerOptimizer(momentum=0.5, state_path=path)
    restarted.resume(1)
    g2 = as_numpy(restarted.step(record(g1), record(m2), 2))
    for key in SHAPES:
        np.testing.assert_allclose(g2[key], g1[key] - expected_v[key], atol=1e-5)

    stale = ServerOptimizer(momentum=0.5, state_path=path)
    stale.resume(7)  # the saved momentum belongs to round 2, not 7: start from zero
    assert stale.velocity == {}


def test_unreadable_momentum_is_ignored(tmp_path):
    path = tmp_path / "momentum.safetensors"
    path.write_bytes(b"not safetensors")
    optimizer = ServerOptimizer(momentum=0.9, state_path=path)
    optimizer.resume(3)
    assert optimizer.velocity == {}


@pytest.mark.parametrize(("lr", "momentum"), [(0.0, 0.0), (-1.0, 0.0), (1.0, 1.0), (1.0, -0.1)])
def test_bad_settings_are_refused(lr, momentum):
    with pytest.raises(ValueError, match="server learning rate"):
        ServerOptimizer(lr, momentum)


def test_strategy_checkpoints_the_stepped_model(tmp_path):
    initial = arrays(0)
    store = CheckpointStore(tmp_path / "ckpt")
    strategy = FedVstStrategy(make_aggregator("fedavg", 1), store, {"encoder": {}, "config": {}}, record(initial),
                              server_optimizer=ServerOptimizer(learning_rate=3.0))
    update = arrays(1)
    result, _ = strategy.aggregate_train(1, [reply(1, update, 4)])
    saved = store.load(1).checkpoint.state
    for key in SHAPES:
        expected = initial[key] - 3.0 * (initial[key] - update[key])
        np.testing.assert_allclose(as_numpy(result)[key], expected, atol=1e-5)
        np.testing.assert_allclose(saved[key].numpy(), expected, atol=1e-5)


def test_warmup_ramps_the_learning_rate_from_one():
    optimizer = ServerOptimizer(learning_rate=4.0, warmup_rounds=3)
    assert [optimizer.rate(r) for r in (1, 2, 3, 4, 9)] == pytest.approx([1.0, 2.0, 3.0, 4.0, 4.0])
    current, mean = arrays(1), arrays(2)
    first = as_numpy(optimizer.step(record(current), record(mean), 1))
    np.testing.assert_allclose(first["meta.k"], mean["meta.k"], atol=1e-6)  # round 1: plain FedAvg


@pytest.mark.parametrize("flags", [["--server-momentum", "1.5"], ["--run-config", "server-momentum=5"]])
def test_cloud_serve_refuses_a_bad_server_step_in_one_line(tmp_path, flags):
    result = subprocess.run([sys.executable, "-m", "fedvst.cli", "cloud", "serve", "--data-dir", str(tmp_path / "c"),
                             *flags], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "momentum in [0, 1)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()  # nothing started, nothing written


def test_warm_up_ramps_the_rate_from_one_and_the_momentum_from_zero():
    optimizer = ServerOptimizer(learning_rate=3.0, momentum=0.8, warmup_rounds=2)
    assert [optimizer.rate(r) for r in (1, 2, 3, 9)] == pytest.approx([1.0, 2.0, 3.0, 3.0])
    assert [optimizer.momentum_at(r) for r in (1, 2, 3, 9)] == pytest.approx([0.0, 0.4, 0.8, 0.8])
    g0, m1, m2 = arrays(1), arrays(2), arrays(3)
    g1 = as_numpy(optimizer.step(record(g0), record(m1), 1))
    for key in SHAPES:  # round 1 of a warm-up adopts the average as it is
        np.testing.assert_allclose(g1[key], m1[key], atol=1e-6)
    g2 = as_numpy(optimizer.step(record(g1), record(m2), 2))
    for key in SHAPES:
        velocity = 0.4 * (g0[key] - m1[key]) + (g1[key] - m2[key])
        np.testing.assert_allclose(g2[key], g1[key] - 2.0 * velocity, atol=1e-4)
