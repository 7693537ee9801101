"""The phone-side pipeline (seeds/000 §3.2, Algorithm 1, with a two-sided extension).

Decode → pick key frames → send them (at working size) to a backend, which answers with a
colour field (or, for the paper's image head, a stylized image) → render each key frame's
field on its own full-resolution pixels → for every other frame (interpolation modes):

* ``field`` (default): warp the neighbouring keys' fields along flow computed on the original
  frames, blend them, and render the blend on the frame's own pixels;
* ``pixel``: warp the neighbouring stylized key *images* and blend them (two-sided);
* ``pixel-one-sided``: the paper's Algorithm 1 (warp key a's image).

Three threads overlap: this one decodes, analyses and selects; backend workers stylize; a
finisher interpolates, renders and encodes segments in order. Memory is bounded by
``max_interval`` frames per segment (small analysis frames and flows; in field mode also the
frames at output size, whose pixels are rendered), not the video.
"""

from __future__ import annotations

import io
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fedvst.backends import Dispatcher, KeyFrameJob, render_key
from fedvst.video.field_warp import FieldInterpolator
from fedvst.video.flow import (
    DEFAULT_FLOW_WIDTH,
    FIELD_FLOW_PRESET,
    PIXEL_FLOW_PRESET,
    FlowEstimator,
    analysis_size,
    to_analysis,
)
from fedvst.video.interpolate import Frame, Interpolator
from fedvst.video.io import MAX_VIDEO_SIDE, ThreadedWriter, VideoError, VideoInfo, VideoWriter, probe, read_frames
from fedvst.video.keyframes import KeyFramePolicy, KeyFrameSelector
from fedvst.video.shrink import area_resize
from fedvst.video.yuv import PlanarI420
from stylizer.field import ColourField, check_strength
from stylizer.render import render_field, resize_frame, working_size
from stylizer.render_yuv import render_field_i420

DEFAULT_WORK_WIDTH = 512
INTERPOLATIONS = ("field", "pixel", "pixel-one-sided")
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


@dataclass(frozen=True)
class PipelineOptions:
    """Output size (``height`` or ``scale``, else the input's), key frames, interpolation, and the
    stylization ``strength`` in [0, 1] (0: the input unchanged, 1: the full style)."""

    height: int | None = None
    scale: float | None = None
    keyframes: KeyFramePolicy = field(default_factory=KeyFramePolicy)
    interpolation: str = "field"
    flow_width: int = DEFAULT_FLOW_WIDTH
    work_width: int = DEFAULT_WORK_WIDTH
    preset: str = "ultrafast"  # libx264's speed/size trade: ~19 ms a 1080p frame here, veryfast ~44 ms
    strength: float = 1.0
    yuv: bool = True  # field mode at the input's size: intermediate frames rendered in the decoder's YUV planes

    def __post_init__(self) -> None:
        check_strength(self.strength)  # a number in [0, 1], else one clear ValueError before any work
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")


@dataclass
class Summary:
    """What a run did; ``speedup`` = frames × mean key-frame seconds / wall seconds."""

    frames: int
    key_frames: int
    seconds: float
    key_frame_seconds: float
    output: Path
    key_indices: list[int] = field(default_factory=list)
    edges: dict[str, dict[str, int]] = field(default_factory=dict)  # edge address → key_frames served, kept
    stage_seconds: dict[str, float] = field(default_factory=dict)  # busy seconds per stage (``stylize_video``)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    @property
    def speedup(self) -> float:
        return self.frames * self.key_frame_seconds / self.seconds if self.seconds > 0 else float("nan")

    def line(self) -> str:
        """The closing summary line of ``fedvst stylize``."""
        served = "; ".join(f"edge {name} stylized {counts['key_frames']} key frames and kept {counts['kept']}"
                           for name, counts in self.edges.items())
        return (f"{self.frames} frames ({self.key_frames} key frames) in {self.seconds:.1f} s = {self.fps:.1f} fps; "
                f"key frame {self.key_frame_seconds * 1000:.0f} ms; ~{self.speedup:.1f}× faster than "
                f"frame-by-frame; wrote {self.output}" + (f"; {served}" if served else ""))


def edge_counts(dispatcher: Dispatcher) -> dict[str, dict[str, int]]:
    """Per edge server the dispatcher used (backends that report ``stored``: remote ones): the key
    frames it stylized and the frames it said it kept for training."""
    served = Counter(dispatcher.assignments.values())
    return {backend.name: {"key_frames": served.get(backend.name, 0), "kept": int(backend.stored)}
            for backend in dispatcher.backends if hasattr(backend, "stored")}


MAX_SCALE = 8.0  # the largest output-size factor r (the paper's r is 1…4)


def output_size_for(height: int, width: int, options: PipelineOptions) -> tuple[int, int]:
    """(H, W) of the output; with ``height`` the width keeps the aspect, rounded to even."""
    if options.height is not None and options.scale is not None:
        raise ValueError("give --height or --scale, not both")
    if options.height is not None:
        if options.height < 16:
            raise ValueError(f"--height must be at least 16, got {options.height}")
        out = (options.height, max(16, 2 * round(width * options.height / height / 2)))
    elif options.scale is not None:
        if not 0 < options.scale <= MAX_SCALE:
            raise ValueError(f"--scale must be in (0, {MAX_SCALE:g}], got {options.scale}")
        out = (max(16, round(height * options.scale)), max(16, round(width * options.scale)))
    else:
        out = (height, width)
    if max(out) > MAX_VIDEO_SIDE:
        raise ValueError(f"output {out[1]}×{out[0]} is too large: sides over {MAX_VIDEO_SIDE} px are refused")
    return out


def to_working(image: np.ndarray, work_width: int) -> np.ndarray:
    """Shrink (never enlarge) an RGB frame to at most ``work_width`` wide: what the phone sends."""
    height, width = working_size(*image.shape[:2], work_width)
    if (height, width) == image.shape[:2]:
        return image
    return area_resize(image, (height, width))


def check_output_path(output: Path, inputs: list[Path]) -> None:
    """Fail early (before any work) if ``output`` cannot be written or would overwrite an input."""
    output = Path(output)
    if any(output.resolve() == Path(p).resolve() for p in inputs):
        raise ValueError(f"output {output} would overwrite an input")
    if output.is_dir():
        raise ValueError(f"output {output} is a folder")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"cannot write {output}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"cannot write {output}: folder {parent} is not writable")


PHOTO_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}
VIDEO_OUTPUT_SUFFIXES = (".mp4",)  # the writer makes H.264 in an MP4 container


def check_output_kind(source: Path, output: Path) -> None:
    """Fail before any work when the output's name does not fit what the input makes: a video (any
    input that is not a photo) becomes an .mp4, a photo an image file."""
    from stylizer.images import IMAGE_SUFFIXES

    suffix = Path(output).suffix.lower()
    if Path(source).suffix.lower() in IMAGE_SUFFIXES:
        if suffix not in PHOTO_FORMATS:
            raise ValueError(f"{source.name} is a photo, so the output must end in "
                             f"{', '.join(PHOTO_FORMATS)}; got {Path(output).name}")
    elif suffix not in VIDEO_OUTPUT_SUFFIXES:
        raise ValueError(f"{source.name} is a video, so the output must end in {', '.join(VIDEO_OUTPUT_SUFFIXES)} "
                         f"(H.264 MP4); got {Path(output).name}")


@dataclass
class _Intermediate:
    index: int
    pts: int | None
    gray: np.ndarray
    flow_to_a: np.ndarray
    image: np.ndarray | PlanarI420 | None = None  # the frame at output size (field mode renders on it)


@dataclass
class _Segment:
    index: int
    pts: int | None
    gray: np.ndarray
    stylized: Future
    job: KeyFrameJob
    frames: list[_Intermediate] = field(default_factory=list)
    next_key: _Segment | None = None
    next_is_cut: bool = False
    planes: PlanarI420 | None = None  # the key frame as decoded, on the I420 path (its field renders there)
    output: np.ndarray | PlanarI420 | None = None  # the stylized key frame as written, once rendered
    field: np.ndarray | None = None  # its (gh, gw, D, 12) colour field, when the backend sent one
    frame: Frame | None = None  # the stylized key in the pixel interpolator's layout, once converted


class _Finisher(threading.Thread):
    """Warps, blends and writes segments in order; records the first error."""

    def __init__(self, writer: ThreadedWriter, size: tuple[int, int], interpolation: str,
                 on_frame: Callable[[int], None] | None) -> None:
        super().__init__(daemon=True, name="finisher")
        self.segments: queue.Queue[_Segment | None] = queue.Queue(maxsize=2)
        self.writer = writer
        self.interpolation = interpolation
        self.on_frame = on_frame
        self.error: BaseException | None = None
        self.interpolator = Interpolator(size)
        self.fields = FieldInterpolator()
        self.pixel_flow: FlowEstimator | None = None  # field mode's fallback to pixels: FAST flows, made here
        self.busy_seconds = 0.0  # warping, blending and rendering (not waiting for keys or the encoder)
        self._waited = 0.0

    def run(self) -> None:
        while True:
            segment = self.segments.get()
            if segment is None:
                return
            if self.error is not None:
                continue  # drain so the producer never blocks
            started, self._waited = time.perf_counter(), 0.0
            try:
                self._finish(segment)
            except BaseException as exc:
                self.error = exc
            self.busy_seconds += time.perf_counter() - started - self._waited

    def _write(self, image: Frame | PlanarI420, pts: int | None) -> None:
        started = time.perf_counter()
        self.writer.write(image, pts)
        self._waited += time.perf_counter() - started  # a full encoder queue: waiting, not working
        if self.on_frame is not None:
            self.on_frame(1)

    def _render(self, segment: _Segment) -> np.ndarray | PlanarI420:
        """The stylized key frame as written: a field rendered on the key's own pixels (in its I420
        planes on that path), or the backend's image."""
        if segment.output is None:
            started = time.perf_counter()
            result = segment.stylized.result()
            self._waited += time.perf_counter() - started
            segment.output = (render_on(segment.planes, result)
                              if segment.planes is not None and isinstance(result, ColourField)
                              else render_key(result, segment.job))
            segment.field = getattr(result, "coefficients", None)
        return segment.output

    def _key(self, segment: _Segment) -> Frame:
        if segment.frame is None:
            stylized = self._render(segment)
            segment.frame = self.interpolator.key(stylized.to_rgb() if isinstance(stylized, PlanarI420) else stylized)
        return segment.frame

    def _finish(self, segment: _Segment) -> None:
        self._write(self._render(segment), segment.pts)
        if not segment.frames:
            return
        nxt = segment.next_key
        two_sided = self.interpolation != "pixel-one-sided" and nxt is not None and not segment.next_is_cut
        if two_sided:
            self._render(nxt)
        fields = (self.interpolation == "field" and segment.field is not None
                  and (not two_sided or (nxt.field is not None and nxt.field.shape == segment.field.shape))
                  and all(frame.image is not None for frame in segment.frames))
        for frame in segment.frames:
            t = (frame.index - segment.index) / (nxt.index - segment.index) if two_sided else 0.0
            if fields:
                if two_sided:
                    blended = self.fields.two_sided(frame.gray, t, segment.field, segment.gray, frame.flow_to_a,
                                                    nxt.field, nxt.gray)
                else:
                    blended = self.fields.one_sided(segment.field, frame.flow_to_a)
                image = render_on(frame.image, blended)
            else:
                flow_to_a = self._pixel_flow(frame, segment)
                image = (self.interpolator.two_sided(frame.gray, t, self._key(segment), segment.gray, flow_to_a,
                                                     self._key(nxt), nxt.gray) if two_sided
                         else self.interpolator.one_sided(self._key(segment), flow_to_a))
            self._write(image, frame.pts)

    def _pixel_flow(self, frame: _Intermediate, segment: _Segment) -> np.ndarray:
        """The flow to key a for pixel warping: the analysis flow, or, where field mode falls back to
        pixels (a backend that sends images), that flow again with ``PIXEL_FLOW_PRESET``."""
        if self.interpolation != "field":
            return frame.flow_to_a
        if self.pixel_flow is None:
            self.pixel_flow = FlowEstimator(PIXEL_FLOW_PRESET)
        return self.pixel_flow(frame.gray, segment.gray)


def render_on(image: np.ndarray | PlanarI420, field: np.ndarray) -> np.ndarray | PlanarI420:
    """``field`` rendered on an intermediate frame, in the frame's own layout: RGB, or the decoder's
    I420 planes (``stylizer.render_yuv``; a bilateral field goes through RGB)."""
    if not isinstance(image, PlanarI420):
        return render_field(image, field)
    if np.asarray(getattr(field, "coefficients", field)).shape[2] == 1:
        return PlanarI420(render_field_i420(image.planes, field))
    return render_field(image.to_rgb(), field)


def planar_path(info: VideoInfo, size: tuple[int, int], options: PipelineOptions) -> bool:
    """Whether frames stay in the decoder's I420 planes: field mode, the input's size, even sides, no
    display rotation (the RGB path handles everything else)."""
    return (options.yuv and options.interpolation == "field" and size == (info.height, info.width)
            and info.width % 2 == 0 and info.height % 2 == 0 and not info.rotation)


def stylize_video(source: Path, style: np.ndarray, output: Path, dispatcher: Dispatcher,
                  options: PipelineOptions | None = None,
                  on_frame: Callable[[int], None] | None = None) -> Summary:
    """Stylize the video ``source`` with ``style`` into ``output`` (H.264 MP4, audio copied)."""
    options = options or PipelineOptions()
    source, output = Path(source), Path(output)
    check_output_path(output, [source])
    check_output_kind(source, output)
    info = probe(source)
    size = output_size_for(info.height, info.width, options)
    small = analysis_size(info.height, info.width, options.flow_width)
    dispatcher.set_style(style)
    selector = KeyFrameSelector(options.keyframes)
    # the flow to the last key chooses key frames and then warps: fields need less of it than pixels
    flow = FlowEstimator(FIELD_FLOW_PRESET if options.interpolation == "field" else PIXEL_FLOW_PRESET)
    started = time.perf_counter()
    frames = 0
    keys: list[int] = []
    with ThreadedWriter(VideoWriter(output, size[1], size[0], info, source=source, preset=options.preset)) as writer:
        finisher = _Finisher(writer, size, options.interpolation, on_frame)
        finisher.start()
        current: _Segment | None = None
        planar = planar_path(info, size, options)
        decode_seconds = analysis_seconds = 0.0
        try:
            decoding = iter(read_frames(source, planar=planar))
            while True:
                decoding_from = time.perf_counter()
                decoded = next(decoding, None)
                analysed = time.perf_counter()
                decode_seconds += analysed - decoding_from
                if decoded is None:
                    break
                frames += 1
                yuv = decoded.image if isinstance(decoded.image, PlanarI420) else None
                gray = yuv.gray(small) if yuv is not None else to_analysis(decoded.image, small)
                flow_to_a = flow(gray, current.gray) if current is not None else None
                decision = selector.decide(decoded.index, gray, codec_key=decoded.key_frame, flow_to_key=flow_to_a)
                if decision.is_key:  # on the I420 path the key is shrunk in its planes, rendered in them
                    job = (KeyFrameJob(decoded.index, yuv.shrunk_rgb(working_size(*yuv.size, options.work_width)), size,
                                       strength=options.strength) if yuv is not None
                           else KeyFrameJob(decoded.index, to_working(decoded.image, options.work_width), size,
                                            full=decoded.image, strength=options.strength))
                    segment = _Segment(decoded.index, decoded.pts, gray, dispatcher.submit(job), job, planes=yuv)
                    keys.append(decoded.index)
                    if current is not None:
                        current.next_key = segment
                        current.next_is_cut = decision.reason == "cut"
                        handing = time.perf_counter()
                        _put(finisher, current)
                        analysed += time.perf_counter() - handing  # a full queue: waiting, not analysing
                    current = segment
                else:
                    image = (yuv if yuv is not None else resize_frame(decoded.image, size)
                             if options.interpolation == "field" else None)
                    current.frames.append(_Intermediate(decoded.index, decoded.pts, gray, flow_to_a, image))
                analysis_seconds += time.perf_counter() - analysed
            if current is not None:
                _put(finisher, current)
        finally:
            finisher.segments.put(None)
            finisher.join()
        if finisher.error is not None:
            raise finisher.error
        if frames == 0:
            raise VideoError(f"{source} has no frames")
        if info.frame_count and frames < info.frame_count:
            raise VideoError(f"{source} is truncated: decoded {frames} of {info.frame_count} frames")
    seconds = time.perf_counter() - started
    key_seconds = float(np.mean(dispatcher.seconds)) if dispatcher.seconds else 0.0
    stages = {"decode": decode_seconds, "flow_and_keys": analysis_seconds, "render": finisher.busy_seconds,
              "encode": writer.busy_seconds, "stylize_keys": float(np.sum(dispatcher.seconds))}
    return Summary(frames, len(keys), seconds, key_seconds, output, keys, edge_counts(dispatcher),
                   {stage: round(value, 3) for stage, value in stages.items()})


def _put(finisher: _Finisher, segment: _Segment) -> None:
    if finisher.error is not None:
        raise finisher.error
    finisher.segments.put(segment)


def stylize_photo(source: Path, style: np.ndarray, output: Path, dispatcher: Dispatcher,
                  options: PipelineOptions | None = None) -> Summary:
    """Stylize one photo at the requested size; writes PNG/JPEG (by suffix) atomically."""
    from PIL import Image

    from stylizer.atomic_io import atomic_write_bytes
    from stylizer.images import load_image

    options = options or PipelineOptions()
    source, output = Path(source), Path(output)
    check_output_path(output, [source])
    check_output_kind(source, output)
    fmt = PHOTO_FORMATS[output.suffix.lower()]
    image = load_image(source, "input photo")
    size = output_size_for(*image.shape[:2], options)
    started = time.perf_counter()
    dispatcher.set_style(style)
    job = KeyFrameJob(0, to_working(image, options.work_width), size, full=image, strength=options.strength)
    result = render_key(dispatcher.submit(job).result(), job)
    buffer = io.BytesIO()
    Image.fromarray(result).save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    atomic_write_bytes(output, buffer.getvalue())
    seconds = time.perf_counter() - started
    return Summary(1, 1, seconds, seconds, output, [0], edge_counts(dispatcher))
