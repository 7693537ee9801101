"""Readiness-gated rounds on the cloud: a round starts only when ``min_nodes`` edges say they are
ready (a Flower query message each; see edge_client/readiness.py), and it trains only those.
While it waits, one line says why, each time the reason changes and once a minute.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flwr.app import ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EdgeState:
    """One edge's answer to the readiness query: its Flower node id, its name (``fedvst edge serve
    --name``), whether it is ready and why, the new frames it kept and the images it trained on
    since its last sync (None: no background trainer), the round it serves (None: unknown) and when
    it answered (unix s)."""

    node: int
    ready: bool
    reason: str
    name: str = ""
    new_images: int = 0
    trained: int | None = None
    serving_round: int | None = None
    last_seen: float = 0.0

    @property
    def label(self) -> str:
        """'edge-a (node 123)': how a person finds this edge in the logs and in ``fedvst status``."""
        return f"{self.name} (node {self.node})" if self.name else f"node {self.node}"

    def as_json(self) -> dict[str, Any]:
        return {"node": self.node, "name": self.name, "ready": self.ready, "reason": self.reason,
                "new_images": self.new_images, "trained": self.trained, "serving_round": self.serving_round,
                "last_seen": self.last_seen}


@dataclass(frozen=True)
class Poll:
    """One readiness poll: the edges that answered (live), and the node ids the SuperLink still lists
    that did not (an edge killed without signing off stays listed until its heartbeat expires)."""

    live: list[EdgeState]
    silent: list[int]


def _optional(value: object) -> int | None:
    number = int(value)  # type: ignore[arg-type]
    return None if number < 0 else number


def query_edges(grid: Grid, config: dict[str, Any], timeout_s: float = 60.0) -> Poll:
    """Ask every connected edge whether it is ready: ``config`` carries ``images-per-round``, the
    other training settings (edges train between syncs with them) and ``global-sha256``, the model
    their training must have started from. Only edges that answer are live; the rest are counted
    apart, never as edges that are not ready."""
    nodes = list(grid.get_node_ids())
    if not nodes:
        return Poll([], [])
    messages = [Message(content=RecordDict({"config": ConfigRecord(dict(config))}),
                        dst_node_id=node, message_type=MessageType.QUERY) for node in nodes]
    return poll_from_replies(nodes, grid.send_and_receive(messages, timeout=timeout_s))


def poll_from_replies(nodes: Iterable[int], replies: Iterable[Message]) -> Poll:
    """The live edges among ``nodes`` (those whose reply is not an error), from their query replies."""
    live: dict[int, EdgeState] = {}
    for reply in replies:
        node = reply.metadata.src_node_id
        if reply.has_error():
            log.debug("node %d did not answer the readiness query: %s", node, reply.error.reason)
            continue
        metrics = next(iter(reply.content.metric_records.values()))
        words = reply.content.config_records.get("config", {})
        live[node] = EdgeState(node, bool(metrics["ready"]), str(words.get("reason", f"node {node}")),
                               name=str(words.get("name", "")), new_images=int(metrics.get("new-images", 0)),
                               trained=_optional(metrics.get("trained", -1)),
                               serving_round=_optional(metrics.get("serving-round", -1)), last_seen=time.time())
    silent = sorted(node for node in nodes if node not in live)
    return Poll(sorted(live.values(), key=lambda s: (s.name, s.node)), silent)


def waiting_line(poll: Poll, min_nodes: int) -> str:
    """'waiting: 1 of 2 edges ready, 2 needed (edge-a has trained on 12 of 64 new images …)': only
    live edges are counted; nodes that did not answer are named after them."""
    states = poll.live
    gone = (f"; {len(poll.silent)} listed node{'s' if len(poll.silent) > 1 else ''} did not answer and "
            f"{'are' if len(poll.silent) > 1 else 'is'} not counted ({', '.join(map(str, poll.silent))})"
            if poll.silent else "")
    if not states:
        return f"waiting: no edge connected ({min_nodes} must be ready){gone}"
    ready = sum(s.ready for s in states)
    details = "; ".join(s.reason for s in states if not s.ready)
    return f"waiting: {ready} of {len(states)} edges ready, {min_nodes} needed ({details}){gone}"


def wait_until_ready(grid: Grid, min_nodes: int, config: dict[str, Any], *, poll_s: float,
                     on_poll: Callable[[list[EdgeState], str], None] | None = None) -> list[EdgeState]:
    """Block until at least ``min_nodes`` edges are ready; returns the live edges' states (the ready
    ones take part). ``on_poll(states, line)`` hears every answer while it waits (line: why no round
    starts)."""
    last_line, last_logged = "", 0.0
    while True:
        poll = query_edges(grid, config)
        ready = [s for s in poll.live if s.ready]
        if len(ready) >= min_nodes:
            log.info("%d of %d edges ready: starting a round with %s", len(ready), len(poll.live),
                     ", ".join(s.label for s in ready))
            return poll.live
        line = waiting_line(poll, min_nodes)
        if on_poll is not None:
            on_poll(poll.live, line)
        if line != last_line or time.monotonic() - last_logged > 60:
            log.info("%s", line)
            last_line, last_logged = line, time.monotonic()
        time.sleep(poll_s)
