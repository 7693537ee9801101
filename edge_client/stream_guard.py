"""Admission and idle cut-off of the phones' ``Stylize`` streams.

A sync gRPC stream holds one server thread for as long as it is open, even when its client
sends nothing. ``StreamGuard`` bounds how many streams are open at once, in all and per peer
host, so that a few clients can never take every thread (health checks and style uploads run
on threads the streams cannot take), and cancels a stream that has been idle (no request in
progress, none arriving) for ``idle_s`` seconds: the server's own deadline.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import grpc

log = logging.getLogger(__name__)


def peer_host(peer: str) -> str:
    """The host part of a gRPC peer string: 'ipv4:1.2.3.4:5' → '1.2.3.4', 'ipv6:[::1]:5' → '::1'."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6" and rest.startswith("["):
        return rest[1:rest.find("]")]
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    return peer  # unix sockets and the like: the whole string


@dataclass
class StreamTicket:
    """One admitted stream; ``close`` is idempotent (called by the handler and by gRPC's callback)."""

    guard: StreamGuard
    host: str
    context: grpc.ServicerContext
    last_activity: float = field(default_factory=time.monotonic)
    busy: bool = False
    closed: bool = False

    def working(self, busy: bool) -> None:
        """Mark a request as in progress (never idle) or finished (the idle clock restarts)."""
        self.busy = busy
        self.last_activity = time.monotonic()

    def close(self) -> None:
        self.guard._release(self)


class StreamGuard:
    """See module docstring. ``open`` admits or refuses; a daemon thread cancels idle streams."""

    def __init__(self, max_streams: int, per_peer: int, idle_s: float) -> None:
        if max_streams < 1 or per_peer < 1 or not idle_s > 0:
            raise ValueError("need max_streams ≥ 1, per_peer ≥ 1 and idle_s > 0")
        self.max_streams = max_streams
        self.per_peer = per_peer
        self.idle_s = idle_s
        self._lock = threading.Lock()
        self._open: list[StreamTicket] = []
        self.idle_cancelled = 0
        self._stopped = threading.Event()
        threading.Thread(target=self._watch, daemon=True, name="stream-guard").start()

    def open(self, context: grpc.ServicerContext) -> StreamTicket | str:
        """A ticket for a new stream, or the reason it is refused (one line)."""
        host = peer_host(context.peer())
        with self._lock:
            if len(self._open) >= self.max_streams:
                return f"edge has {self.max_streams} streams open, its limit"
            if sum(t.host == host for t in self._open) >= self.per_peer:
                return f"{host} already has {self.per_peer} streams open, the limit per peer"
            ticket = StreamTicket(self, host, context)
            self._open.append(ticket)
        context.add_callback(ticket.close)
        return ticket

    def open_streams(self) -> int:
        with self._lock:
            return len(self._open)

    def _release(self, ticket: StreamTicket) -> None:
        with self._lock:
            if not ticket.closed:
                ticket.closed = True
                self._open.remove(ticket)

    def _watch(self) -> None:
        period = min(1.0, self.idle_s / 4)
        while not self._stopped.wait(period):
            now = time.monotonic()
            with self._lock:
                idle = [t for t in self._open if not t.busy and now - t.last_activity > self.idle_s]
            for ticket in idle:
                log.warning("closing an idle Stylize stream from %s (no message for %.0f s)", ticket.host,
                            self.idle_s)
                self.idle_cancelled += 1
                ticket.context.cancel()
                ticket.close()

    def stop(self) -> None:
        self._stopped.set()
