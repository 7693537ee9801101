"""Checks on an edge's training reply before it may touch the global model.

A reply must carry exactly one ArrayRecord whose arrays have exactly the global model's
keys, shapes and dtypes, all finite, and exactly one MetricRecord with a numeric
``num-examples`` in (0, max_examples]. Anything else is dropped with a one-line reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from flwr.app import ArrayRecord, RecordDict

NUM_EXAMPLES_KEY = "num-examples"


@dataclass(frozen=True)
class ArraySpec:
    """Expected shape and dtype of one array."""

    shape: tuple[int, ...]
    dtype: str


def specs_of(arrays: ArrayRecord) -> dict[str, ArraySpec]:
    """The specs a reply must match, taken from the global model's ArrayRecord."""
    return {key: ArraySpec(tuple(array.shape), str(array.dtype)) for key, array in arrays.items()}


def reply_problem(content: RecordDict, expected: dict[str, ArraySpec], max_examples: int) -> str | None:
    """Why ``content`` must not be aggregated, or None if it is fine."""
    if len(content.array_records) != 1:
        return f"expected one ArrayRecord, got {len(content.array_records)}"
    if len(content.metric_records) != 1:
        return f"expected one MetricRecord, got {len(content.metric_records)}"
    arrays = next(iter(content.array_records.values()))
    missing = sorted(set(expected) - set(arrays.keys()))
    extra = sorted(set(arrays.keys()) - set(expected))
    if missing or extra:
        return f"array keys differ from the global model (missing {missing[:2]}, unexpected {extra[:2]})"
    for key, spec in expected.items():
        array = arrays[key]
        if tuple(array.shape) != spec.shape:
            return f"array {key} has shape {tuple(array.shape)}, expected {spec.shape}"
        if str(array.dtype) != spec.dtype:
            return f"array {key} has dtype {array.dtype}, expected {spec.dtype}"
        values = array.numpy()
        if not np.isfinite(values).all():
            return f"array {key} contains NaN or Inf"
    metrics = next(iter(content.metric_records.values()))
    count = metrics.get(NUM_EXAMPLES_KEY)
    if isinstance(count, bool) or not isinstance(count, (int, float)):
        return f"{NUM_EXAMPLES_KEY} missing or not a number"
    if not math.isfinite(count) or count <= 0 or count > max_examples:
        return f"{NUM_EXAMPLES_KEY} = {count} outside (0, {max_examples}]"
    for name, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            return f"metric {name} is not finite"
    return None
