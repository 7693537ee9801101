"""Child processes of fedvst (SuperLinks, SuperNodes, edge servers in tests and benchmarks).

Each child runs in its own process group, so stopping it by its pid also stops whatever it
spawned (Flower's SuperExec and app processes).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol


def flower_executable(name: str) -> str:
    """A Flower console script (flower-superlink, flower-supernode, flwr) from this interpreter's
    environment first, then from PATH."""
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name) or name


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when the thread that started it dies (no-op elsewhere)."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass


FLOWER_CHILDREN = ("flower-superexec", "flwr-serverapp", "flwr-clientapp")  # what Flower's processes spawn


def guard_flower_children(folder: Path, env: dict[str, str]) -> dict[str, str]:
    """``env`` with ``folder``/bin first on PATH, holding a shim for each of Flower's own child
    programs that execs the real one through ``python -m fedvst.processes``. So those grandchildren
    (Flower starts them by name, in sessions of their own) also die the moment their parent does,
    instead of 15–45 s later through Flower's parent-pid polling and graceful exit. Flower starts
    each from its main thread, which lives as long as its process (the death signal follows the
    thread that forked)."""
    shims = Path(folder) / "bin"
    shims.mkdir(parents=True, exist_ok=True)
    for name in FLOWER_CHILDREN:
        real = flower_executable(name)
        if Path(real).parent == shims:  # already guarded: never wrap a shim in itself
            continue
        shim = shims / name
        temporary = shim.with_name(f".{name}.tmp")
        temporary.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m fedvst.processes "{real}" "$@"\n')
        temporary.chmod(0o755)
        os.replace(temporary, shim)
    return {**env, "PATH": os.pathsep.join([str(shims), env.get("PATH", os.defpath)])}


def start_child(command: list[str], log: Path, *, env: dict[str, str] | None = None,
                cwd: Path | None = None) -> subprocess.Popen:
    """Start a helper process (SuperLink, SuperNode) in its own process group that also dies when
    fedvst dies, even by ``kill -9``: it is exec'd through ``python -m fedvst.processes``, which sets
    the parent-death signal first (no preexec_fn: unsafe in a threaded server)."""
    with log.open("ab") as handle:
        return subprocess.Popen([sys.executable, "-m", "fedvst.processes", *command], stdout=handle,
                                stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def check_listenable(host: str, port: int) -> None:
    """Fail before starting a server on ``host:port`` that could not listen there: ValueError for a port
    outside 0–65535, OSError naming the address and the reason (another server holds it, the address
    is not this machine's). Port 0 (any free port) always passes."""
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be within 0–65535, got {port}")
    if port == 0:
        return
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no owner
            probe.bind(address)
    except OSError as exc:
        raise OSError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


class DataDirLock:
    """Exclusive ownership of a server's data folder (``folder/.lock`` holds the owner's pid), so that a
    second edge or cloud pointed at the same folder refuses to start instead of mixing its files in.
    The kernel drops the lock when the owner dies, even by ``kill -9``; ``release`` drops it sooner."""

    def __init__(self, folder: Path, role: str) -> None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        self.path = Path(folder) / ".lock"
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "unknown"
            self.release()
            raise OSError(f"{folder} is in use by another {role} (pid {owner}): give each {role} its own "
                          "--data-dir") from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        """Give the folder up (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b.*")


def last_error_line(log: Path | None) -> str:
    """The cause ``log`` gives: its last exception line (``pkg.SomeError: message``), else its last line
    that mentions an error, else its last line; "" without a log."""
    if log is None or not log.exists():
        return ""
    lines = [line.strip() for line in log.read_text(errors="replace")[-20000:].splitlines() if line.strip()]
    exceptions = [line for line in lines if _EXCEPTION_LINE.match(line)]
    errors = [line for line in lines if any(word in line.lower() for word in ("error", "fatal"))
              and not line.startswith("(")]
    return (exceptions or errors or lines or [""])[-1][:500]


def wait_for_port(port: int, process: subprocess.Popen | None = None, *, host: str = "127.0.0.1",
                  timeout_s: float = 90.0, log: Path | None = None, what: str = "process") -> None:
    """Block until ``host:port`` accepts connections; fail early, in one line with the cause its log
    gives, if ``process`` (called ``what``) dies first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            cause = last_error_line(log)
            raise RuntimeError(f"{what} exited with {process.returncode} before listening on {host}:{port}"
                               + (f": {cause}" if cause else "") + (f" (full log: {log})" if log else ""))
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s:.0f} s")


def start_cli(args: list[str], log: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen:
    """``python -m fedvst.cli ARGS`` (in ``cwd``) in a new process group, stdout and stderr appended to ``log``."""
    with log.open("ab") as handle:
        return subprocess.Popen([sys.executable, "-m", "fedvst.cli", *args], stdout=handle, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, start_new_session=True, cwd=cwd)


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children first found, then theirs), from /proc; [] elsewhere."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, frontier = [], [pid]
    while frontier:
        below = [c for p in frontier for c in children.get(p, [])]
        found += below
        frontier = below
    return found


def stop_process_group(process: subprocess.Popen, sig: int = signal.SIGTERM, grace_s: float = 30.0) -> int | None:
    """Send ``sig`` to the process group ``process`` leads; SIGKILL it after ``grace_s``. Processes it
    started in groups of their own (Flower's SuperExec and app processes) are stopped too. Returns the
    exit code."""
    tree = descendants(process.pid)
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            process.wait()
    deadline = time.monotonic() + 5
    for pid in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() and not is_zombie(pid) for pid in tree):
        time.sleep(0.1)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return process.returncode


def raise_interrupt(signum: int, frame: object) -> None:
    """A signal handler that stops the main thread as Ctrl-C does (KeyboardInterrupt), so that
    SIGTERM runs the same clean-up (``finally`` blocks that stop child processes)."""
    raise KeyboardInterrupt(f"stopped by signal {signum}")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block (main thread only; elsewhere a no-op), SIGTERM raises KeyboardInterrupt;
    the previous handler is back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def exit_past_lingering_threads(code: int) -> None:
    """End the process now with exit status ``code`` if a non-daemon thread other than the caller's
    is still alive; else return (the caller exits as usual). A simulation stopped mid-round leaves
    Flower's ServerApp thread waiting, up to its hour-long reply timeout, for replies from an engine
    that has stopped; Python joins such a thread before it exits, so the process would sit idle. Call
    it after every clean-up has run: output is flushed first, and stored files are written atomically,
    so ending here loses nothing already written."""
    me = threading.current_thread()
    if not any(t is not me and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie not yet reaped, or gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


class Service(Protocol):
    """A long-running server with start, stop (idempotent, any thread) and wait."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def wait(self) -> None: ...


def run_until_signalled(service: Service, banner: Callable[[], str], name: str) -> None:
    """Start ``service``, print ``banner()``, block until SIGTERM/SIGINT, stop it cleanly."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: threading.Thread(target=service.stop, daemon=True).start())
    try:
        service.start()
    except BaseException:
        service.stop()
        raise
    print(banner(), flush=True)
    service.wait()
    print(f"{name}: stopped", flush=True)


if __name__ == "__main__":
    die_with_parent()
    os.execvp(sys.argv[1], sys.argv[1:])
