"""Model registry: streams a verified round checkpoint (newest or named) to edges over gRPC, and
says how the federation stands (GetStatus, for ``fedvst status``).

The header carries the round, the sha256 of the tensor bytes and the checkpoint metadata;
the tensor bytes follow in chunks. Files are read and verified before the first byte is
sent, so a client never receives a checkpoint that fails its hash here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from cloud_server.overview import overview
from cloud_server.store import CheckpointStore, round_path
from fedvst.protocol import fedvst_pb2, fedvst_pb2_grpc
from fedvst.protocol.security import EXCLUSIVE_PORT, MAX_MESSAGE_BYTES, TokenInterceptor, listen, server_credentials
from stylizer.checkpoint import CheckpointError, metadata_path, parse_checkpoint_bytes, read_metadata

log = logging.getLogger(__name__)
CHUNK_BYTES = 1 << 20
NEWEST = -1  # GetModelRequest.round that asks for the newest verified round
SERVICE_NAME = "fedvst.v1.ModelRegistry"


class RegistryServicer(fedvst_pb2_grpc.ModelRegistryServicer):
    """Serves checkpoints of a CheckpointStore."""

    def __init__(self, store: CheckpointStore, cloud_root: Path | None = None) -> None:
        self.store = store
        self.cloud_root = Path(cloud_root) if cloud_root is not None else store.folder.parent

    def GetStatus(self, request: fedvst_pb2.StatusRequest,  # noqa: N802 - gRPC method name
                  context: grpc.ServicerContext) -> fedvst_pb2.CloudStatus:
        """Rounds done and the newest verified checkpoint, with the ServerApp's last report and the
        counted rounds' held-out scores (``overview.py``)."""
        state = overview(self.cloud_root, self.store)
        report, newest = state["federation"], state["newest"]
        reply = fedvst_pb2.CloudStatus(federation_json=json.dumps(report) if report is not None else "",
                                       rounds_json=json.dumps(state["rounds"]),
                                       best_round=-1 if state["best_round"] is None else state["best_round"])
        if newest is not None:
            reply.rounds_done = newest["round"]
            reply.newest_checkpoint = newest["name"]
            reply.newest_sha256 = newest["sha256"]
            reply.newest_saved_unix = newest["saved_unix"]
        return reply

    def _verified(self, round_number: int) -> tuple[int, bytes, dict]:
        if round_number < NEWEST:
            raise ValueError(f"round {round_number} does not exist: ask for a round ≥ 0, or {NEWEST} for the newest")
        if round_number == NEWEST:
            latest = self.store.latest()
            if latest is None:
                raise FileNotFoundError("the cloud has no checkpoint yet")
            round_number = latest.round
        path = round_path(self.store.folder, round_number)
        if not metadata_path(path).is_file():
            raise FileNotFoundError(f"no checkpoint of round {round_number}")
        record = read_metadata(path)
        data = path.read_bytes()
        parse_checkpoint_bytes(data, record, path.name)  # verify before sending a byte
        return round_number, data, record

    def GetModel(self, request: fedvst_pb2.GetModelRequest,  # noqa: N802 - gRPC method name
                 context: grpc.ServicerContext) -> Iterator[fedvst_pb2.ModelChunk]:
        try:
            round_number, data, record = self._verified(int(request.round))
        except FileNotFoundError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except (CheckpointError, OSError) as exc:
            log.warning("registry: refusing to serve a damaged checkpoint: %s", exc)
            context.abort(grpc.StatusCode.DATA_LOSS, f"checkpoint failed verification: {exc}")
        header = fedvst_pb2.ModelHeader(round=round_number, sha256=record["sha256"],
                                        metadata_json=json.dumps(record), size=len(data))
        yield fedvst_pb2.ModelChunk(header=header)
        for start in range(0, len(data), CHUNK_BYTES):
            yield fedvst_pb2.ModelChunk(data=data[start:start + CHUNK_BYTES])


def start_registry(store_dir: Path, address: str, *, token: str | None = None, tls_cert: Path | None = None,
                   tls_key: Path | None = None, tls_ca: Path | None = None) -> tuple[grpc.Server, int]:
    """Start the registry on ``address`` (host:port, port 0 = any); returns (server, port)."""
    interceptors = [TokenInterceptor(token)] if token else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=interceptors,
                         options=[("grpc.max_send_message_length", MAX_MESSAGE_BYTES), EXCLUSIVE_PORT])
    fedvst_pb2_grpc.add_ModelRegistryServicer_to_server(RegistryServicer(CheckpointStore(store_dir)), server)
    health_servicer = health.HealthServicer()
    health_servicer.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = listen(server, address, server_credentials(tls_cert, tls_key, tls_ca) if tls_cert and tls_key else None)
    server.start()
    return server, port
