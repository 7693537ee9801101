"""``fedvst simulate --ray-address`` on a real Ray head started on 127.0.0.1 and stopped by its pid."""

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from fedvst.processes import descendants, free_port, stop_process_group, wait_for_port

HEAD_PORTS = ("--node-manager-port", "--object-manager-port", "--ray-client-server-port", "--metrics-export-port",
              "--dashboard-agent-grpc-port", "--dashboard-agent-listen-port", "--runtime-env-agent-port")
LOOPBACK_ONLY = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # Ray then advertises 127.0.0.1, not the LAN address


def start_head(temp: Path, log: Path) -> tuple[subprocess.Popen, int]:
    """``ray start --head --block`` in a process group of its own, every port it opens chosen here."""
    gcs = free_port()
    ports = [arg for flag in HEAD_PORTS for arg in (flag, str(free_port()))]
    workers = free_port()
    command = [shutil.which("ray") or "ray", "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
               "--port", str(gcs), *ports, "--min-worker-port", str(workers), "--max-worker-port", str(workers + 40),
               "--num-cpus", "2", "--temp-dir", str(temp), "--include-dashboard", "false", "--disable-usage-stats"]
    with log.open("ab") as handle:
        head = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **LOOPBACK_ONLY})
    wait_for_port(gcs, head, log=log)
    return head, gcs


@pytest.mark.slow
def test_a_two_edge_simulation_runs_on_a_ray_head_it_joins(tmp_path):
    temp = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))  # Ray's socket paths must stay short
    log = tmp_path / "ray-head.log"
    head, gcs = start_head(temp, log)
    try:
        out = tmp_path / "run"
        result = subprocess.run([sys.executable, "-m", "fedvst.cli", "simulate", "--profile", "tiny", "--edges", "2",
                                 "--rounds", "2", "--ray-address", f"127.0.0.1:{gcs}", "--out", str(out),
                                 "--no-progress"],
                                capture_output=True, text=True, timeout=900,
                                env={**os.environ, **LOOPBACK_ONLY, "FEDVST_OFFLINE": "1"})
        assert result.returncode == 0, result.stderr[-3000:]
        with (out / "curves.csv").open() as handle:
            rows = list(csv.DictReader(handle))
        assert [(r["seed"], r["edges"], r["round"]) for r in rows] == [("0", "2", "0"), ("0", "2", "1"),
                                                                      ("0", "2", "2")]
        assert all(float(r["total"]) > 0 for r in rows)
        # the run used the head's Ray, not one of its own: it says so, and its workers ran in the head's session
        assert f"Connecting to existing Ray cluster at address: 127.0.0.1:{gcs}" in result.stderr
        sessions = list(temp.glob("session_*/logs"))
        assert sessions and any(p.name.startswith("worker-") for s in sessions for p in s.iterdir())
        assert "target held-out total loss" in result.stdout
    finally:
        tree = [head.pid, *descendants(head.pid)]
        stop_process_group(head)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in tree):
            time.sleep(0.2)
        shutil.rmtree(temp, ignore_errors=True)
    assert not [pid for pid in tree if Path(f"/proc/{pid}").exists()
                and Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"]
