"""Readiness-gated rounds on the cloud: a round starts only when ``min_nodes`` edges say they are
ready (a Flower query message each; see edge_client/readiness.py), and it trains only those.
While it waits, one line says why, each time the reason changes and once a minute.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EdgeState:
    """One edge's answer to the readiness query."""

    node: int
    ready: bool
    reason: str


def query_edges(grid: Grid, config: dict[str, Any], timeout_s: float = 60.0) -> list[EdgeState]:
    """Ask every connected edge whether it is ready: ``config`` carries ``images-per-round``, the
    other training settings (edges train between syncs with them) and ``global-sha256``, the model
    their training must have started from. Edges that fail to answer are reported as not ready."""
    nodes = list(grid.get_node_ids())
    if not nodes:
        return []
    messages = [Message(content=RecordDict({"config": ConfigRecord(dict(config))}),
                        dst_node_id=node, message_type=MessageType.QUERY) for node in nodes]
    states = {node: EdgeState(node, False, f"node {node} did not answer") for node in nodes}
    for reply in grid.send_and_receive(messages, timeout=timeout_s):
        node = reply.metadata.src_node_id
        if reply.has_error():
            states[node] = EdgeState(node, False, f"node {node}: {reply.error.reason}")
            continue
        metrics = next(iter(reply.content.metric_records.values()))
        reason = str(reply.content.config_records["config"]["reason"]) if "config" in reply.content.config_records \
            else f"node {node}"
        states[node] = EdgeState(node, bool(metrics["ready"]), reason)
    return sorted(states.values(), key=lambda s: s.node)


def waiting_line(states: list[EdgeState], min_nodes: int) -> str:
    """'waiting: 1 of 2 edges ready (edge0 has 12 of 64 new images; …)'."""
    ready = sum(s.ready for s in states)
    if not states:
        return f"waiting: no edge connected ({min_nodes} must be ready)"
    details = "; ".join(s.reason for s in states if not s.ready)
    return f"waiting: {ready} of {len(states)} edges ready, {min_nodes} needed ({details})"


def wait_until_ready(grid: Grid, min_nodes: int, config: dict[str, Any], *, poll_s: float,
                     on_poll: Callable[[list[EdgeState], str], None] | None = None) -> list[int]:
    """Block until at least ``min_nodes`` edges are ready; returns their node ids (all ready ones).
    ``on_poll(states, line)`` hears every answer while it waits (line: why no round starts)."""
    last_line, last_logged = "", 0.0
    while True:
        states = query_edges(grid, config)
        ready = [s.node for s in states if s.ready]
        if len(ready) >= min_nodes:
            log.info("%d of %d edges ready: starting a round", len(ready), len(states))
            return ready
        line = waiting_line(states, min_nodes)
        if on_poll is not None:
            on_poll(states, line)
        if line != last_line or time.monotonic() - last_logged > 60:
            log.info("%s", line)
            last_line, last_logged = line, time.monotonic()
        time.sleep(poll_s)
