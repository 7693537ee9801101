"""Video decoding and encoding with PyAV (FFmpeg).

Frames are (H, W, 3) uint8 RGB arrays, streamed one at a time so memory stays bounded.
Every failure to open or decode becomes ``VideoError`` with a one-line message.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from fedvst.video.yuv import Frame420, PlanarI420

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
    rotation: int  # degrees (counter-clockwise) the display matrix turns coded frames to show them
    has_audio: bool
    codec: str


@dataclass
class DecodedFrame:
    """One decoded frame: RGB pixels, presentation time in seconds, codec key-frame flag."""

    index: int
    image: np.ndarray | PlanarI420  # (H, W, 3) uint8 RGB, or the decoder's planes (read_frames' planar)
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


def _first_frame_rotation(container: av.container.InputContainer) -> int:
    """Counter-clockwise display rotation (0/90/180/270) of the first frame, 0 if none or undecodable."""
    try:
        for frame in container.decode(video=0):
            return int(round(getattr(frame, "rotation", 0) or 0)) % 360 // 90 * 90
    except av.error.FFmpegError:
        return 0
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
        rotation = _first_frame_rotation(container)
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(width=width, height=height, frame_rate=Fraction(rate),
                         time_base=Fraction(stream.time_base or Fraction(1, 90000)),
                         frame_count=int(stream.frames or 0), rotation=rotation,
                         has_audio=bool(container.streams.audio), codec=stream.codec_context.name)


def _rotate(image: np.ndarray, rotation: int) -> np.ndarray:
    """Turn a coded frame upright: ``rotation`` degrees counter-clockwise."""
    if rotation == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=rotation // 90))


def read_frames(path: Path, *, step: int = 1, limit: int | None = None,
                planar: bool = False) -> Iterator[DecodedFrame]:
    """Decode ``path`` frame by frame (every ``step``-th, at most ``limit``), rotation applied.
    ``planar``: each ``image`` is a ``PlanarI420`` (the decoder's own layout, no RGB conversion);
    ValueError for a video that has none (odd sides, or a display rotation)."""
    info = probe(path)
    if planar and (info.width % 2 or info.height % 2 or info.rotation):
        raise ValueError(f"{path} cannot be read as planar I420 (odd sides or a display rotation): read it as RGB")
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        emitted = 0
        try:
            for index, frame in enumerate(container.decode(stream)):
                if index % step:
                    continue
                image = (PlanarI420(frame.to_ndarray(format="yuv420p")) if planar
                         else _rotate(frame.to_ndarray(format="rgb24"), info.rotation))
                time = float(frame.pts * stream.time_base) if frame.pts is not None and stream.time_base else None
                yield DecodedFrame(index, image, frame.pts, time, bool(frame.key_frame))
                emitted += 1
                if limit is not None and emitted >= limit:
                    return
        except av.error.FFmpegError as exc:
            raise VideoError(f"{path} is corrupt: decoding stopped at frame {index if emitted else 0} "
                             f"({exc.__class__.__name__})") from None


def _even_friendly_pix_fmt(width: int, height: int) -> str:
    """yuv420p needs even sides; odd-sized videos are encoded as yuv444p instead."""
    return "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"


class VideoWriter:
    """H.264 MP4 writer that copies the source's frame rate, timestamps and audio.

    Writes to a hidden temp file beside ``path`` and renames it into place only in
    ``close(success=True)``; on failure the temp file is removed and nothing is left.
    Use as a context manager: an exception inside the block discards the output.
    """

    def __init__(self, path: Path, width: int, height: int, info: VideoInfo, *, source: Path | None = None,
                 crf: int = 20, preset: str = "veryfast") -> None:
        self.path = Path(path)
        parent = self.path.parent
        if not parent.is_dir():
            raise VideoError(f"cannot write {self.path}: folder {parent} does not exist")
        self.tmp_path = parent / f".{self.path.name}.partial{self.path.suffix or '.mp4'}"
        try:  # FFmpeg opens the file only at the first packet: find out now, not after the stylizing
            with open(self.tmp_path, "wb"):
                pass
            self.container = av.open(str(self.tmp_path), mode="w", format="mp4")
        except (av.error.FFmpegError, OSError) as exc:
            self.tmp_path.unlink(missing_ok=True)
            raise self._cannot_write(exc) from None
        try:
            self._setup(width, height, info, source, crf, preset)
        except BaseException:  # leave nothing behind: not even the empty temp file made above
            with contextlib.suppress(Exception):
                self.container.close()
            self.tmp_path.unlink(missing_ok=True)
            raise

    def _setup(self, width: int, height: int, info: VideoInfo, source: Path | None, crf: int, preset: str) -> None:
        self.stream = self.container.add_stream("libx264", rate=info.frame_rate)
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = _even_friendly_pix_fmt(width, height)
        self.stream.time_base = info.time_base
        self.stream.codec_context.time_base = info.time_base
        self.stream.options = {"crf": str(crf), "preset": preset}
        self.time_base = info.time_base
        self.frame_step = max(1, round(1 / (float(info.frame_rate) * float(info.time_base)))) \
            if info.frame_rate else 1
        self._audio_in: av.container.InputContainer | None = None
        self._audio_packets: Iterator[av.Packet] | None = None
        self._pending_audio: av.Packet | None = None
        self._audio_out = None
        if source is not None and info.has_audio:
            self._audio_in = av.open(str(source), mode="r")
            audio = self._audio_in.streams.audio[0]
            self._audio_out = self.container.add_stream_from_template(audio)
            self._audio_packets = self._audio_in.demux(audio)
        self.frames_written = 0
        self._last_pts: int | None = None
        self._closed = False

    def __enter__(self) -> VideoWriter:
        return self

    def _cannot_write(self, exc: BaseException) -> VideoError:
        """A one-line error naming the output for an OS or FFmpeg failure to write it."""
        reason = getattr(exc, "strerror", None) or str(exc) or "not writable"
        return VideoError(f"cannot write {self.path}: {exc.__class__.__name__} ({reason})")

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(success=exc_type is None)

    def _mux_audio_until(self, seconds: float | None) -> None:
        if self._audio_packets is None:
            return
        while True:
            packet = self._pending_audio
            self._pending_audio = None
            if packet is None:
                packet = next(self._audio_packets, None)
            if packet is None:
                self._audio_packets = None
                return
            if packet.dts is None:
                continue
            when = float(packet.dts * packet.time_base) if packet.time_base else 0.0
            if seconds is not None and when > seconds:
                self._pending_audio = packet
                return
            packet.stream = self._audio_out
            self.container.mux(packet)

    def write(self, image: np.ndarray | Frame420 | PlanarI420, pts: int | None = None) -> None:
        """Append one frame ((H, W, 3) uint8 RGB, Frame420 or PlanarI420) at source timestamp ``pts``
        (time-base units)."""
        if isinstance(image, PlanarI420):
            frame = av.VideoFrame.from_ndarray(image.planes, format="yuv420p")
        elif isinstance(image, Frame420):
            frame = av.VideoFrame.from_ndarray(image.i420(), format="yuv420p")
        else:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        if pts is None or (self._last_pts is not None and pts <= self._last_pts):
            pts = 0 if self._last_pts is None else self._last_pts + self.frame_step
        frame.pts = pts
        frame.time_base = self.time_base
        self._last_pts = pts
        try:
            self._mux_audio_until(float(pts * self.time_base))
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
        except (av.error.FFmpegError, OSError) as exc:  # a full disk, a vanished folder
            raise self._cannot_write(exc) from None
        self.frames_written += 1

    def close(self, success: bool = True) -> None:
        """Flush and publish the file (success) or discard it (failure)."""
        if self._closed:
            return
        self._closed = True
        try:
            if success:
                for packet in self.stream.encode():
                    self.container.mux(packet)
                self._mux_audio_until(None)
            self.container.close()
        except (av.error.FFmpegError, OSError) as exc:
            success = False
            raise self._cannot_write(exc) from None
        except BaseException:
            success = False
            raise
        finally:
            if self._audio_in is not None:
                self._audio_in.close()
            if success and self.frames_written > 0:
                with open(self.tmp_path, "rb+") as handle:
                    os.fsync(handle.fileno())
                os.replace(self.tmp_path, self.path)
            else:
                self.tmp_path.unlink(missing_ok=True)


class ThreadedWriter:
    """Runs a ``VideoWriter``'s conversion and encoding on its own thread (bounded queue), so
    libx264 overlaps with whatever produces the frames. Same ``write``/``close`` contract;
    an encoding error is raised by the next ``write`` or by ``close``."""

    def __init__(self, writer: VideoWriter, depth: int = 8) -> None:
        self.writer = writer
        self._queue: queue.Queue[tuple[np.ndarray | Frame420 | PlanarI420, int | None] | None] = queue.Queue(
            maxsize=depth)
        self._error: BaseException | None = None
        self.busy_seconds = 0.0  # spent converting and encoding (the encoder thread's own work)
        self._thread = threading.Thread(target=self._run, daemon=True, name="encoder")
        self._thread.start()

    @property
    def frames_written(self) -> int:
        return self.writer.frames_written

    def __enter__(self) -> ThreadedWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(success=exc_type is None)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is None:
                started = time.perf_counter()
                try:
                    self.writer.write(*item)
                except BaseException as exc:
                    self._error = exc
                self.busy_seconds += time.perf_counter() - started

    def write(self, image: np.ndarray | Frame420 | PlanarI420, pts: int | None = None) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((image, pts))

    def close(self, success: bool = True) -> None:
        self._queue.put(None)
        self._thread.join()
        self.writer.close(success=success and self._error is None)
        if self._error is not None and success:
            raise self._error
