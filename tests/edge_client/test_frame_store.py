import io

import numpy as np
import pytest
from PIL import Image

from edge_client.frame_store import FrameStore
from stylizer.images import ImageError


def png(seed: int, side: int = 64) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_quota_evicts_the_oldest_frames_first(tmp_path):
    frames = [png(i) for i in range(6)]
    store = FrameStore(tmp_path, quota_bytes=len(frames[0]) * 3 + 100)
    kept = [store.add_frame(data) for data in frames]
    remaining = [f.sha256 for f in store.frames()]
    assert remaining == [k.sha256 for k in kept[-3:]]
    assert store.total_bytes() <= store.quota_bytes
    assert not kept[0].path.exists() and kept[-1].path.exists()


def test_duplicates_are_stored_once_and_bad_bytes_leave_nothing(tmp_path):
    store = FrameStore(tmp_path)
    first = store.add_frame(png(1))
    assert store.add_frame(png(1)).id == first.id and len(store.frames()) == 1
    with pytest.raises(ValueError, match="neither PNG nor JPEG"):
        store.add_frame(b"GIF89a not allowed")
    with pytest.raises(ImageError):
        store.add_frame(b"\x89PNG\r\n\x1a\n" + b"broken" * 10)
    files = [p for p in (tmp_path / "frames").rglob("*") if p.is_file()]
    assert files == [first.path]


def test_unindexed_files_from_a_crash_are_removed_on_open(tmp_path):
    store = FrameStore(tmp_path)
    kept = store.add_frame(png(2))
    store.close()
    orphan = tmp_path / "frames" / "ab" / ("ab" + "0" * 62 + ".png")
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(png(3))  # written, never committed: what a kill -9 between the two leaves
    (tmp_path / "frames" / "ab" / ".partial.tmp").write_bytes(b"half")
    reopened = FrameStore(tmp_path)
    assert not orphan.exists() and [f.sha256 for f in reopened.frames()] == [kept.sha256]
    assert [p for p in (tmp_path / "frames").rglob("*") if p.is_file()] == [kept.path]


def test_a_reader_sees_committed_frames_and_never_cleans_up(tmp_path):
    assert FrameStore(tmp_path / "nothing-yet", readonly=True).frames() == []
    writer = FrameStore(tmp_path)
    kept = writer.add_frame(png(5))
    in_flight = tmp_path / "frames" / "cd" / ("cd" + "1" * 62 + ".png")  # written, row not yet committed
    in_flight.parent.mkdir(parents=True, exist_ok=True)
    in_flight.write_bytes(png(6))
    reader = FrameStore(tmp_path, readonly=True)
    assert [f.sha256 for f in reader.frames()] == [kept.sha256]
    assert in_flight.exists()  # the writer's file is left alone
    with pytest.raises(PermissionError):
        reader.add_frame(png(7))
    reader.close()
    writer.close()
