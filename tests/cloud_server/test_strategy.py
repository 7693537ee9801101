"""Aggregation, validation and checkpointing of the cloud strategy (no network)."""

import time

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, Message, Metadata, MetricRecord, RecordDict

from cloud_server.store import CheckpointStore
from cloud_server.strategy import FedVstStrategy, make_aggregator

SHAPES = {"decoder.w": (4, 3), "decoder.b": (4,), "meta.k": (2, 3, 5, 5)}


def arrays(seed: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: (rng.standard_normal(s) * scale).astype(np.float32) for k, s in SHAPES.items()}


def reply(node: int, values: dict[str, np.ndarray], examples, extra: dict | None = None) -> Message:
    content = RecordDict({"arrays": ArrayRecord({k: torch.from_numpy(v) for k, v in values.items()}),
                          "metrics": MetricRecord({"num-examples": examples, "train_total": 1.0 + node,
                                                   **(extra or {})})})
    return Message(metadata=Metadata(run_id=1, message_id="", src_node_id=node, dst_node_id=0,
                                     reply_to_message_id="x", group_id="1", created_at=time.time(),
                                     ttl=3600, message_type="train"), content=content)


@pytest.fixture()
def strategy(tmp_path):
    initial = ArrayRecord({k: torch.from_numpy(v) for k, v in arrays(0).items()})
    store = CheckpointStore(tmp_path / "ckpt")
    return FedVstStrategy(make_aggregator("fedavg", 1), store, {"encoder": {}, "config": {}}, initial,
                          round_offset=4)


def as_numpy(record: ArrayRecord) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in record.items()}


def test_weighted_mean_matches_numpy(strategy):
    updates = [arrays(1), arrays(2), arrays(3)]
    counts = [10, 30, 7]
    result, metrics = strategy.aggregate_train(1, [reply(i + 1, u, n) for i, (u, n) in
                                                   enumerate(zip(updates, counts, strict=True))])
    expected = {k: sum(u[k].astype(np.float64) * n for u, n in zip(updates, counts, strict=True)) / sum(counts)
                for k in SHAPES}
    for key, value in as_numpy(result).items():
        np.testing.assert_allclose(value, expected[key], rtol=0, atol=1e-6)
    assert metrics["train_total"] == pytest.approx((2 * 10 + 3 * 30 + 4 * 7) / 47)


@pytest.mark.parametrize("bad", ["nan", "inf", "shape", "dtype", "missing-key", "extra-key", "negative", "zero",
                                 "absurd", "not-a-number"])
def test_bad_replies_are_dropped_and_the_rest_averaged(strategy, bad):
    good = [arrays(1), arrays(2)]
    broken = arrays(3)
    examples = 5
    if bad == "nan":
        broken["decoder.w"][0, 0] = np.nan
    elif bad == "inf":
        broken["meta.k"][0, 0, 0, 0] = np.inf
    elif bad == "shape":
        broken["decoder.b"] = np.zeros(5, np.float32)
    elif bad == "dtype":
        broken["decoder.b"] = broken["decoder.b"].astype(np.float64)
    elif bad == "missing-key":
        del broken["decoder.b"]
    elif bad == "extra-key":
        broken["sneaky"] = np.zeros(1, np.float32)
    elif bad == "negative":
        examples = -3
    elif bad == "zero":
        examples = 0
    elif bad == "absurd":
        examples = 10**12
    elif bad == "not-a-number":
        examples = [1.0, 2.0]
    replies = [reply(1, good[0], 4), reply(2, good[1], 12), reply(3, broken, examples)]
    result, _ = strategy.aggregate_train(1, replies)
    expected = {k: (good[0][k] * 4 + good[1][k] * 12) / 16 for k in SHAPES}
    for key, value in as_numpy(result).items():
        np.testing.assert_allclose(value, expected[key], atol=1e-6)
    assert strategy.history[-1].dropped.keys() == {"3"}
    assert strategy.history[-1].nodes == [1, 2]


def test_all_bad_replies_leave_the_model_alone(strategy, tmp_path):
    broken = arrays(3)
    broken["decoder.w"][:] = np.nan
    assert strategy.aggregate_train(1, [reply(1, broken, 5)]) == (None, None)
    assert strategy.store.rounds() == []


def test_each_round_is_checkpointed_with_global_numbering(strategy):
    strategy.aggregate_train(1, [reply(7, arrays(1), 3), reply(8, arrays(2), 9)])
    stored = strategy.store.latest()
    assert stored.round == 5  # offset 4 + Flower's round 1
    assert stored.checkpoint.metadata["examples"] == {"7": 3, "8": 9}
    assert stored.checkpoint.metadata["nodes"] == [7, 8]
    assert strategy.global_round(1) == 5


@pytest.mark.parametrize("name", ["trimmed-mean", "krum"])
def test_robust_aggregators_are_available(name):
    assert make_aggregator(name, 3) is not None
    with pytest.raises(ValueError):
        make_aggregator("median-of-vibes", 1)


class ConnectedNodes:
    """The part of Flower's Grid that node sampling reads."""

    def __init__(self, count: int) -> None:
        self.ids = list(range(101, 101 + count))

    def get_node_ids(self):
        return self.ids


@pytest.mark.parametrize(("connected", "sample", "expected"), [(10, 3, 3), (100, 7, 7), (100, 29, 29), (4, 0, 4)])
def test_flower_samples_k_of_the_connected_nodes_each_round(connected, sample, expected, monkeypatch):
    from flwr.app import ArrayRecord, ConfigRecord

    strategy = make_aggregator("fedavg", connected, sample_nodes=sample)
    # the messages need a Flower run around them; which nodes they go to is what is checked here
    monkeypatch.setattr(strategy, "_construct_messages", lambda record, node_ids, kind: node_ids)
    grid = ConnectedNodes(connected)
    rounds = [set(strategy.configure_train(r, ArrayRecord(), ConfigRecord(), grid)) for r in range(1, 6)]
    assert all(len(nodes) == expected and nodes <= set(grid.ids) for nodes in rounds)
    if 0 < sample < connected:
        assert len({frozenset(nodes) for nodes in rounds}) > 1  # a new sample each round
    with pytest.raises(ValueError, match="sample-nodes must be in 0…4"):
        make_aggregator("fedavg", 4, sample_nodes=5)


def test_the_same_replies_in_any_arrival_order_average_to_the_same_bits(tmp_path):
    updates = [arrays(seed, scale=10.0 ** seed) for seed in (1, 2, 3, 4)]
    counts = [3, 5, 7, 11]
    replies = [reply(node, u, n) for node, (u, n) in enumerate(zip(updates, counts, strict=True), start=1)]
    orders = [[0, 1, 2, 3], [3, 1, 0, 2], [2, 3, 1, 0]]
    plain = [as_numpy(make_aggregator("fedavg", 1).aggregate_train(1, [replies[i] for i in order])[0])
             for order in orders]
    assert any(not np.array_equal(plain[0][k], other[k]) for other in plain[1:] for k in SHAPES), \
        "these updates must be order-sensitive in float32 for the test to mean anything"
    results = []
    for n, order in enumerate(orders):
        initial = ArrayRecord({k: torch.from_numpy(v) for k, v in arrays(0).items()})
        strategy = FedVstStrategy(make_aggregator("fedavg", 1), CheckpointStore(tmp_path / f"ckpt{n}"),
                                  {"encoder": {}, "config": {}}, initial)
        results.append(as_numpy(strategy.aggregate_train(1, [replies[i] for i in order])[0]))
    for other in results[1:]:
        for key in SHAPES:
            assert np.array_equal(results[0][key], other[key])
