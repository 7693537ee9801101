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
    try:
        rounds = json.loads(reply.rounds_json) if reply.rounds_json else []
    except ValueError:
        rounds = []
    return {"cloud": address, "rounds_done": reply.rounds_done,
            "newest_checkpoint": {"name": reply.newest_checkpoint, "sha256": reply.newest_sha256,
                                  "saved_unix": reply.newest_saved_unix} if reply.newest_checkpoint else None,
            "federation": federation, "rounds": rounds if isinstance(rounds, list) else [],
            "best_round": reply.best_round if reply.best_round >= 0 else None}


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


def trend_line(rounds: list[dict[str, Any]], best_round: int | None, shown: int = 8) -> str:
    """'held-out total by round: 0: 0.1703 → 1: 0.1650 → 2: 0.1622 (best: round 2)'; the last ``shown``
    scored rounds, after round 0 (the initial model) when it was scored. "" when no round was scored."""
    scored = [r for r in rounds if isinstance(r.get("heldout_total"), (int, float))]
    if not scored:
        return ""
    picked = scored[-shown:]
    if scored[0]["round"] == 0 and picked[0]["round"] != 0:
        picked = [scored[0], *picked[1:]]
    steps = " → ".join(f"{r['round']}: {r['heldout_total']:.5g}" for r in picked)
    return f"held-out total by round: {steps}" + (f" (best: round {best_round})" if best_round is not None else "")


def movement_line(rounds: list[dict[str, Any]]) -> str:
    """'round 3 moved the model by at most 2.10e-04 (RMS 3.00e-06)' for the newest counted round, a
    warning when it changed nothing, "" when no counted round says (round 0 only, or older records)."""
    counted = [r for r in rounds if r.get("round", 0) > 0 and isinstance(r.get("moved_max"), (int, float))]
    if not counted:
        return ""
    newest = counted[-1]
    if newest["moved_max"] == 0:
        return f"round {newest['round']} did NOT change the model (every learned value as in the round before)"
    return (f"round {newest['round']} moved the model by at most {newest['moved_max']:.2e} "
            f"(RMS {newest['moved_rms']:.2e})")


EDGE_FIELDS = ("edge", "node", "ready", "trained since sync", "serves round", "last seen", "why")


def edge_row(edge: dict[str, Any], now: float) -> list[str]:
    """One live edge as the EDGE_FIELDS' values, as a person reads them."""
    trained, serving, seen = edge.get("trained"), edge.get("serving_round"), edge.get("last_seen")
    return [str(edge.get("name") or "?"), str(edge.get("node")), "yes" if edge.get("ready") else "no",
            "-" if trained is None else str(trained), "-" if serving is None else str(serving),
            _ago(float(seen), now) if seen else "-", str(edge.get("reason"))]


def print_status(status: dict[str, Any], *, terminal: bool | None = None) -> None:
    """The status for a person: rounds and their held-out trend, how far the newest round moved the
    model, the newest checkpoint, then the live edges: a table on a terminal, one ``key: value``
    record a line otherwise (``terminal``: None asks standard output), so a file or a pipe gets
    whole lines, never a table wrapped to its width."""
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=True)
    terminal = console.is_terminal if terminal is None else terminal
    now = time.time()
    newest = status["newest_checkpoint"]
    console.print(f"cloud {status['cloud']}: [bold]{status['rounds_done']}[/bold] rounds done")
    if newest:
        console.print(f"newest checkpoint {newest['name']} (sha256 {newest['sha256'][:12]}…, saved "
                      f"{_ago(newest['saved_unix'], now)})")
    for line in (trend_line(status.get("rounds", []), status.get("best_round")),
                 movement_line(status.get("rounds", []))):
        if line:
            console.print(line, markup=False)
    federation = status["federation"]
    if federation is None:
        console.print("the ServerApp has not reported yet")
        return
    edges = federation.get("edges", [])
    ready = sum(bool(e.get("ready")) for e in edges)
    console.print(f"{federation.get('state')} (round {federation.get('round')}, reported "
                  f"{_ago(float(federation.get('updated', now)), now)}): {ready} of {len(edges)} live edges "
                  f"ready, {federation.get('min_nodes')} needed", markup=False)
    console.print(str(federation.get("line", "")), markup=False)
    if not edges:
        return
    if not terminal:
        for edge in edges:
            console.print("; ".join(f"{key}: {value}" for key, value in zip(EDGE_FIELDS, edge_row(edge, now),
                                                                             strict=True)), markup=False)
        return
    table = Table(*EDGE_FIELDS)
    for edge in edges:
        table.add_row(*edge_row(edge, now))
    console.print(table)
