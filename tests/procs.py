"""Real server processes on 127.0.0.1 for integration tests, stopped by the pid they started."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from fedvst.processes import descendants, free_port, is_zombie, start_cli, stop_process_group, wait_for_port

__all__ = ["free_port", "kill_leader_only", "start", "stop", "wait_port"]


def start(args: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """``fedvst ARGS`` offline (plus ``env``, in ``cwd``), in its own process group."""
    return start_cli(args, log, env={"FEDVST_OFFLINE": "1", **(env or {})}, cwd=cwd)


def wait_port(port: int, process: subprocess.Popen | None = None, log: Path | None = None) -> None:
    wait_for_port(port, process, log=log)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> int | None:
    return stop_process_group(process, sig)


def kill_leader_only(process: subprocess.Popen, within_s: float = 10.0) -> list[int]:
    """``kill -9`` of ``process`` alone (not its group, as an OOM kill would); returns the pids of
    the processes below it that are still alive ``within_s`` later (every helper should die with it)."""
    tree = descendants(process.pid)
    assert tree, "nothing was running below the process"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + within_s
    alive = tree
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in alive if not is_zombie(pid)]
    return alive
