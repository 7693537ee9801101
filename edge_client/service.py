"""The edge's gRPC stylization service for phones (``fedvst.v1.Stylizer``).

Every request is parsed and checked before any pixel is decoded: message size, image
bytes, pixel count, target size, reply format, style handle. Streams are admitted and cut off
when idle by ``StreamGuard``; requests beyond ``capacity`` (waiting plus running) are refused
with RESOURCE_EXHAUSTED instead of queueing without bound, with a retry-after hint in gRPC's
own trailing metadata key (``grpc-retry-pushback-ms``), which the phones' retry policy obeys.
Pixels are decoded only inside a capacity slot, so at most ``capacity × max_input_pixels`` are
decoded at once, and a key frame is shrunk to the network's working size before the network.
The count is published to the training process (``LoadSignal``), which backs off while phones
wait. Frames a phone lets us keep are stored durably *before* the reply that says ``stored``.
"""

from __future__ import annotations

import io
import logging
import random
import sqlite3
import statistics
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import numpy as np
from google.protobuf.message import DecodeError
from PIL import Image

from edge_client.frame_store import FrameStore
from edge_client.load_signal import LoadSignal
from edge_client.model_slot import ModelSlot
from edge_client.stream_guard import StreamGuard, StreamTicket
from fedvst.protocol import fedvst_pb2
from fedvst.protocol.fields import field_message
from fedvst.protocol.security import RETRY_PUSHBACK
from stylizer.checkpoint import CheckpointError
from stylizer.field import FieldError
from stylizer.images import MAX_SIDE, ImageError, decode_image_bytes
from stylizer.inference import style_key

log = logging.getLogger(__name__)
SERVICE = "fedvst.v1.Stylizer"


@dataclass(frozen=True)
class Limits:
    """Per-request limits."""

    max_image_bytes: int = 16 << 20
    max_input_pixels: int = 3840 * 2160  # decoded per request; phones send key frames at working size
    max_output_pixels: int = 3840 * 2160
    capacity: int = 8  # requests waiting or running at once
    max_styles: int = 64
    min_style_side: int = 32  # smaller styles have no statistics worth matching
    streams: int | None = None  # Stylize streams open at once (default: capacity)
    streams_per_peer: int | None = None  # per client host (default: half of streams, at least 1)
    stream_idle_s: float = 30.0  # a stream with no request in progress or arriving for this long is closed

    @property
    def max_streams(self) -> int:
        return self.streams or self.capacity

    @property
    def max_streams_per_peer(self) -> int:
        return self.streams_per_peer or max(1, self.max_streams // 2)


@dataclass
class Stats:
    """Counters the benchmark and the operator read."""

    served: int = 0
    rejected: int = 0
    first_served_at: float | None = None
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))  # the most recent


IMAGE_FORMATS = frozenset(fedvst_pb2.ImageFormat.values())


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> None:
    context.abort(code, message)


def encode_image(image: np.ndarray, fmt: int) -> bytes:
    """(H, W, 3) uint8 → PNG or JPEG bytes."""
    buffer = io.BytesIO()
    if fmt == fedvst_pb2.IMAGE_FORMAT_JPEG:
        Image.fromarray(image).save(buffer, format="JPEG", quality=95)
    else:
        Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class StylizerService:
    """Handlers of fedvst.v1.Stylizer; register with ``generic_handler``."""

    def __init__(self, slot: ModelSlot, store: FrameStore | None, load: LoadSignal,
                 limits: Limits | None = None) -> None:
        self.slot = slot
        self.store = store
        self.load = load
        self.limits = limits or Limits()
        self.stats = Stats()
        self._styles: OrderedDict[str, np.ndarray] = OrderedDict()
        self._styles_lock = threading.Lock()
        self._capacity = threading.BoundedSemaphore(self.limits.capacity)
        self._compute = threading.Lock()  # one forward pass at a time: the DNN uses every core
        self.streams = StreamGuard(self.limits.max_streams, self.limits.max_streams_per_peer,
                                   self.limits.stream_idle_s)
        self.started_at = time.monotonic()

    def retry_after_ms(self) -> int:
        """When a refused phone should come back: about one recent request's time, jittered so that
        refused phones do not return together; 50 ms … 5 s."""
        recent = list(self.stats.latencies_ms)[-64:]
        typical = statistics.median(recent) if recent else 100.0
        return int(min(5000.0, max(50.0, typical * random.uniform(0.5, 1.5))))

    def _refuse_busy(self, context: grpc.ServicerContext, message: str) -> None:
        self.stats.rejected += 1
        context.set_trailing_metadata(((RETRY_PUSHBACK, str(self.retry_after_ms())),))
        _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, f"{message}; retry later")

    # ---- styles -------------------------------------------------------------------------
    def upload_style(self, raw: bytes, context: grpc.ServicerContext) -> bytes:
        try:
            request = fedvst_pb2.UploadStyleRequest.FromString(raw)
        except DecodeError:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "malformed UploadStyleRequest")
        if len(request.image) > self.limits.max_image_bytes:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                   f"style image of {len(request.image)} bytes exceeds {self.limits.max_image_bytes}")
        try:
            style = decode_image_bytes(request.image, "style image", self.limits.max_input_pixels)
        except ImageError as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if min(style.shape[:2]) < self.limits.min_style_side:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                   f"style image is {style.shape[1]}×{style.shape[0]}: sides under {self.limits.min_style_side} px "
                   "are refused")
        handle = style_key(style)
        with self._styles_lock:
            self._styles[handle] = style
            self._styles.move_to_end(handle)
            while len(self._styles) > self.limits.max_styles:
                self._styles.popitem(last=False)
        if request.allow_collection and self.store is not None:
            self._keep(self.store.add_style, request.image, "style")
        return fedvst_pb2.UploadStyleReply(handle=handle, width=style.shape[1],
                                           height=style.shape[0]).SerializeToString()

    def _keep(self, add, data: bytes, what: str) -> bool:
        """Store ``data`` with ``add`` (durable when it returns); False, with one log line, if it cannot be."""
        try:
            add(data)
            return True
        except (ValueError, OSError, sqlite3.Error) as exc:  # not PNG/JPEG, undecodable, disk full
            log.warning("%s not kept for training: %s", what, exc)
            return False

    def _style(self, handle: str) -> np.ndarray | None:
        with self._styles_lock:
            return self._styles.get(handle)

    # ---- key frames ---------------------------------------------------------------------
    def _check(self, request: fedvst_pb2.KeyFrame, context: grpc.ServicerContext) -> np.ndarray:
        """Everything about a request that needs no decoding; returns the style."""
        style = self._style(request.style_handle)
        if style is None:
            _abort(context, grpc.StatusCode.NOT_FOUND,
                   f"unknown style handle {request.style_handle[:16]!r}: upload the style first")
        if not request.image:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"frame {request.index} is empty (0 bytes)")
        if len(request.image) > self.limits.max_image_bytes:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                   f"frame {request.index} of {len(request.image)} bytes exceeds {self.limits.max_image_bytes}")
        width, height = request.target_width, request.target_height
        if not (16 <= width <= MAX_SIDE and 16 <= height <= MAX_SIDE) or \
                width * height > self.limits.max_output_pixels:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                   f"target size {width}×{height} outside 16…{MAX_SIDE} px or over "
                   f"{self.limits.max_output_pixels} pixels")
        if request.reply_format not in IMAGE_FORMATS:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                   f"frame {request.index}: unknown reply_format {request.reply_format}")
        return style

    def _stylize_one(self, request: fedvst_pb2.KeyFrame, context: grpc.ServicerContext) -> bytes:
        style = self._check(request, context)
        if not self._capacity.acquire(blocking=False):
            self._refuse_busy(context, f"edge is at capacity ({self.limits.capacity} requests)")
        self.load.add(1)
        start = time.perf_counter()
        try:
            frame = decode_image_bytes(request.image, f"frame {request.index}", self.limits.max_input_pixels)
            stylizer, model_sha256 = self.slot.current_with_hash()
            size = (request.target_height, request.target_width)
            strength = request.strength if request.HasField("strength") else 1.0
            with self._compute:
                handle = stylizer.add_style(style, request.style_handle)  # cached after the first frame
                if request.reply_field and stylizer.head == "affine":
                    field_reply = field_message(stylizer.colour_field(frame, handle, size, strength))  # checked first
                    out = None
                else:  # an image: asked for, or a model with no field (the phone renders either)
                    out = stylizer.stylize_frame(frame, handle, size, strength=strength)  # at its working size
        except ImageError as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except FieldError as exc:
            _abort(context, grpc.StatusCode.INTERNAL, f"the model produced an unusable field for frame "
                                                     f"{request.index}: {exc}")
        except CheckpointError as exc:
            _abort(context, grpc.StatusCode.UNAVAILABLE, str(exc))
        except (ValueError, KeyError) as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        finally:
            self.load.add(-1)
            self._capacity.release()
        stored = request.allow_collection and self.store is not None and \
            self._keep(self.store.add_frame, request.image, f"frame {request.index}")  # durable before the reply
        if out is None:
            reply = fedvst_pb2.StylizedFrame(index=request.index, field=field_reply, width=size[1], height=size[0],
                                             model_sha256=model_sha256, stored=stored)
        else:
            reply = fedvst_pb2.StylizedFrame(index=request.index, image=encode_image(out, request.reply_format),
                                             format=request.reply_format, width=out.shape[1], height=out.shape[0],
                                             model_sha256=model_sha256, stored=stored)
        self.stats.served += 1
        self.stats.latencies_ms.append((time.perf_counter() - start) * 1000)
        if self.stats.first_served_at is None:
            self.stats.first_served_at = time.monotonic()
            log.info("first phone frame served (%.0f ms for it; the edge had been up %.1f s)",
                     self.stats.latencies_ms[-1], self.stats.first_served_at - self.started_at)
        return reply.SerializeToString()

    def stylize(self, raw_requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        ticket = self.streams.open(context)
        if not isinstance(ticket, StreamTicket):
            self._refuse_busy(context, ticket)
        try:
            for raw in raw_requests:
                ticket.working(True)
                try:
                    request = fedvst_pb2.KeyFrame.FromString(raw)
                except DecodeError:
                    _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "malformed KeyFrame message")
                reply = self._stylize_one(request, context)
                ticket.working(False)
                yield reply
        finally:
            ticket.close()

    def generic_handler(self) -> grpc.GenericRpcHandler:
        """Handlers taking raw bytes, so that malformed messages get INVALID_ARGUMENT."""
        return grpc.method_handlers_generic_handler(SERVICE, {
            "UploadStyle": grpc.unary_unary_rpc_method_handler(self.upload_style),
            "Stylize": grpc.stream_stream_rpc_method_handler(self.stylize),
        })
