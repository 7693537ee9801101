"""Real server processes on 127.0.0.1 for integration tests, stopped by the pid they started."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from fedvst.processes import free_port, start_cli, stop_process_group, wait_for_port

__all__ = ["free_port", "start", "stop", "wait_port"]


def start(args: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen:
    """``fedvst ARGS`` offline (plus ``env``, in ``cwd``), in its own process group."""
    return start_cli(args, log, env={"FEDVST_OFFLINE": "1", **(env or {})}, cwd=cwd)


def wait_port(port: int, process: subprocess.Popen | None = None, log: Path | None = None) -> None:
    wait_for_port(port, process, log=log)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> int | None:
    return stop_process_group(process, sig)
