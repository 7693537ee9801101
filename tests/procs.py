"""Start real server processes on 127.0.0.1 for integration tests, and stop them by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, process: subprocess.Popen | None = None, timeout_s: float = 90.0,
              log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            detail = log.read_text()[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}\n{detail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -m fedvst.cli ARGS`` in its own process group, output to ``log``."""
    handle = log.open("ab")
    return subprocess.Popen([sys.executable, "-m", "fedvst.cli", *args], stdout=handle, stderr=subprocess.STDOUT,
                            env={**os.environ, "FEDVST_OFFLINE": "1", **(env or {})}, start_new_session=True)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
    """Signal the process group that ``process`` leads; SIGKILL it if it outlives ``timeout_s``."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
    return process.returncode
