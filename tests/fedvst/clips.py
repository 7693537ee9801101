"""Synthetic clips with exact ground truth: a virtual camera moving over a real photo."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def camera_clip(photo: np.ndarray, frames: int, step: tuple[float, float], size: tuple[int, int],
                origin: tuple[float, float] = (20.0, 20.0)) -> list[np.ndarray]:
    """Frame t shows ``photo`` at offset origin + t·step: frame[t+1](x) = frame[t](x + step)."""
    height, width = size
    out = []
    for t in range(frames):
        ox, oy = origin[0] + t * step[0], origin[1] + t * step[1]
        matrix = np.array([[1, 0, -ox], [0, 1, -oy]], dtype=np.float64)
        out.append(cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT))
    return out


def with_occluder(frames: list[np.ndarray], patch: np.ndarray, start: tuple[int, int],
                  velocity: tuple[int, int]) -> list[np.ndarray]:
    """Paste ``patch`` moving by ``velocity`` px/frame over each frame (an occluding object)."""
    out = []
    ph, pw = patch.shape[:2]
    for t, frame in enumerate(frames):
        frame = frame.copy()
        x, y = start[0] + t * velocity[0], start[1] + t * velocity[1]
        frame[y:y + ph, x:x + pw] = patch
        out.append(frame)
    return out


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 12, audio: bool = False,
               faststart: bool = False, rotation: int = 0) -> Path:
    """Encode ``frames`` as H.264 MP4 (optionally with a 440 Hz AAC tone and display rotation)."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", format="mp4", options=options) as container:
        video = container.add_stream("libx264", rate=fps)
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p" if video.height % 2 == 0 and video.width % 2 == 0 else "yuv444p"
        if rotation:
            video.set_display_rotation(rotation)
        sound = container.add_stream("aac", rate=16000) if audio else None
        for frame in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if sound is not None:
            samples = len(frames) * 16000 // fps
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 16000)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="fltp", layout="mono")
                chunk.sample_rate = 16000
                chunk.pts = start
                chunk.time_base = Fraction(1, 16000)
                for packet in sound.encode(chunk):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return path


def packet_count(path: Path, kind: str) -> int:
    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == kind]
        if not streams:
            return 0
        return sum(1 for p in container.demux(streams[0]) if p.size)
