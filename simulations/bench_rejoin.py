"""Seconds for an authenticated edge killed with -9 to rejoin the cloud.

    python -m simulations.bench_rejoin --json [--kills 3]

docs/deploy.md's configuration on 127.0.0.1: a cloud with TLS, a token and SuperNode
authentication (``--node-key``), one edge with its node key. Once the SuperLink has activated the
edge's SuperNode, ``fedvst edge serve`` alone is killed with SIGKILL (its Flower children die with
it) and the identical command is started again. The clock runs from the kill to the SuperLink's
next "Activated node_id" line for that node; refusals on the way are counted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fedvst.processes import free_port, start_cli, stop_process_group, wait_for_port
from simulations.arguments import whole
from stylizer import builtin_checkpoint_path

ACTIVATED = re.compile(r"Activated node_id=(\d+)")


def activations(superlink_log: Path) -> list[str]:
    try:
        return ACTIVATED.findall(superlink_log.read_text(errors="replace"))
    except OSError:
        return []


def wait_for_activation(superlink_log: Path, seen: int, timeout_s: float) -> float:
    """Block until the SuperLink logged more than ``seen`` activations; returns when (perf_counter)."""
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        if len(activations(superlink_log)) > seen:
            return time.perf_counter()
        time.sleep(0.1)
    raise RuntimeError(f"no SuperNode activation within {timeout_s:.0f} s (see {superlink_log})")


def run(tmp: Path, kills: int) -> dict:
    from cloud_server.make_certs import make_ca_and_server, make_node_keys

    certs = tmp / "certs"
    certs.mkdir()
    make_ca_and_server(certs, ["127.0.0.1", "localhost"])
    private, public = make_node_keys(certs, "node_0")
    (tmp / "token").write_text("bench-token-0123456789abcdef\n")
    port, registry_port = free_port(), free_port()
    cloud = start_cli(["cloud", "serve", "--data-dir", str(tmp / "cloud"), "--port", str(port), "--registry-port",
                       str(registry_port), "--initial-checkpoint", str(builtin_checkpoint_path()),
                       "--tls-cert", str(certs / "server.crt"), "--tls-key", str(certs / "server.key"),
                       "--tls-ca", str(certs / "ca.crt"), "--token-file", str(tmp / "token"), "--node-key",
                       str(public), "--run-config", "ready-poll-s=2"], tmp / "cloud.log")
    superlink_log = tmp / "cloud" / "logs" / "superlink.log"
    edge_args = ["edge", "serve", "--port", str(free_port()), "--supernode-port", str(free_port()), "--data-dir",
                 str(tmp / "edge"), "--cloud", f"127.0.0.1:{port}", "--registry", f"127.0.0.1:{registry_port}",
                 "--tls-ca", str(certs / "ca.crt"), "--node-key", str(private), "--token-file", str(tmp / "token")]
    edge = None
    seconds, refusals = [], []
    try:
        wait_for_port(registry_port, cloud, log=tmp / "cloud.log", timeout_s=120)
        edge = start_cli(edge_args, tmp / "edge.log")
        wait_for_activation(superlink_log, 0, 180)
        for _ in range(kills):
            time.sleep(3)  # a heartbeat or two, as a running edge would have sent
            seen = len(activations(superlink_log))
            supernode_log = tmp / "edge" / "supernode.log"
            offset = supernode_log.stat().st_size
            killed = time.perf_counter()
            os.kill(edge.pid, signal.SIGKILL)
            edge.wait()
            edge = start_cli(edge_args, tmp / "edge.log")
            seconds.append(round(wait_for_activation(superlink_log, seen, 180) - killed, 1))
            with supernode_log.open("rb") as handle:
                handle.seek(offset)
                refusals.append(handle.read().count(b"Failed to activate SuperNode"))
    finally:
        if edge is not None:
            stop_process_group(edge)
        stop_process_group(cloud)
    return {"seconds_from_kill_to_activation": seconds, "median_s": statistics.median(seconds),
            "refusals": refusals, "signed_off": (tmp / "edge.log").read_text().count("signed off the previous")}


def main() -> None:
    parser = argparse.ArgumentParser(description="kill -9 of an authenticated edge → its SuperNode active again")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--kills", type=whole(1, 100), default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(Path(tmp), args.kills)
    print(json.dumps(result) if args.json else result, file=sys.stdout)


if __name__ == "__main__":
    main()
