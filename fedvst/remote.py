"""Stylization on edge servers over gRPC (``fedvst.v1.Stylizer``), as a pipeline backend."""

from __future__ import annotations

import io
from pathlib import Path

import grpc
import numpy as np
from PIL import Image

from fedvst.backends import BackendBusyError, KeyFrameJob, KeyResult
from fedvst.protocol import fedvst_pb2, fedvst_pb2_grpc
from fedvst.protocol.fields import read_field
from fedvst.protocol.security import RETRY_PUSHBACK, call_metadata, open_channel, tls_hint
from stylizer.field import FieldError
from stylizer.images import decode_image_bytes
from stylizer.render import fit_within, resize_frame

STYLE_UPLOAD_SIDE = 1024  # px, longer side of the style a phone uploads


class EdgeError(RuntimeError):
    """An edge refused or failed a request (one line: address, status, detail)."""


class EdgeBusyError(EdgeError, BackendBusyError):
    """An edge still at capacity after gRPC's retries; ``retry_after_s`` is its own hint (or None).
    It is alive: a dispatcher hands the job to another edge or comes back later."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def pushback_s(exc: grpc.RpcError) -> float | None:
    """The server's grpc-retry-pushback-ms hint in seconds, if it sent one."""
    metadata = exc.trailing_metadata() if isinstance(exc, grpc.Call) else None
    for key, value in metadata or ():
        if key == RETRY_PUSHBACK and str(value).isdigit():
            return int(value) / 1000.0
    return None


def encode_png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class RemoteBackend:
    """One edge server; key frames go as PNG (lossless). Replies are colour fields (a few KB, rendered
    here on the phone's own frame) when ``reply_field`` and the edge's model has one, else PNG images."""

    def __init__(self, address: str, *, token: str | None = None, ca: Path | None = None,
                 allow_collection: bool = False, reply_format: int = fedvst_pb2.IMAGE_FORMAT_PNG,
                 timeout_s: float = 120.0, reply_field: bool = True) -> None:
        self.name = address
        self.address = address
        self.channel = open_channel(address, ca=ca)
        self.tls = ca is not None
        self.stub = fedvst_pb2_grpc.StylizerStub(self.channel)
        self.metadata = call_metadata(token)
        self.allow_collection = allow_collection
        self.reply_format = reply_format
        self.timeout_s = timeout_s
        self.reply_field = reply_field
        self.handle: str | None = None
        self._style_png: bytes | None = None
        self.stored = 0  # key frames the edge said it kept

    def _error(self, exc: grpc.RpcError) -> EdgeError:
        """Busy only when the edge said so (RESOURCE_EXHAUSTED with its retry hint): the same status
        raised by this phone's own gRPC (a reply over its receive limit) drops the edge instead."""
        hint = tls_hint(exc, self.tls, address=self.address)
        message = f"edge {self.address}: {exc.code().name}: {exc.details()}{hint}"
        if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            retry_after = pushback_s(exc)
            if retry_after is not None:
                return EdgeBusyError(message, retry_after)
            return EdgeError(f"edge {self.address} sent what this phone refuses ({exc.details()}); "
                             "dropping that edge")
        return EdgeError(message)

    def set_style(self, style: np.ndarray) -> None:
        """Upload the style, shrunk first to ``STYLE_UPLOAD_SIDE`` px on its longer side (the edge reads
        styles at 512 px; a 24 MP photo as PNG would be over the edge's message limit)."""
        self._style_png = encode_png(resize_frame(style, fit_within(*style.shape[:2], STYLE_UPLOAD_SIDE)))
        self._upload_style()

    def _upload_style(self) -> None:
        request = fedvst_pb2.UploadStyleRequest(image=self._style_png, allow_collection=self.allow_collection)
        try:
            reply = self.stub.UploadStyle(request, metadata=self.metadata, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        self.handle = reply.handle

    def stylize_batch(self, jobs: list[KeyFrameJob]) -> list[KeyResult]:
        if self.handle is None:
            raise RuntimeError("set_style must be called before stylize_batch")
        requests = [fedvst_pb2.KeyFrame(style_handle=self.handle, index=job.index, image=encode_png(job.image),
                                        target_width=job.size[1], target_height=job.size[0],
                                        reply_format=self.reply_format, allow_collection=self.allow_collection,
                                        reply_field=self.reply_field, strength=job.strength)
                    for job in jobs]
        try:
            replies = self._stylize(requests)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND or "style handle" not in (exc.details() or ""):
                raise self._error(exc) from None
            # the edge evicted our style (other phones' uploads): upload it again, once
            self._upload_style()
            for request in requests:
                request.style_handle = self.handle
            try:
                replies = self._stylize(requests)
            except grpc.RpcError as again:
                raise self._error(again) from None
        self.stored += sum(r.stored for r in replies)
        if [r.index for r in replies] != [job.index for job in jobs]:
            raise EdgeError(f"edge {self.address} answered frames {[r.index for r in replies]} "
                            f"for {[job.index for job in jobs]}")
        out: list[KeyResult] = []
        for job, reply in zip(jobs, replies, strict=True):
            if reply.HasField("field"):
                if not self.reply_field:
                    raise EdgeError(f"edge {self.address} sent a field for frame {job.index}; an image was asked")
                try:
                    out.append(read_field(reply.field, f"field of frame {reply.index} from {self.address}"))
                except FieldError as exc:
                    raise EdgeError(str(exc)) from None
                continue
            image = decode_image_bytes(reply.image, f"stylized frame {reply.index} from {self.address}")
            if image.shape[:2] != tuple(job.size):
                raise EdgeError(f"edge {self.address} returned {image.shape[1]}×{image.shape[0]} for frame "
                                f"{job.index}, asked {job.size[1]}×{job.size[0]}")
            out.append(image)
        return out

    def _stylize(self, requests: list[fedvst_pb2.KeyFrame]) -> list[fedvst_pb2.StylizedFrame]:
        return list(self.stub.Stylize(iter(requests), metadata=self.metadata, timeout=self.timeout_s))

    def close(self) -> None:
        self.channel.close()
