"""Video decoding and encoding with PyAV (FFmpeg).

Frames are (H, W, 3) uint8 RGB arrays, streamed one at a time so memory stays bounded.
Every failure to open or decode becomes ``VideoError`` with a one-line message.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

MAX_VIDEO_SIDE = 8192


class VideoError(ValueError):
    """A video that cannot be read or written, with a one-line reason."""


@dataclass(frozen=True)
class VideoInfo:
    """What the output needs to match: size after rotation, frame rate, time base, audio."""

    width: int
    height: int
    frame_rate: Fraction
    time_base: Fraction
    frame_count: int  # as declared by the container (0 if unknown)
    rotation: int  # degrees the display matrix rotates the coded frames
    has_audio: bool
    codec: str


@dataclass
class DecodedFrame:
    """One decoded frame: RGB pixels, presentation time in seconds, codec key-frame flag."""

    index: int
    image: np.ndarray
    pts: int | None
    time: float | None
    key_frame: bool


def _open(path: Path) -> av.container.InputContainer:
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video not found: {path}")
    if path.stat().st_size == 0:
        raise VideoError(f"{path} is empty (0 bytes)")
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise VideoError(f"{path} is not a readable video ({exc.__class__.__name__})") from None


def _rotation(stream: av.video.stream.VideoStream) -> int:
    """Display rotation in degrees (multiple of 90) from side data, 0 if none."""
    try:
        frame_rotation = stream.codec_context.display_matrix_rotation  # type: ignore[attr-defined]
        return int(round(frame_rotation)) % 360
    except AttributeError:
        pass
    metadata_rotation = stream.metadata.get("rotate") if stream.metadata else None
    try:
        return int(metadata_rotation) % 360 if metadata_rotation is not None else 0
    except ValueError:
        return 0


def probe(path: Path) -> VideoInfo:
    """Read the header of ``path``; raises VideoError if it has no decodable video stream."""
    with _open(path) as container:
        if not container.streams.video:
            raise VideoError(f"{path} has no video stream")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            raise VideoError(f"{path} has a video stream of size {width}×{height}")
        if width > MAX_VIDEO_SIDE or height > MAX_VIDEO_SIDE:
            raise VideoError(f"{path} is {width}×{height}: sides over {MAX_VIDEO_SIDE} px are refused")
        rate = stream.average_rate or stream.guessed_rate or Fraction(30, 1)
        rotation = _rotation(stream)
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(width=width, height=height, frame_rate=Fraction(rate),
                         time_base=Fraction(stream.time_base or Fraction(1, 90000)),
                         frame_count=int(stream.frames or 0), rotation=rotation,
                         has_audio=bool(container.streams.audio), codec=stream.codec_context.name)


def _rotate(image: np.ndarray, rotation: int) -> np.ndarray:
    if rotation == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=rotation // 90))


def read_frames(path: Path, *, step: int = 1, limit: int | None = None) -> Iterator[DecodedFrame]:
    """Decode ``path`` frame by frame (every ``step``-th, at most ``limit``), rotation applied."""
    info = probe(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        emitted = 0
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index % step:
                    continue
                image = _rotate(frame.to_ndarray(format="rgb24"), (360 - info.rotation) % 360)
                time = float(frame.pts * stream.time_base) if frame.pts is not None and stream.time_base else None
                yield DecodedFrame(index, image, frame.pts, time, bool(frame.key_frame))
                emitted += 1
                if limit is not None and emitted >= limit:
                    return
        except av.error.FFmpegError as exc:
            raise VideoError(f"{path} is corrupt: decoding stopped at frame {index if emitted else 0} "
                             f"({exc.__class__.__name__})") from None


def frame_interval_seconds(info: VideoInfo) -> float:
    """Nominal seconds between frames."""
    return 1.0 / float(info.frame_rate) if info.frame_rate else math.nan
