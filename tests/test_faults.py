"""Fault injection on real processes (127.0.0.1): kill -9 at named crash points, files corrupted
while a server is stopped, a full disk. After each: the server restarts, nothing acknowledged is
lost, nothing corrupt is served, and one line says what was repaired or quarantined."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image

from cloud_server.app import starting_point
from cloud_server.store import CheckpointStore
from edge_client.frame_store import FrameStore, file_sha256
from edge_client.model_slot import install_model, slot_path
from edge_client.restore import fetch_model
from fedvst.protocol import fedvst_pb2, fedvst_pb2_grpc
from stylizer import save_model
from stylizer.checkpoint import load_checkpoint
from stylizer.crash_points import CRASH_ENV
from tests import procs

pytestmark = pytest.mark.slow


@pytest.fixture()
def checkpoint(tmp_path, small_model):
    path = tmp_path / "model.safetensors"
    save_model(path, small_model, round=1)
    return path


def start_edge(tmp_path, data_dir: Path, *extra: str, env: dict[str, str] | None = None, name: str = "edge"):
    port = procs.free_port()
    log = tmp_path / f"{name}.log"
    process = procs.start(["edge", "serve", "--port", str(port), "--data-dir", str(data_dir), *extra], log, env)
    procs.wait_port(port, process, log=log)
    return process, port, log


def key_frame(photos, i: int, side: int = 96) -> bytes:
    crop = np.ascontiguousarray(photos["astronaut"][i * 7:i * 7 + side, i * 5:i * 5 + side + 32])
    buffer = io.BytesIO()
    Image.fromarray(crop).save(buffer, format="PNG")
    return buffer.getvalue()


class Phone:
    """Raw calls to an edge: the style is used but not kept; key frames are shared for training."""

    def __init__(self, port: int, photos) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = fedvst_pb2_grpc.StylizerStub(self.channel)
        style = io.BytesIO()
        Image.fromarray(photos["coffee"]).save(style, format="PNG")
        self.handle = self.stub.UploadStyle(fedvst_pb2.UploadStyleRequest(image=style.getvalue()), timeout=60).handle

    def send(self, image: bytes, index: int = 0) -> fedvst_pb2.StylizedFrame:
        request = fedvst_pb2.KeyFrame(style_handle=self.handle, index=index, image=image, target_width=128,
                                      target_height=96, reply_field=True, allow_collection=True)
        return next(self.stub.Stylize(iter([request]), timeout=60))

    def close(self) -> None:
        self.channel.close()


def assert_store_sound(data_dir: Path) -> set[str]:
    """Every row's file is hash-true, every file has a row, no temp file is left; returns the shas."""
    store = FrameStore(data_dir, readonly=True)
    try:
        rows = store.frames() + store.styles()
        for image in rows:
            assert file_sha256(image.path) == image.sha256
        on_disk = {p for folder in ("frames", "styles") for p in (data_dir / folder).rglob("*") if p.is_file()}
        assert on_disk == {image.path for image in rows}
        return {image.sha256 for image in store.frames()}
    finally:
        store.close()


@pytest.mark.parametrize("point", ["atomic-write:*.png", "frame-store:frames"])
def test_kill_9_in_the_middle_of_a_frame_write(tmp_path, checkpoint, photos, point):
    data_dir = tmp_path / "edge"
    edge, port, _ = start_edge(tmp_path, data_dir, "--initial-checkpoint", str(checkpoint))
    phone = Phone(port, photos)
    acknowledged = {hashlib.sha256(key_frame(photos, i)).hexdigest() for i in range(3)
                    if phone.send(key_frame(photos, i), i).stored}
    phone.close()
    assert len(acknowledged) == 3 and procs.stop(edge) == 0

    edge, port, _ = start_edge(tmp_path, data_dir, env={CRASH_ENV: point}, name="edge-crashing")
    phone = Phone(port, photos)
    with pytest.raises(grpc.RpcError):
        phone.send(key_frame(photos, 3), 3)
    phone.close()
    assert edge.wait(60) == -9  # died at the crash point, mid-write

    edge, port, log = start_edge(tmp_path, data_dir, name="edge-restarted")
    try:
        stored = assert_store_sound(data_dir)
        assert acknowledged <= stored
        unacknowledged = hashlib.sha256(key_frame(photos, 3)).hexdigest()
        if point.startswith("frame-store"):  # file complete, row never committed: indexed again, and said so
            assert unacknowledged in stored and "re-indexed 1 unindexed file" in log.read_text()
        else:  # the temp file never became a frame
            assert unacknowledged not in stored
        phone = Phone(port, photos)
        assert phone.send(key_frame(photos, 4), 4).stored
        phone.close()
    finally:
        procs.stop(edge)


def _run_crashing(code: str, args: list[str], crash_at: str) -> int:
    """``python -c code args…`` with the crash point ``crash_at`` armed; its exit code (-9 if it fired)."""
    return subprocess.run([sys.executable, "-c", code, *args], timeout=120,
                          env={**os.environ, CRASH_ENV: crash_at}).returncode


def _hot_swap_in_a_process(data_dir: Path, new_model: Path, crash_at: str) -> int:
    """The ClientApp's hot swap (install_model) in a process that kill -9s itself at ``crash_at``."""
    code = ("import sys; from pathlib import Path; from edge_client.model_slot import install_model, slot_path; "
            "from stylizer.checkpoint import load_checkpoint; c = load_checkpoint(Path(sys.argv[2])); "
            "install_model(slot_path(Path(sys.argv[1])), c.state, {k: v for k, v in c.metadata.items() "
            "if k != 'sha256'})")
    return _run_crashing(code, [str(data_dir), str(new_model)], crash_at)


def test_kill_9_in_the_middle_of_a_hot_swap_serves_the_previous_model(tmp_path, checkpoint, small_model, photos):
    data_dir = tmp_path / "edge"
    edge, port, _ = start_edge(tmp_path, data_dir, "--initial-checkpoint", str(checkpoint))
    assert procs.stop(edge) == 0
    first = load_checkpoint(slot_path(data_dir)).sha256
    for tensor in small_model.trainable_state().values():
        tensor.data.add_(0.01)
    newer = tmp_path / "round2.safetensors"
    save_model(newer, small_model, round=2)
    # tensors of round 2 written, metadata still round 1's: the pair no longer verifies
    assert _hot_swap_in_a_process(data_dir, newer, "checkpoint:current.safetensors") == -9
    with pytest.raises(ValueError):
        load_checkpoint(slot_path(data_dir))

    edge, port, log = start_edge(tmp_path, data_dir, name="edge-restarted")  # no --initial-checkpoint needed
    try:
        assert "serving the previous model (round 1)" in log.read_text()
        phone = Phone(port, photos)
        assert phone.send(key_frame(photos, 0)).model_sha256 == first
        phone.close()
    finally:
        procs.stop(edge)


def _save_round_in_a_process(folder: Path, round_number: int, crash_at: str) -> int:
    """The ServerApp's checkpoint save (CheckpointStore.save) in a process armed to crash at ``crash_at``."""
    code = ("import sys; from pathlib import Path; from cloud_server.store import CheckpointStore; "
            "s = CheckpointStore(Path(sys.argv[1])); last = s.latest(); "
            "s.save(int(sys.argv[2]), last.checkpoint.state, {k: v for k, v in last.checkpoint.metadata.items() "
            "if k not in ('sha256', 'round')})")
    return _run_crashing(code, [str(folder), str(round_number)], crash_at)


def start_cloud(tmp_path, cloud_dir: Path, checkpoint: Path, *extra: str, name: str = "cloud"):
    port, registry_port = procs.free_port(), procs.free_port()
    log = tmp_path / f"{name}.log"
    process = procs.start(["cloud", "serve", "--data-dir", str(cloud_dir), "--port", str(port), "--registry-port",
                           str(registry_port), "--rounds", "5", "--initial-checkpoint", str(checkpoint), *extra], log)
    procs.wait_port(registry_port, process, log=log)
    return process, registry_port, log


@pytest.mark.parametrize("point", ["checkpoint:round_000002.safetensors", "atomic-write:round_000002.json"])
def test_kill_9_in_the_middle_of_a_checkpoint_write_resumes_from_the_last_whole_round(tmp_path, checkpoint, point):
    cloud_dir = tmp_path / "cloud"
    store = CheckpointStore(cloud_dir / "checkpoints")
    starting_point(store, str(checkpoint))
    round1 = store.save(1, store.load(0).checkpoint.state, {**store.load(0).checkpoint.metadata, "nodes": ["a"]})
    assert _save_round_in_a_process(store.folder, 2, point) == -9
    cloud, registry_port, log = start_cloud(tmp_path, cloud_dir, checkpoint)
    try:
        restored = fetch_model(f"127.0.0.1:{registry_port}", tmp_path / "fetched" / "m.safetensors")
        assert (restored.round, restored.sha256) == (1, round1)
        text = log.read_text()
        assert "starting over" not in text and "unusable" not in text  # an uncommitted round is no damage
    finally:
        procs.stop(cloud)


def test_files_corrupted_while_the_edge_is_stopped_are_repaired_or_quarantined(tmp_path, checkpoint, small_model,
                                                                                photos):
    data_dir = tmp_path / "edge"
    edge, port, _ = start_edge(tmp_path, data_dir, "--initial-checkpoint", str(checkpoint))
    phone = Phone(port, photos)
    for i in range(3):
        assert phone.send(key_frame(photos, i), i).stored
    phone.close()
    assert procs.stop(edge) == 0
    store = FrameStore(data_dir)
    store.add_style(key_frame(photos, 9, side=64))
    frames, style = store.frames(), store.styles()[0]
    store.close()
    first = load_checkpoint(slot_path(data_dir))
    install_model(slot_path(data_dir), first.state, {**{k: v for k, v in first.metadata.items() if k != "sha256"},
                                                     "round": 2})
    # damage one file of every kind
    for extra in ("-wal", "-shm"):
        Path(f"{data_dir / 'index.sqlite3'}{extra}").unlink(missing_ok=True)
    (data_dir / "index.sqlite3").write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    frames[0].path.write_bytes(frames[0].path.read_bytes()[:200])
    style.path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 300)
    slot = slot_path(data_dir)
    slot.write_bytes(slot.read_bytes()[:1000])
    damaged_slot = slot.read_bytes()

    edge, port, log = start_edge(tmp_path, data_dir, name="edge-restarted")
    try:
        text = log.read_text()
        assert "index rebuilt from the files" in text and "quarantined 2 damaged file(s)" in text
        assert "serving the previous model (round 1)" in text
        assert assert_store_sound(data_dir) == {f.sha256 for f in frames[1:]}
        moved = data_dir / "quarantine" / frames[0].path.relative_to(data_dir)
        assert list(moved.parent.glob(moved.name + ".*"))
        # issue 26: the damaged slot is moved aside, not written over by the recovered model
        assert [p.read_bytes() for p in (data_dir / "quarantine" / "model").glob("current.safetensors.*")] == [
            damaged_slot]
        phone = Phone(port, photos)
        assert phone.send(key_frame(photos, 5), 5).model_sha256 == first.sha256
        phone.close()
    finally:
        procs.stop(edge)


def test_a_cloud_whose_rounds_are_all_corrupt_refuses_to_start_over_without_fresh(tmp_path, checkpoint):
    cloud_dir = tmp_path / "cloud"
    store = CheckpointStore(cloud_dir / "checkpoints")
    starting_point(store, str(checkpoint))
    store.save(1, store.load(0).checkpoint.state, store.load(0).checkpoint.metadata)
    for number in (0, 1):
        tensor = cloud_dir / "checkpoints" / f"round_{number:06d}.safetensors"
        tensor.write_bytes(tensor.read_bytes()[:64])
    (cloud_dir / "checkpoints" / "manifest.json").write_text("{ not json")
    args = ["cloud", "serve", "--data-dir", str(cloud_dir), "--port", str(procs.free_port()), "--registry-port",
            str(procs.free_port()), "--initial-checkpoint", str(checkpoint)]
    refused = subprocess.run([sys.executable, "-m", "fedvst.cli", *args], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "FEDVST_OFFLINE": "1"})
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.returncode == 2 and len(errors) == 1 and "--fresh" in errors[0], refused.stderr
    assert sorted(p.name.split(".")[:2] for p in (cloud_dir / "checkpoints" / "quarantine").iterdir()) == [
        ["round_000000", "json"], ["round_000000", "safetensors"], ["round_000001", "json"],
        ["round_000001", "safetensors"]]

    cloud, registry_port, log = start_cloud(tmp_path, cloud_dir, checkpoint, "--fresh")
    try:
        assert fetch_model(f"127.0.0.1:{registry_port}", tmp_path / "fetched.safetensors").round == 0
        assert "starting over" in log.read_text()
        manifest = json.loads((cloud_dir / "checkpoints" / "manifest.json").read_text())
        assert [entry["round"] for entry in manifest["rounds"]] == [0]
    finally:
        procs.stop(cloud)


def test_a_full_disk_keeps_serving_and_loses_nothing_acknowledged(tmp_path, checkpoint, photos):
    mount = tmp_path / "small-disk"
    mount.mkdir()
    size_kib = (checkpoint.stat().st_size >> 10) + 2048  # the model, the index and about 1.5 MiB of frames
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("needs permission to mount a small tmpfs (root)")
    try:
        data_dir = mount / "edge"
        edge, port, log = start_edge(tmp_path, data_dir, "--initial-checkpoint", str(checkpoint))
        acknowledged, refused = set(), 0
        try:
            phone = Phone(port, photos)
            for i in range(120):
                image = key_frame(photos, i % 40, side=160 + i)
                reply = phone.send(image, i)
                assert reply.HasField("field")  # always served
                if reply.stored:
                    acknowledged.add(hashlib.sha256(image).hexdigest())
                else:
                    refused += 1
                if refused >= 3:
                    break
            phone.close()
        finally:
            assert procs.stop(edge) == 0
        assert refused >= 3 and acknowledged, "the disk should have filled up"
        assert "not kept for training" in log.read_text()
        edge, port, _ = start_edge(tmp_path, data_dir, name="edge-restarted")
        try:
            assert acknowledged <= assert_store_sound(data_dir)
        finally:
            procs.stop(edge)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_until_training(edge, timeout_s: float, logs) -> None:
    """Until one of the edge's descendants (the ClientApp) burns CPU as training does."""
    import time

    from fedvst.processes import descendants

    deadline = time.monotonic() + timeout_s
    before: dict[int, float] = {}
    while time.monotonic() < deadline:
        now = {pid: _cpu_seconds(pid) for pid in descendants(edge.pid)}
        if any(now[pid] - before.get(pid, now[pid]) > 0.6 for pid in now):
            return
        before = now
        time.sleep(1.0)
    pytest.fail("the edge never started training\n" + "\n".join(log.read_text()[-2000:] for log in logs
                                                                  if log.exists()))


def test_kill_9_of_an_edge_in_the_middle_of_a_round(tmp_path, checkpoint, photos):
    """The whole edge (service, SuperNode, ClientApp) dies while it trains; restarted with the same
    command it serves the verified model, its store is intact, and a later round aggregates it."""
    import signal

    from fedvst.processes import descendants
    from tests.cloud_server.test_federation import fill_edge, wait_for

    cloud_dir, data_dir = tmp_path / "cloud", tmp_path / "edge"
    port, registry_port = procs.free_port(), procs.free_port()
    cloud_log = tmp_path / "cloud.log"
    cloud = procs.start(["cloud", "serve", "--data-dir", str(cloud_dir), "--port", str(port), "--registry-port",
                         str(registry_port), "--rounds", "4", "--min-nodes", "1", "--images-per-round", "16",
                         "--initial-checkpoint", str(checkpoint), "--run-config", "base-size=32",
                         "--run-config", "eval-images=2", "--run-config", "ready-poll-s=2"], cloud_log)
    # the round's train message trains (no background trainer), so the kill lands in the ClientApp's training
    edge_args = ["--cloud", f"127.0.0.1:{port}", "--registry", f"127.0.0.1:{registry_port}",
                 "--no-train-between-syncs"]
    logs = [cloud_log, tmp_path / "edge.log", data_dir / "supernode.log", cloud_dir / "logs" / "superlink.log"]
    edge = None
    try:
        procs.wait_port(registry_port, cloud, log=cloud_log)
        fill_edge(data_dir, ("astronaut", "rocket", "coffee", "motorcycle_left"))  # 20 frames: ready for 16
        kept = assert_store_sound(data_dir)
        edge, _, _ = start_edge(tmp_path, data_dir, *edge_args)
        wait_for(lambda: "starting a round" in cloud_log.read_text(), 240, "the round to start", logs)
        _wait_until_training(edge, 240, logs)
        helpers = descendants(edge.pid)
        procs.stop(edge, signal.SIGKILL)
        for pid in helpers:  # the ClientApp is not in the edge's process group
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        edge.wait(30)
        checkpoints = cloud_dir / "checkpoints"

        def aggregated() -> list[dict]:
            return [meta for p in sorted(checkpoints.glob("round_*.json"))
                    if (meta := json.loads(p.read_text())).get("nodes")]

        before = len(aggregated())
        edge, edge_port, _ = start_edge(tmp_path, data_dir, *edge_args, name="edge-restarted")
        assert assert_store_sound(data_dir) == kept
        load_checkpoint(slot_path(data_dir))  # verifies
        phone = Phone(edge_port, photos)
        assert phone.send(key_frame(photos, 0)).model_sha256 == load_checkpoint(slot_path(data_dir)).sha256
        phone.close()
        wait_for(lambda: len(aggregated()) > before, 600, "a round aggregated after the edge came back", logs)
        assert len(aggregated()[-1]["nodes"]) == 1
    finally:
        if edge is not None:
            procs.stop(edge)
        procs.stop(cloud)


def test_a_superlink_that_cannot_start_gives_the_cause_from_its_log(tmp_path, checkpoint):
    """Issue 26: a corrupt superlink.db said only 'process exited with 1 before listening on …'."""
    cloud_dir = tmp_path / "cloud"
    cloud_dir.mkdir()
    (cloud_dir / "superlink.db").write_bytes(b"this is not a database " * 100)
    args = ["cloud", "serve", "--data-dir", str(cloud_dir), "--port", str(procs.free_port()), "--registry-port",
            str(procs.free_port()), "--initial-checkpoint", str(checkpoint)]
    refused = subprocess.run([sys.executable, "-m", "fedvst.cli", *args], capture_output=True, text=True, timeout=180,
                             env={**os.environ, "FEDVST_OFFLINE": "1"})
    errors = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert refused.returncode == 2 and len(errors) == 1, refused.stderr
    assert "the SuperLink exited with" in errors[0] and "not a database" in errors[0], errors[0]
    assert (cloud_dir / "superlink.db").read_bytes() == b"this is not a database " * 100  # left as it was
