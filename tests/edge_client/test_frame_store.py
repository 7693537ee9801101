import hashlib
import io
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge_client.frame_store import FrameStore, load_images
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


def test_a_crash_between_file_and_row_reindexes_the_file_and_removes_temp_files(tmp_path):
    store = FrameStore(tmp_path)
    kept = store.add_frame(png(2))
    store.close()
    data = png(3)
    digest = hashlib.sha256(data).hexdigest()
    renamed = tmp_path / "frames" / digest[:2] / f"{digest}.png"  # renamed into place, row never committed
    renamed.parent.mkdir(parents=True, exist_ok=True)
    renamed.write_bytes(data)
    partial = tmp_path / "frames" / "ab" / f".{'ab' * 32}.png.x1y2.tmp"  # an unfinished atomic write
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"half")
    reopened = FrameStore(tmp_path)
    assert [f.sha256 for f in reopened.frames()] == [kept.sha256, digest]
    assert not partial.exists() and reopened.last_reconcile.reindexed == 1


def _files(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("damage", ["empty", "missing", "garbage"])
def test_a_lost_or_damaged_index_is_rebuilt_from_the_files_never_emptied(tmp_path, damage, caplog):
    """Case 1: an empty, missing or corrupt index used to delete every frame and style as "unindexed"."""
    store = FrameStore(tmp_path)
    frames = [store.add_frame(png(i)) for i in range(3)]
    style = store.add_style(png(9, side=32))
    store.close()
    files_before = _files(tmp_path / "frames") + _files(tmp_path / "styles")
    index = tmp_path / "index.sqlite3"
    for extra in ("-wal", "-shm"):
        Path(f"{index}{extra}").unlink(missing_ok=True)
    if damage == "empty":
        index.write_bytes(b"")
    elif damage == "missing":
        index.unlink()
    else:
        index.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING):
        reopened = FrameStore(tmp_path)
    assert sorted(f.sha256 for f in reopened.frames()) == sorted(f.sha256 for f in frames)
    assert [s.sha256 for s in reopened.styles()] == [style.sha256]
    assert _files(tmp_path / "frames") + _files(tmp_path / "styles") == files_before
    assert "index rebuilt from the files" in caplog.text and str(tmp_path) in caplog.text
    if damage == "garbage":  # the damaged index is kept for a post-mortem, not deleted
        assert list((tmp_path / "quarantine").glob("index.sqlite3.*"))


@pytest.mark.parametrize("damage", ["deleted", "corrupted"])
def test_a_frame_sent_again_after_its_file_was_lost_is_written_again(tmp_path, damage):
    """Case 3: the store skipped any sha it had indexed, so the re-sent frame was acknowledged, not kept."""
    store = FrameStore(tmp_path)
    data = png(4)
    kept = store.add_frame(data)
    if damage == "deleted":
        kept.path.unlink()
    else:
        kept.path.write_bytes(data[:-10] + b"x" * 10)
    again = store.add_frame(data)
    assert again.id == kept.id and again.path.read_bytes() == data and len(store.frames()) == 1


def test_rows_whose_files_are_missing_or_corrupt_are_dropped_and_reported_on_open(tmp_path, caplog):
    """Case 4: such rows used to count against the quota forever while training skipped them silently."""
    store = FrameStore(tmp_path)
    good, missing, corrupt = (store.add_frame(png(i)) for i in (10, 11, 12))
    store.close()
    missing.path.unlink()
    corrupt.path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"rot" * 50)
    with caplog.at_level(logging.WARNING):
        reopened = FrameStore(tmp_path)
    assert [f.sha256 for f in reopened.frames()] == [good.sha256]
    assert reopened.total_bytes() == good.bytes
    assert reopened.last_reconcile.missing_dropped == 1 and len(reopened.last_reconcile.quarantined) == 1
    moved = tmp_path / "quarantine" / corrupt.path.relative_to(tmp_path)
    assert [p.read_bytes() for p in moved.parent.glob(moved.name + ".*")] == [b"\x89PNG\r\n\x1a\n" + b"rot" * 50]
    assert "dropped 1 row(s) whose file is missing" in caplog.text and "quarantined 1 damaged file" in caplog.text


def test_a_reader_skips_a_file_that_fails_its_hash_and_says_so(tmp_path, caplog):
    store = FrameStore(tmp_path)
    good, bad = store.add_frame(png(20)), store.add_frame(png(21))
    bad.path.write_bytes(png(22))  # decodable, but not the bytes that were kept
    with caplog.at_level(logging.WARNING):
        images = load_images(FrameStore(tmp_path, readonly=True).frames())
    assert len(images) == 1 and bad.path.name in caplog.text
    assert good.path.exists()


def test_styles_count_against_the_quota(tmp_path):
    frames = [png(i) for i in range(3)]
    style = png(30)
    store = FrameStore(tmp_path, quota_bytes=len(frames[0]) * 3 + 100)
    for data in frames:
        store.add_frame(data)
    store.add_style(style)
    assert store.total_bytes() <= store.quota_bytes
    assert len(store.frames()) == 2 and len(store.styles()) == 1  # the oldest frame made room


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


def test_a_file_damaged_twice_keeps_both_damaged_copies_in_quarantine(tmp_path):
    """Issue 26: the frame store quarantined to a fixed name, so the second damage replaced the first."""
    damaged = []
    for garbage in (b"first damage", b"second damage"):
        store = FrameStore(tmp_path)
        frame = store.add_frame(png(21))
        store.close()
        frame.path.write_bytes(b"\x89PNG\r\n\x1a\n" + garbage)
        damaged.append(frame.path.read_bytes())
        FrameStore(tmp_path).close()
    moved = tmp_path / "quarantine" / frame.path.relative_to(tmp_path)
    assert sorted(p.read_bytes() for p in moved.parent.glob(moved.name + ".*")) == sorted(damaged)
