"""Fetch a verified global checkpoint from the cloud's model registry into the model slot."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from edge_client.model_slot import keep_previous
from fedvst.protocol import fedvst_pb2, fedvst_pb2_grpc
from fedvst.protocol.security import call_metadata, open_channel
from stylizer.checkpoint import MAX_METADATA_BYTES, CheckpointError, write_checkpoint_bytes

MAX_MODEL_BYTES = 1 << 30
_RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND)


class RegistryUnavailableError(CheckpointError):
    """The registry cannot be reached or holds no model yet: worth retrying."""


@dataclass(frozen=True)
class Restored:
    """What was fetched: its round, sha256, size and how long it took."""

    round: int
    sha256: str
    bytes: int
    seconds: float


def fetch_model(address: str, destination: Path, *, round_number: int = -1, token: str | None = None,
                ca: Path | None = None, cert: Path | None = None, key: Path | None = None,
                timeout_s: float = 120.0) -> Restored:
    """Download round ``round_number`` (-1: newest), verify it and store it at ``destination``."""
    start = time.monotonic()
    with open_channel(address, ca=ca, cert=cert, key=key) as channel:
        stub = fedvst_pb2_grpc.ModelRegistryStub(channel)
        stream = stub.GetModel(fedvst_pb2.GetModelRequest(round=round_number), timeout=timeout_s,
                               metadata=call_metadata(token))
        try:
            first = next(stream)
        except StopIteration:
            raise CheckpointError("registry sent nothing") from None
        except grpc.RpcError as exc:
            kind = RegistryUnavailableError if exc.code() in _RETRYABLE else CheckpointError
            raise kind(f"registry at {address} refused: {exc.code().name}: {exc.details()}") from None
        if not first.HasField("header"):
            raise CheckpointError("registry reply did not start with a header")
        header = first.header
        if header.size > MAX_MODEL_BYTES or len(header.metadata_json) > MAX_METADATA_BYTES:
            raise CheckpointError(f"registry offers an implausibly large model ({header.size} bytes)")
        parts: list[bytes] = []
        received = 0
        try:
            for chunk in stream:
                if not chunk.HasField("data"):
                    raise CheckpointError("registry sent a second header")
                received += len(chunk.data)
                if received > header.size:
                    raise CheckpointError("registry sent more bytes than it announced")
                parts.append(chunk.data)
        except grpc.RpcError as exc:
            raise CheckpointError(f"model download from {address} broke off: {exc.code().name}") from None
    if received != header.size:
        raise CheckpointError(f"model download incomplete: {received} of {header.size} bytes")
    try:
        record = json.loads(header.metadata_json)
    except ValueError:
        raise CheckpointError("registry sent unreadable metadata") from None
    if not isinstance(record, dict) or record.get("sha256") != header.sha256:
        raise CheckpointError("registry header and metadata disagree on the model hash")
    keep_previous(Path(destination))
    checkpoint = write_checkpoint_bytes(Path(destination), b"".join(parts), record)
    return Restored(int(header.round), checkpoint.sha256, received, time.monotonic() - start)
