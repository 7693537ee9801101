"""Cloud-side cost of one round: validate and average 4 and 16 updates, write a checkpoint.

    python -m simulations.bench_aggregate --json

Updates are the built-in stylizer's tensors plus noise, wrapped in Flower Messages exactly
as edges send them; timing covers reply validation (keys, shapes, dtypes, finiteness,
num-examples) and the weighted FedAvg, then one checkpoint write (atomic, fsynced).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, Message, Metadata, MetricRecord, RecordDict

from cloud_server.store import CheckpointStore
from cloud_server.strategy import FedVstStrategy, make_aggregator
from simulations.arguments import whole
from stylizer import load_model
from stylizer.checkpoint import tensor_bytes


def update_message(node: int, state: dict[str, torch.Tensor], examples: int) -> Message:
    noisy = {k: v + 0.01 * torch.randn_like(v) for k, v in state.items()}
    content = RecordDict({"arrays": ArrayRecord(noisy), "metrics": MetricRecord({"num-examples": examples,
                                                                                 "train_total": 1.0})})
    return Message(metadata=Metadata(run_id=1, message_id="", src_node_id=node, dst_node_id=0,
                                     reply_to_message_id="x", group_id="1", created_at=time.time(), ttl=3600,
                                     message_type="train"), content=content)


def main() -> None:
    parser = argparse.ArgumentParser(description="aggregation and checkpoint cost")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeats", type=whole(1, 1000), default=3)
    args = parser.parse_args()
    model, checkpoint = load_model()
    state = model.trainable_state()
    description = {"encoder": checkpoint.metadata["encoder"], "config": checkpoint.metadata["config"]}
    report: dict = {"model_mb": round(len(tensor_bytes(state)) / 1e6, 2), "aggregate_seconds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        store = CheckpointStore(Path(tmp) / "ckpt", keep=2)
        for count in (4, 16):
            replies = [update_message(i + 1, state, 100 + 13 * i) for i in range(count)]
            times = []
            for repeat in range(args.repeats):
                strategy = FedVstStrategy(make_aggregator("fedavg", 1), store, description, ArrayRecord(state))
                strategy.save_round = lambda entry, arrays: None  # time aggregation alone here
                start = time.perf_counter()
                arrays, _ = strategy.aggregate_train(repeat + 1, replies)
                times.append(time.perf_counter() - start)
                assert arrays is not None
            report["aggregate_seconds"][str(count)] = round(statistics.median(times), 3)
        writes = []
        for repeat in range(args.repeats):
            start = time.perf_counter()
            store.save(repeat + 1, state, {**description, "metrics": {"train_total": float(np.random.rand())}})
            writes.append(time.perf_counter() - start)
        report["checkpoint_write_seconds"] = round(statistics.median(writes), 3)
    report["device"] = f"cpu ({torch.get_num_threads()} threads)"
    print(json.dumps(report))


if __name__ == "__main__":
    main()
