"""The benchmarks' loopback federation: a SIGTERM to the benchmark stops what it started."""

import os
import signal
import subprocess
import sys
import time

from fedvst.processes import descendants, is_zombie
from tests import procs

SCRIPT = """
import sys, time
from pathlib import Path
from simulations.loopback import loopback_federation
with loopback_federation(Path(sys.argv[1]), ["--min-nodes", "1", "--rounds", "1"], [], timeout_s=300):
    print("up", flush=True)
    time.sleep(600)
"""


def test_a_sigterm_to_a_benchmark_stops_its_cloud_and_everything_below_it(tmp_path):
    """bench_learning killed with SIGTERM left its cloud, edges and Flower helpers running."""
    process = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True,
                               env={**os.environ, "FEDVST_OFFLINE": "1"})
    try:
        assert process.stdout is not None and process.stdout.readline().strip() == "up"
        tree = descendants(process.pid)
        assert tree  # the cloud, its SuperLink and SuperExec
        os.kill(process.pid, signal.SIGTERM)  # the benchmark alone, as a shell's kill would
        assert process.wait(120) != 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and [p for p in tree if not is_zombie(p)]:
            time.sleep(0.5)
        assert not [p for p in tree if not is_zombie(p)], (tree, (tmp_path / "cloud.log").read_text())
    finally:
        procs.stop(process, signal.SIGKILL)
