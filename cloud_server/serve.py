"""``fedvst cloud serve``: Flower SuperLink + model registry + the federated run, one command.

Layout of ``data_dir``: ``checkpoints/`` (every round, see store.py), ``superlink.db``
(Flower's state), ``flwr/`` (FLWR_HOME: the connection ``flwr run`` uses), ``logs/``.
The SuperLink runs as a child process in its own process group with runtime dependency
installation off; the registry runs in this process. Restarting the command resumes the
run from the newest verified checkpoint (the ServerApp offsets Flower's round numbers).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from cloud_server.app import CLOUD_DIR_ENV, SERVERAPP_LOG, starting_point
from cloud_server.dashboard import Dashboard
from cloud_server.heldout import DEFAULT_HELDOUT, describe_heldout
from cloud_server.registry import start_registry
from cloud_server.status import read_status, status_path, write_status
from cloud_server.store import CheckpointStore
from fedvst.grpc_noise import HandshakeNoise, explaining_as
from fedvst.processes import (
    DataDirLock,
    check_listenable,
    flower_executable,
    guard_flower_children,
    run_until_signalled,
    start_child,
    stop_process_group,
    wait_for_port,
)
from fedvst.protocol.security import check_tls_pair, read_token

log = logging.getLogger(__name__)
APP_DIR = Path(__file__).parent / "flower_app"
PATH_KEYS = ("data-dir", "initial-checkpoint", "heldout-dir")  # run-config values that are paths
CONNECTION = "fedvst"


def toml_value(value: object) -> str:
    """A run-config value as TOML (strings quoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))


@dataclass
class CloudSettings:
    """Everything ``fedvst cloud serve`` takes."""

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 9092  # SuperLink API (SuperNodes and `flwr` connect here)
    registry_port: int = 9097
    run_config: dict[str, object] = field(default_factory=dict)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    token_file: Path | None = None
    node_auth: bool = False
    node_public_keys: list[Path] = field(default_factory=list)
    start_run: bool = True
    fresh: bool = False  # start over from the initial model when every kept round is damaged
    dashboard: str | None = None  # HOST:PORT of the read-only dashboard page (off when None)

    def __post_init__(self) -> None:
        # the SuperLink, flwr and the ServerApp run in other working directories: every path is absolute
        self.data_dir = Path(self.data_dir).resolve()
        for name in ("tls_cert", "tls_key", "tls_ca", "token_file"):
            if getattr(self, name) is not None:
                setattr(self, name, Path(getattr(self, name)).resolve())
        self.node_public_keys = [Path(key).resolve() for key in self.node_public_keys]
        for key in PATH_KEYS:
            if self.run_config.get(key):
                self.run_config[key] = str(Path(str(self.run_config[key])).resolve())


class Cloud:
    """A running cloud; ``start`` then ``stop``."""

    def __init__(self, settings: CloudSettings) -> None:
        self.settings = settings
        self.root = Path(settings.data_dir).resolve()
        self.flwr_home = self.root / "flwr"
        self.superlink: subprocess.Popen | None = None
        self.registry = None
        self.registry_port: int | None = None
        self.dashboard: Dashboard | None = None
        self.run_id: str | None = None
        self.data_lock: DataDirLock | None = None
        self.heldout = ""
        self.failure: str | None = None  # why the ServerApp ended early, once it has
        self._stopped = threading.Event()

    @property
    def address(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "FLWR_HOME": str(self.flwr_home), CLOUD_DIR_ENV: str(self.root),
                "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"}

    def write_connection(self) -> None:
        """The SuperLink connection ``flwr`` uses, in $FLWR_HOME/config.toml."""
        self.flwr_home.mkdir(parents=True, exist_ok=True)
        security = (f'root-certificates = "{Path(self.settings.tls_ca).resolve()}"\n' if self.settings.tls_ca
                    else "insecure = true\n")
        (self.flwr_home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\naddress = "{self.address}"\n'
            + security)

    def superlink_command(self) -> list[str]:
        s = self.settings
        command = [flower_executable("flower-superlink"), "--host", s.host, "--port", str(s.port),
                   "--database", str(self.root / "superlink.db"), "--disable-runtime-dependency-installation"]
        if s.tls_cert and s.tls_key:
            command += ["--ssl-certfile", str(s.tls_cert), "--ssl-keyfile", str(s.tls_key)]
            if s.tls_ca:
                command += ["--ssl-ca-certfile", str(s.tls_ca)]
        else:
            command.append("--insecure")
        if s.node_auth:
            command.append("--enable-supernode-auth")
        return command

    def flwr(self, *args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess:
        """Run the ``flwr`` CLI against this cloud's SuperLink."""
        return subprocess.run([flower_executable("flwr"), *args], env=self.env(), capture_output=True, text=True,
                              timeout=timeout_s, cwd=self.root)

    def register_node(self, public_key: Path) -> None:
        """Allow the SuperNode holding the private half of ``public_key`` to join."""
        result = self.flwr("supernode", "register", str(public_key), CONNECTION)
        if result.returncode != 0 and "already in use" in result.stdout + result.stderr:
            log.info("SuperNode key %s was registered before (the SuperLink keeps its state)", public_key)
            return
        if result.returncode != 0:
            raise RuntimeError(f"could not register {public_key}: {(result.stdout + result.stderr).strip()[-300:]}")

    def submit_run(self) -> str:
        """Start the federated run; returns Flower's run id."""
        config = {"data-dir": str(self.root), **self.settings.run_config}
        overrides = " ".join(f"{key}={toml_value(value)}" for key, value in config.items())
        result = self.flwr("run", str(APP_DIR), CONNECTION, "--run-config", overrides, "--format", "json")
        try:
            reply = json.loads(result.stdout[result.stdout.index("{"):])
        except ValueError:
            reply = {}
        if result.returncode != 0 or not reply.get("success"):
            raise RuntimeError("flwr run failed: " + (reply.get("error-message") or result.stderr or result.stdout)
                               .strip().splitlines()[-1])
        return str(reply["run-id"])

    def heldout_set(self) -> str:
        """Fix the pictures every round is scored on (run config ``heldout-dir``: ``--heldout``, else the
        sample media's held-out split, written once to DATA/heldout); returns a line saying which."""
        config = self.settings.run_config
        if config.get("heldout-dir"):
            return describe_heldout(Path(str(config["heldout-dir"])))
        from fedvst.samples import write_heldout

        folder = self.root / DEFAULT_HELDOUT
        try:
            write_heldout(folder)
        except OSError as exc:
            raise OSError(f"could not write the held-out set to {folder}: {exc}; pass --heldout DIR") from None
        config["heldout-dir"] = str(folder)
        return describe_heldout(folder) + " (the sample media's held-out split)"

    def start(self) -> None:
        """SuperLink, then node registrations, then the registry; the run last. The registry
        listening means the cloud is ready for edges."""
        s = self.settings
        self.data_lock = DataDirLock(self.root, "cloud")  # before anything in it is touched
        for port in (s.port, s.registry_port):  # or the run would go to whichever SuperLink holds the port
            check_listenable(s.host, port)
        if s.port == s.registry_port and s.port:
            raise ValueError(f"the SuperLink and the registry need different ports, both are {s.port}")
        if s.tls_cert and s.tls_key:  # the SuperLink would only die with it in its log
            check_tls_pair(s.tls_cert, s.tls_key)
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        self.write_connection()
        token = read_token(s.token_file)
        self.heldout = self.heldout_set()
        if s.dashboard:  # bound before anything starts, so a taken port is refused up front
            self.dashboard = Dashboard(self.root, s.dashboard, token=token, heldout=self.heldout)
        # the initial model is round 0 before anything listens, so a restoring edge always finds one
        done, _, _ = starting_point(CheckpointStore(self.root / "checkpoints"),
                                    str(s.run_config.get("initial-checkpoint", "")), fresh=s.fresh, announce=False)
        # a report left by a process that died must not read as what this one does
        resuming = f"resuming after round {done}" if done else "starting from round 0"
        write_status(status_path(self.root), "starting", done + 1, int(s.run_config.get("min-nodes", 1)),
                     f"cloud started (pid {os.getpid()}), {resuming}; the ServerApp has not reported yet")
        self.superlink = start_child(self.superlink_command(), self.root / "logs" / "superlink.log",
                                     env=guard_flower_children(self.root, self.env()),  # its SuperExec, ServerApps
                                     cwd=self.root)
        wait_for_port(s.port, self.superlink, host=s.host, timeout_s=60, log=self.root / "logs" / "superlink.log",
                      what="the SuperLink")
        for key in s.node_public_keys:
            self.register_node(key)
        self.registry, self.registry_port = start_registry(
            self.root / "checkpoints", f"{s.host}:{s.registry_port}", token=token, tls_cert=s.tls_cert,
            tls_key=s.tls_key, tls_ca=None)
        if self.dashboard is not None:
            self.dashboard.start()
        if s.start_run:
            self.run_id = self.submit_run()
            threading.Thread(target=self._echo_serverapp_log, daemon=True, name="serverapp-log").start()

    def _echo_serverapp_log(self) -> None:
        """Print the ServerApp's lines (rounds, and why none starts) as they are written; every
        second, check that it is still alive (``serverapp_failure``) and stop the cloud if not."""
        path = self.root / "logs" / SERVERAPP_LOG
        offset = path.stat().st_size if path.exists() else 0  # earlier runs' lines are in the file already
        while not self._stopped.wait(1.0):
            try:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read()
            except OSError:
                chunk = b""
            complete = chunk[:chunk.rfind(b"\n") + 1]
            offset += len(complete)
            for line in complete.decode("utf-8", "replace").splitlines():
                print(f"cloud: {line}", flush=True)
            failure = serverapp_failure(read_status(status_path(self.root)))
            if failure:
                self.failure = failure
                print(f"cloud: {failure}; stopping (see {path})", flush=True)
                self.stop()

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.superlink is not None:
            stop_process_group(self.superlink)
        if self.registry is not None:
            self.registry.stop(5).wait()
        if self.dashboard is not None:
            self.dashboard.stop()
        if self.data_lock is not None:
            self.data_lock.release()

    def wait(self) -> None:
        self._stopped.wait()


def serverapp_failure(status: dict | None) -> str | None:
    """Why the ServerApp that wrote ``status`` (status.json) ended before finishing, or None while it
    runs: it reported ``failed``, or the process that last wrote ``waiting``/``training`` is gone."""
    if not status:
        return None
    if status.get("state") == "failed":
        return str(status.get("line") or "the ServerApp failed")
    pid = status.get("pid")
    if status.get("state") in ("waiting", "training") and isinstance(pid, int) and not process_alive(pid):
        return (f"the ServerApp (pid {pid}) ended while {status['state']} for round {status.get('round')} "
                "without a word")
    return None


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (an exited child nobody has waited for)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def serve(settings: CloudSettings, noise: HandshakeNoise | None = None) -> None:
    """Run until SIGTERM or SIGINT, or until the ServerApp fails (RuntimeError with its reason, so
    the command exits non-zero); ``noise`` (started by the caller before grpc was imported, see
    ``fedvst.grpc_noise``) is told this cloud's name and stopped at the end."""
    cloud = Cloud(settings)
    with explaining_as(noise, f"cloud registry {settings.host}:{settings.registry_port}",
                       "fedvst status --ca, fedvst edge serve --tls-ca"):
        run_until_signalled(cloud, lambda: (
            f"cloud: SuperLink on {cloud.address} (SuperNodes connect here), model registry on "
            f"{settings.host}:{cloud.registry_port}; run {cloud.run_id or '(none started)'}; data in {cloud.root}; "
            f"every round is scored on {cloud.heldout}"
            + (f"; dashboard on {cloud.dashboard.how_to_open}" if cloud.dashboard is not None else "")),
            "cloud")
    if cloud.failure:
        raise RuntimeError(f"{cloud.failure} (its log: {cloud.root / 'logs' / SERVERAPP_LOG})")
