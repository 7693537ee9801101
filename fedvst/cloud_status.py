"""``fedvst status``: ask the cloud's model registry how the federation stands (GetStatus)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc

from fedvst.protocol import fedvst_pb2, fedvst_pb2_grpc
from fedvst.protocol.security import call_metadata, open_channel, tls_hint


def fetch_status(address: str, *, token: str | None = None, ca: Path | None = None,
                 timeout_s: float = 10.0) -> dict[str, Any]:
    """The cloud's status as a dict: rounds_done, newest checkpoint (name, sha256, saved_unix) and
    ``federation`` (the ServerApp's last report, None before its first). ConnectionError (one line)
    when the registry cannot be asked."""
    try:
        with open_channel(address, ca=ca) as channel:
            reply = fedvst_pb2_grpc.ModelRegistryStub(channel).GetStatus(
                fedvst_pb2.StatusRequest(), timeout=timeout_s, metadata=call_metadata(token))
    except grpc.RpcError as exc:
        raise ConnectionError(_explain(exc, address, ca is not None)) from None
    try:
        federation = json.loads(reply.federation_json) if reply.federation_json else None
    except ValueError:
        federation = None
    return {"cloud": address, "rounds_done": reply.rounds_done,
            "newest_checkpoint": {"name": reply.newest_checkpoint, "sha256": reply.newest_sha256,
                                  "saved_unix": reply.newest_saved_unix} if reply.newest_checkpoint else None,
            "federation": federation}


WRONG_PORT = ("pass the registry's port (fedvst cloud serve --registry-port, 9097 unless changed), not the "
              "SuperLink's or an edge's")


def _explain(exc: grpc.RpcError, address: str, tls: bool) -> str:
    """One line on a failed GetStatus: what answered at ``address`` and what to pass instead."""
    details = exc.details() or ""
    if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
        return f"{address} answers gRPC but is not the cloud's model registry: {WRONG_PORT}"
    if "http1" in details.lower() or "parsing http/2" in details.lower():
        return f"{address} is not a gRPC server (it answered in HTTP/1): {WRONG_PORT}"
    hint = tls_hint(exc, tls, ca_flag="--ca", peer="the cloud", address=address)
    return f"cloud registry at {address}: {exc.code().name}: {details}{hint}"


def _ago(unix: float, now: float) -> str:
    seconds = max(0, int(now - unix))
    return f"{seconds} s ago" if seconds < 120 else f"{seconds // 60} min ago"


def print_status(status: dict[str, Any]) -> None:
    """The status for a person: rounds, the newest checkpoint, then one row per connected edge."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    now = time.time()
    newest = status["newest_checkpoint"]
    console.print(f"cloud {status['cloud']}: [bold]{status['rounds_done']}[/bold] rounds done")
    if newest:
        console.print(f"newest checkpoint {newest['name']} (sha256 {newest['sha256'][:12]}…, saved "
                      f"{_ago(newest['saved_unix'], now)})")
    federation = status["federation"]
    if federation is None:
        console.print("the ServerApp has not reported yet")
        return
    edges = federation.get("edges", [])
    ready = sum(bool(e.get("ready")) for e in edges)
    console.print(f"{federation.get('state')} (round {federation.get('round')}, reported "
                  f"{_ago(float(federation.get('updated', now)), now)}): {ready} of {len(edges)} connected edges "
                  f"ready, {federation.get('min_nodes')} needed")
    console.print(str(federation.get("line", "")), markup=False)
    if edges:
        table = Table("node", "ready", "why")
        for edge in edges:
            table.add_row(str(edge.get("node")), "yes" if edge.get("ready") else "no", str(edge.get("reason")))
        console.print(table)
