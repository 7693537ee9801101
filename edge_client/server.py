"""``fedvst edge serve``: the stylization service and the edge's Flower SuperNode, together.

Start-up: if the model slot is missing or fails verification, the newest global model is
fetched from the cloud's registry and verified; then the gRPC service listens, and a
``flower-supernode`` (ClientApp ``edge_client.app:app``) joins the cloud's SuperLink.
SIGTERM/SIGINT stop both: the SuperNode by its process group, the service gracefully.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from edge_client.frame_store import DEFAULT_QUOTA, QUARANTINE, FrameStore
from edge_client.load_signal import LoadSignal
from edge_client.model_slot import ModelSlot, recover_previous, slot_path
from edge_client.restore import RegistryUnavailableError, fetch_model
from edge_client.service import SERVICE, Limits, StylizerService
from edge_client.style_bank import NONE, SAMPLES, check_style_bank
from edge_client.supernode_signoff import last_node_id, sign_off
from fedvst.grpc_noise import HandshakeNoise, explaining_as
from fedvst.processes import (
    DataDirLock,
    check_listenable,
    flower_executable,
    guard_flower_children,
    run_until_signalled,
    start_child,
    stop_process_group,
)
from fedvst.protocol.security import (
    EXCLUSIVE_PORT,
    MAX_MESSAGE_BYTES,
    TokenInterceptor,
    listen,
    read_token,
    server_credentials,
)
from stylizer.checkpoint import (
    CheckpointError,
    load_checkpoint,
    metadata_path,
    move_checkpoint_aside,
    read_metadata,
    write_checkpoint_bytes,
)

log = logging.getLogger(__name__)
SPARE_THREADS = 4  # server threads no Stylize stream can take


@dataclass
class EdgeSettings:
    """Everything ``fedvst edge serve`` takes."""

    port: int
    data_dir: Path
    cloud: str | None = None  # SuperLink address for the SuperNode
    registry: str | None = None  # model registry address for restores
    host: str = "127.0.0.1"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    token_file: Path | None = None
    node_private_key: Path | None = None
    supernode_port: int | None = None
    quota_bytes: int = DEFAULT_QUOTA
    device: str | None = None
    limits: Limits | None = None
    initial_checkpoint: Path | None = None
    restore_wait_s: float = 30.0  # how long to wait for an unreachable or empty registry
    local_training: bool = True  # with a cloud: train between syncs in a background process
    name: str | None = None  # how the cloud names this edge (default: host:port)
    style_bank: str = SAMPLES  # styles trained with besides the phones' ones (``edge_client.style_bank``)

    def __post_init__(self) -> None:
        if self.name is not None:
            check_edge_name(self.name)
        if self.style_bank not in (SAMPLES, NONE):
            self.style_bank = str(Path(self.style_bank).resolve())
        check_style_bank(self.style_bank)  # a missing folder or an unreadable picture: one line, before anything
        # the SuperNode and the ClientApp run in other working directories: every path is absolute
        for name in ("data_dir", "tls_cert", "tls_key", "tls_ca", "token_file", "node_private_key",
                     "initial_checkpoint"):
            if getattr(self, name) is not None:
                setattr(self, name, Path(getattr(self, name)).resolve())


EDGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@\[\]-]{0,79}$")


def check_edge_name(name: str) -> str:
    """``name`` if it can name an edge (1–80 of letters, digits and ``._:@[]-``, starting with a
    letter or digit); ValueError saying so otherwise."""
    if not EDGE_NAME.match(name):
        raise ValueError(f"--name {name!r}: use 1 to 80 letters, digits and . _ : @ [ ] -, starting with a letter "
                         "or digit (for example edge-paris-1)")
    return name


def default_edge_name(host: str, port: int) -> str:
    """host:port of the service, with this machine's host name when it listens on every address:
    unique among edges that phones can reach, and the same at every restart."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = socket.gethostname()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def ensure_model(settings: EdgeSettings, token: str | None) -> str:
    """Make the model slot hold a verified model; returns how it got there."""
    path = slot_path(settings.data_dir)
    try:
        load_checkpoint(path)
        return "local"
    except (CheckpointError, OSError) as exc:
        reason = str(exc)
    cut_by_a_crash = path.exists() or metadata_path(path).exists()  # not an edge's first start
    if not cut_by_a_crash:
        reason = "none yet: a first start"
    if cut_by_a_crash:  # whatever replaces it, the damaged pair is kept, not written over
        moved = move_checkpoint_aside(path, settings.data_dir / QUARANTINE / "model")
        log.warning("model slot %s is unusable (%s); moved to %s", path, reason, moved[0].parent)
    if cut_by_a_crash and recover_previous(path, reason):
        return "previous local model"
    if settings.registry:
        deadline = time.monotonic() + settings.restore_wait_s
        while True:
            try:
                restored = fetch_model(settings.registry, path, token=token, ca=settings.tls_ca,
                                       cert=settings.tls_cert, key=settings.tls_key)
                break
            except RegistryUnavailableError as exc:
                if time.monotonic() > deadline:
                    raise CheckpointError(f"{exc} (gave up after {settings.restore_wait_s:.0f} s)") from None
                log.info("waiting for the registry: %s", exc)
                time.sleep(1.0)
        log.info("restored round %d (%s…) from %s in %.2f s (local model: %s)", restored.round,
                 restored.sha256[:12], settings.registry, restored.seconds, reason)
        return f"registry round {restored.round}"
    if settings.initial_checkpoint is not None:
        # verified (hash, keys, shapes) by write_checkpoint_bytes before anything is written
        write_checkpoint_bytes(path, settings.initial_checkpoint.read_bytes(),
                               read_metadata(settings.initial_checkpoint))
        return f"initial checkpoint {settings.initial_checkpoint}"
    raise CheckpointError(f"no usable local model ({reason}): pass --registry to restore one from the cloud "
                          "or --initial-checkpoint to start from a file")


REFUSED_RETRY_S = 5.0  # how often a SuperNode the cloud refused is tried again
ACTIVATION_REFUSED = "Failed to activate SuperNode"  # Flower's words for a refused node key


def supernode_refusal(supernode_log: Path, offset: int, authenticated: bool) -> str:
    """Why the cloud refused the SuperNode whose output began at ``offset`` of ``supernode_log``, in
    words for an operator ("" if it was not refused)."""
    try:
        with supernode_log.open("rb") as handle:
            handle.seek(offset)
            text = handle.read(1 << 20).decode(errors="replace")
    except OSError:
        return ""
    if ACTIVATION_REFUSED not in text:
        return ""
    if not authenticated:
        return "the cloud refused this SuperNode (Failed to activate SuperNode)"
    return ("the cloud refused this edge's node key: either it is not registered there (fedvst cloud serve "
            "--node-key KEY.pub), or the cloud still counts this edge's previous SuperNode as online because it "
            "was killed without signing off; Flower frees it 60 s after its last heartbeat")


class EdgeServer:
    """The running edge: gRPC server + optional SuperNode process."""

    def __init__(self, settings: EdgeSettings) -> None:
        self.settings = settings
        self.started = time.monotonic()
        self.data_lock = DataDirLock(settings.data_dir, "edge")  # before anything in it is touched
        try:
            self._setup(settings)
        except BaseException:
            self.data_lock.release()
            raise

    def _setup(self, settings: EdgeSettings) -> None:
        check_listenable(settings.host, settings.port)
        token = read_token(settings.token_file)
        self.model_source = ensure_model(settings, token)
        self.slot = ModelSlot(slot_path(settings.data_dir), device=settings.device)
        self.slot.load()
        self.store = FrameStore(settings.data_dir, settings.quota_bytes)
        self.load = LoadSignal(settings.data_dir / "serving.load")
        self.load.reset()
        self.service = StylizerService(self.slot, self.store, self.load, settings.limits)
        self.service.started_at = self.started
        limits = self.service.limits
        # streams can hold at most max_streams threads (StreamGuard); the rest are for health checks,
        # style uploads and refusals, which never wait on a phone
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=limits.max_streams + SPARE_THREADS),
            interceptors=[TokenInterceptor(token)] if token else [],
            maximum_concurrent_rpcs=limits.max_streams + limits.capacity + SPARE_THREADS,
            options=[("grpc.max_receive_message_length", limits.max_image_bytes + (1 << 16)),
                     ("grpc.max_send_message_length", MAX_MESSAGE_BYTES), EXCLUSIVE_PORT])
        self.server.add_generic_rpc_handlers((self.service.generic_handler(),))
        self.health = health.HealthServicer()
        self.health.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        credentials = server_credentials(settings.tls_cert, settings.tls_key) \
            if settings.tls_cert and settings.tls_key else None
        self.port = listen(self.server, f"{settings.host}:{settings.port}", credentials)
        self.name = settings.name or default_edge_name(settings.host, self.port)
        if settings.cloud:  # the SuperNode's runtime API (on 127.0.0.1) would otherwise fail and restart forever
            try:
                check_listenable("127.0.0.1", self.supernode_port)
            except (ValueError, OSError) as exc:
                raise OSError(f"SuperNode port: {exc}") from None
            self.supernode_command()  # a missing key half is refused now, not in the supervisor thread
        self.supernode: subprocess.Popen | None = None
        self.trainer: subprocess.Popen | None = None
        self._children_lock = threading.Lock()
        self._stopped = threading.Event()

    @property
    def supernode_port(self) -> int:
        """The SuperNode's local runtime port: --supernode-port, else the service's port + 1."""
        return self.settings.supernode_port or self.port + 1

    def supernode_command(self) -> list[str]:
        settings = self.settings
        node_config = (f"data-dir='{settings.data_dir.resolve()}' name='{self.name}'"
                       + (" local-training=true" if self.trains_locally else "")
                       + f" style-bank='{settings.style_bank}'")
        command = [flower_executable("flower-supernode"), "--superlink", str(settings.cloud), "--node-config",
                   node_config,
                    "--port", str(self.supernode_port)]
        command += ["--root-certificates", str(settings.tls_ca)] if settings.tls_ca else ["--insecure"]
        if settings.node_private_key:
            # Flower 1.41 still needs the public half beside the private key (KEY.pub)
            public = Path(f"{settings.node_private_key}.pub")
            if not public.is_file():
                raise FileNotFoundError(f"SuperNode public key {public} not found beside the private key")
            command += ["--auth-supernode-private-key", str(settings.node_private_key),
                        "--auth-supernode-public-key", str(public)]
        return command

    @property
    def trains_locally(self) -> bool:
        """Whether a background trainer trains between syncs (only an edge that syncs with a cloud)."""
        return bool(self.settings.cloud) and self.settings.local_training

    def trainer_command(self) -> list[str]:
        command = [sys.executable, "-m", "edge_client.local_training", "--data-dir", str(self.settings.data_dir),
                   "--style-bank", self.settings.style_bank]
        return command + (["--device", self.settings.device] if self.settings.device else [])

    def start(self) -> None:
        self.server.start()
        threading.Thread(target=self._watch_slot, daemon=True, name="slot-watch").start()
        if self.settings.cloud:
            threading.Thread(target=self._supervise_supernode, daemon=True, name="supernode").start()
        if self.trains_locally:
            threading.Thread(target=self._supervise_trainer, daemon=True, name="trainer").start()

    def _watch_slot(self, every_s: float = 2.0) -> None:
        """Load a model the cloud put into the slot as soon as it lands (the swap is logged then, and
        the next phone does not wait for the load), not at the next request."""
        while not self._stopped.wait(every_s):
            try:
                self.slot.current()
            except Exception as exc:  # the service reports slot problems to phones; this thread must live
                log.debug("slot watch: %s", exc)

    def _supervise_trainer(self) -> None:
        """Keep the background trainer (``edge_client.local_training``) running while the edge runs;
        restart it, with back-off, if it dies. It saves its work on SIGTERM and every 30 s."""
        delay = 1.0
        trainer_log = self.settings.data_dir / "trainer.log"
        while not self._stopped.is_set():
            started = time.monotonic()
            with self._children_lock:
                if self._stopped.is_set():
                    return
                self.trainer = start_child(self.trainer_command(), trainer_log)
            code = self.trainer.wait()
            if self._stopped.is_set():
                return
            delay = 1.0 if time.monotonic() - started > 60 else min(delay * 2, 60.0)
            log.warning("local trainer exited with %s; restarting in %.0f s (see %s)", code, delay, trainer_log)
            self._stopped.wait(delay)

    def _supervise_supernode(self) -> None:
        """Keep a SuperNode running while the edge runs: restart it (with back-off) when it exits,
        e.g. because the cloud was unreachable or restarting."""
        env = guard_flower_children(self.settings.data_dir,
                                    {**os.environ, "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1"})
        delay = 1.0
        supernode_log = self.settings.data_dir / "supernode.log"
        while not self._stopped.is_set():
            started = time.monotonic()
            offset = supernode_log.stat().st_size if supernode_log.exists() else 0
            self._sign_off_previous(supernode_log)
            with self._children_lock:
                if self._stopped.is_set():
                    return
                self.supernode = start_child(self.supernode_command(), supernode_log, env=env)
            code = self.supernode.wait()
            if self._stopped.is_set():
                return
            delay = 1.0 if time.monotonic() - started > 60 else min(delay * 2, 30.0)
            why = supernode_refusal(supernode_log, offset, bool(self.settings.node_private_key))
            if why:  # retried often: the refusal ends when the cloud's view of this edge expires
                delay = min(delay, REFUSED_RETRY_S)
            log.warning("SuperNode exited with %s%s; restarting in %.0f s (see %s)", code,
                        f": {why}" if why else "", delay, supernode_log)
            self._stopped.wait(delay)

    def _sign_off_previous(self, supernode_log: Path) -> None:
        """With node authentication: free this edge's node id on the cloud if its last SuperNode died
        without signing off, so the next one is activated now, not up to 60 s later."""
        settings = self.settings
        if settings.cloud is None or settings.node_private_key is None:
            return
        node_id = last_node_id(supernode_log)
        if node_id is None:  # no SuperNode of this edge was ever activated
            return
        taken, outcome = sign_off(settings.cloud, node_id, settings.node_private_key, settings.tls_ca)
        log.log(logging.INFO if taken else logging.DEBUG, "SuperNode: %s", outcome)

    def stop(self, grace_s: float = 5.0) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self.health.enter_graceful_shutdown()
        with self._children_lock:
            for child in (self.supernode, self.trainer):
                if child is not None:
                    stop_process_group(child, grace_s=grace_s)
        self.server.stop(grace_s).wait()
        self.service.streams.stop()
        self.store.close()
        self.load.close()
        self.data_lock.release()

    def wait(self) -> None:
        self._stopped.wait()


def serve(settings: EdgeSettings, noise: HandshakeNoise | None = None) -> None:
    """Run until SIGTERM or SIGINT; ``noise`` (started by the caller before grpc was imported, see
    ``fedvst.grpc_noise``) is told this edge's name and stopped at the end."""
    with explaining_as(noise, f"edge {settings.name or default_edge_name(settings.host, settings.port)}",
                       "fedvst stylize --edge-ca"):
        edge = EdgeServer(settings)
        joining = f"; SuperNode → {settings.cloud}" if settings.cloud else "; no --cloud: not joining federated rounds"
        run_until_signalled(edge, lambda: (
            f"edge {edge.name}: stylization service on {settings.host}:{edge.port} (model: {edge.model_source}"
            f"{'' if edge.slot.round is None or 'round' in edge.model_source else f', round {edge.slot.round}'}); "
            f"data in {settings.data_dir}{joining}"),
            "edge")
