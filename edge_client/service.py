"""The edge's gRPC stylization service for phones (``fedvst.v1.Stylizer``).

Every request is parsed and checked before any pixel is decoded: message size, image
bytes, pixel count, target size, style handle. Requests beyond ``capacity`` (waiting plus
running) are refused with RESOURCE_EXHAUSTED instead of queueing without bound; the count
is published to the training process (``LoadSignal``), which backs off while phones wait.
Frames a phone lets us keep are stored durably *before* the reply that acknowledges them.
"""

from __future__ import annotations

import io
import logging
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
from fedvst.protocol import fedvst_pb2
from fedvst.protocol.fields import field_message
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
    max_input_pixels: int = 4096 * 4096
    max_output_pixels: int = 3840 * 2160
    capacity: int = 8  # requests waiting or running at once
    max_styles: int = 64


@dataclass
class Stats:
    """Counters the benchmark and the operator read."""

    served: int = 0
    rejected: int = 0
    first_served_at: float | None = None
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))  # the most recent


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
        self.started_at = time.monotonic()

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
        handle = style_key(style)
        with self._styles_lock:
            self._styles[handle] = style
            self._styles.move_to_end(handle)
            while len(self._styles) > self.limits.max_styles:
                self._styles.popitem(last=False)
        if self.store is not None:
            self.store.add_style(request.image)
        return fedvst_pb2.UploadStyleReply(handle=handle, width=style.shape[1],
                                           height=style.shape[0]).SerializeToString()

    def _style(self, handle: str) -> np.ndarray | None:
        with self._styles_lock:
            return self._styles.get(handle)

    # ---- key frames ---------------------------------------------------------------------
    def _check(self, request: fedvst_pb2.KeyFrame, context: grpc.ServicerContext) -> tuple[np.ndarray, np.ndarray]:
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
        try:
            frame = decode_image_bytes(request.image, f"frame {request.index}", self.limits.max_input_pixels)
        except ImageError as exc:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return frame, style

    def _stylize_one(self, request: fedvst_pb2.KeyFrame, context: grpc.ServicerContext) -> bytes:
        frame, style = self._check(request, context)
        if not self._capacity.acquire(blocking=False):
            self.stats.rejected += 1
            _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                   f"edge is at capacity ({self.limits.capacity} requests); retry later")
        self.load.add(1)
        start = time.perf_counter()
        try:
            stylizer, model_sha256 = self.slot.current_with_hash()
            size = (request.target_height, request.target_width)
            with self._compute:
                handle = stylizer.add_style(style, request.style_handle)  # cached after the first frame
                if request.reply_field and stylizer.head == "affine":
                    field_reply = field_message(stylizer.colour_field(frame, handle, size))  # checked before it leaves
                    out = None
                else:  # an image: asked for, or a model with no field (the phone renders either)
                    out = stylizer.stylize(frame, handle, size=size)
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
        if request.allow_collection and self.store is not None:
            self.store.add_frame(request.image)  # durable before we acknowledge it
        if out is None:
            reply = fedvst_pb2.StylizedFrame(index=request.index, field=field_reply, width=size[1], height=size[0],
                                             model_sha256=model_sha256)
        else:
            reply = fedvst_pb2.StylizedFrame(index=request.index, image=encode_image(out, request.reply_format),
                                             format=request.reply_format, width=out.shape[1], height=out.shape[0],
                                             model_sha256=model_sha256)
        self.stats.served += 1
        self.stats.latencies_ms.append((time.perf_counter() - start) * 1000)
        if self.stats.first_served_at is None:
            self.stats.first_served_at = time.monotonic()
            log.info("first frame served %.2f s after start", self.stats.first_served_at - self.started_at)
        return reply.SerializeToString()

    def stylize(self, raw_requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for raw in raw_requests:
            try:
                request = fedvst_pb2.KeyFrame.FromString(raw)
            except DecodeError:
                _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "malformed KeyFrame message")
            yield self._stylize_one(request, context)

    def generic_handler(self) -> grpc.GenericRpcHandler:
        """Handlers taking raw bytes, so that malformed messages get INVALID_ARGUMENT."""
        return grpc.method_handlers_generic_handler(SERVICE, {
            "UploadStyle": grpc.unary_unary_rpc_method_handler(self.upload_style),
            "Stylize": grpc.stream_stream_rpc_method_handler(self.stylize),
        })
