"""A real edge process on 127.0.0.1: stylization, crash safety, restore, hostile input."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import sqlite3
import subprocess
import sys
import threading

import grpc
import numpy as np
import pytest
from PIL import Image

from cloud_server.registry import start_registry
from cloud_server.store import CheckpointStore
from edge_client.frame_store import FrameStore
from fedvst.backends import KeyFrameJob, LocalBackend, render_key
from fedvst.protocol import fedvst_pb2
from fedvst.remote import EdgeError, RemoteBackend, encode_png
from stylizer import ColourField, Stylizer, load_model, save_model
from tests import procs

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture()
def checkpoint(tmp_path, small_model):
    path = tmp_path / "model.safetensors"
    save_model(path, small_model, round=7)
    return path


@pytest.fixture()
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN)
    return path


def start_edge(tmp_path, data_dir, *extra: str, name: str = "edge"):
    port = procs.free_port()
    log = tmp_path / f"{name}.log"
    process = procs.start(["edge", "serve", "--port", str(port), "--data-dir", str(data_dir), *extra], log)
    procs.wait_port(port, process, log=log)
    return process, port


def frame_png(photos, i: int) -> bytes:
    return encode_png(np.ascontiguousarray(photos["astronaut"][i * 8:i * 8 + 96, i * 4:i * 4 + 128]))


def test_remote_matches_local_and_refuses_bad_requests(tmp_path, checkpoint, token_file, photos):
    process, port = start_edge(tmp_path, tmp_path / "edge", "--initial-checkpoint", str(checkpoint),
                               "--token-file", str(token_file))
    try:
        remote = RemoteBackend(f"127.0.0.1:{port}", token=TOKEN)
        remote.set_style(photos["coffee"])
        local = LocalBackend(Stylizer(load_model(checkpoint)[0]))
        local.set_style(photos["coffee"])
        jobs = [KeyFrameJob(i, photos["astronaut"][i * 30:i * 30 + 96, :128].copy(), (144, 192),
                            full=photos["astronaut"][i * 45:i * 45 + 144, :192].copy()) for i in range(3)]
        for job, a, b in zip(jobs, remote.stylize_batch(jobs), local.stylize_batch(jobs), strict=True):
            assert isinstance(a, ColourField) and a.shape == b.shape
            assert a.to_bytes() == b.to_bytes()  # the field crossed the wire bit-exactly
            assert len(a.to_bytes()) < 64 * 1024
            assert render_key(a, job).shape == (144, 192, 3)
        softened = [KeyFrameJob(job.index, job.image, job.size, job.full, strength=0.4) for job in jobs[:1]]
        soft_remote, soft_local = remote.stylize_batch(softened)[0], local.stylize_batch(softened)[0]
        assert soft_remote.to_bytes() == soft_local.to_bytes()  # the edge honours the phone's strength
        assert soft_remote.to_bytes() != remote.stylize_batch(jobs[:1])[0].to_bytes()
        images = RemoteBackend(f"127.0.0.1:{port}", token=TOKEN, reply_field=False)  # what an old phone asks
        images.set_style(photos["coffee"])
        old_style = images.stylize_batch(jobs[:1])[0]
        assert isinstance(old_style, np.ndarray) and old_style.shape == (144, 192, 3)

        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        auth = (("authorization", f"Bearer {TOKEN}"),)
        raw_upload = channel.unary_unary("/fedvst.v1.Stylizer/UploadStyle")
        raw_stream = channel.stream_stream("/fedvst.v1.Stylizer/Stylize")

        def status_of(call) -> grpc.StatusCode:
            with pytest.raises(grpc.RpcError) as caught:
                call()
            assert caught.value.details(), "every refusal explains itself"
            return caught.value.code()

        def frame(**fields) -> bytes:
            base = {"style_handle": remote.handle, "index": 1, "image": frame_png(photos, 1), "target_width": 64,
                    "target_height": 48}
            return fedvst_pb2.KeyFrame(**{**base, **fields}).SerializeToString()

        huge = io.BytesIO()
        Image.new("L", (10000, 10000)).save(huge, format="PNG")
        assert status_of(lambda: raw_upload(b"\xff\xff\xff garbage", metadata=auth)) == \
            grpc.StatusCode.INVALID_ARGUMENT
        assert status_of(lambda: list(raw_stream(iter([b"\x0a\xff\xff\xff"]), metadata=auth))) == \
            grpc.StatusCode.INVALID_ARGUMENT
        assert status_of(lambda: list(raw_stream(iter([frame(image=b"")]), metadata=auth))) == \
            grpc.StatusCode.INVALID_ARGUMENT
        assert status_of(lambda: list(raw_stream(iter([frame(image=huge.getvalue())]), metadata=auth))) == \
            grpc.StatusCode.INVALID_ARGUMENT
        assert status_of(lambda: list(raw_stream(iter([frame(style_handle="f" * 64)]), metadata=auth))) == \
            grpc.StatusCode.NOT_FOUND
        assert status_of(lambda: list(raw_stream(iter([frame(target_width=100000)]), metadata=auth))) == \
            grpc.StatusCode.INVALID_ARGUMENT
        for strength in (1.5, -0.1, float("nan")):
            assert status_of(lambda s=strength: list(raw_stream(iter([frame(strength=s)]), metadata=auth))) == \
                grpc.StatusCode.INVALID_ARGUMENT
        assert status_of(lambda: list(raw_stream(iter([frame()]), metadata=(("authorization", "Bearer nope"),)))) \
            == grpc.StatusCode.UNAUTHENTICATED
        wrong = RemoteBackend(f"127.0.0.1:{port}", token="x" * 20)
        with pytest.raises(EdgeError, match="UNAUTHENTICATED"):
            wrong.set_style(photos["coffee"])
        # still serving
        assert remote.stylize_batch(jobs[:1])[0].grid == local.stylize_batch(jobs[:1])[0].grid
        channel.close()
    finally:
        assert procs.stop(process) == 0  # SIGTERM: a clean exit


def test_a_second_edge_on_a_taken_port_or_folder_refuses_to_start(tmp_path, checkpoint):
    data_dir = tmp_path / "edge"
    process, port = start_edge(tmp_path, data_dir, "--initial-checkpoint", str(checkpoint))
    try:
        assert (data_dir / ".lock").read_text().strip() == str(process.pid)
        lonely_key = tmp_path / "node_9"  # copied without node_9.pub (issue 16, item 6)
        lonely_key.write_text("-----BEGIN PRIVATE KEY-----\n")
        for name, args, message in (
                ("same port", ["--port", str(port), "--data-dir", str(tmp_path / "other")],
                 f"cannot listen on 127.0.0.1:{port}"),
                ("same folder", ["--port", str(procs.free_port()), "--data-dir", str(data_dir)],
                 f"{data_dir} is in use by another edge (pid {process.pid})"),
                ("port out of range", ["--port", "99999", "--data-dir", str(tmp_path / "third")], "0–65535"),
                ("not a certificate", ["--port", "0", "--data-dir", str(tmp_path / "fourth"), "--tls-cert",
                                       str(checkpoint), "--tls-key", str(checkpoint)], "not a PEM certificate"),
                ("SuperNode port taken", ["--port", "0", "--data-dir", str(tmp_path / "fifth"), "--cloud",
                                          "127.0.0.1:1", "--supernode-port", str(port)],
                 "SuperNode port: cannot listen"),
                ("node key without its public half", ["--port", "0", "--data-dir", str(tmp_path / "sixth"),
                                                      "--cloud", "127.0.0.1:1", "--node-key", str(lonely_key)],
                 "not found beside the private key")):
            second = subprocess.run([sys.executable, "-m", "fedvst.cli", "edge", "serve", *args,
                                     "--initial-checkpoint", str(checkpoint)], capture_output=True, text=True,
                                    timeout=120, env={**os.environ, "FEDVST_OFFLINE": "1"})
            errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
            assert second.returncode == 2 and len(errors) == 1 and message in errors[0], (name, second.stderr)
        assert process.poll() is None
        assert not (tmp_path / "other" / "model").exists()  # refused before it wrote anything
    finally:
        assert procs.stop(process) == 0


def test_kill_9_during_uploads_loses_no_acknowledged_frame(tmp_path, checkpoint, photos):
    data_dir = tmp_path / "edge"
    process, port = start_edge(tmp_path, data_dir, "--initial-checkpoint", str(checkpoint))
    acknowledged: list[str] = []
    errors: list[Exception] = []

    def upload() -> None:
        remote = RemoteBackend(f"127.0.0.1:{port}", allow_collection=True, timeout_s=30)
        try:
            remote.set_style(photos["coffee"])
            for i in range(200):
                image = photos["chelsea"][i % 40:i % 40 + 80, (i * 3) % 200:(i * 3) % 200 + 96].copy()
                remote.stylize_batch([KeyFrameJob(i, image, (48, 64))])
                acknowledged.append(hashlib.sha256(encode_png(image)).hexdigest())
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=upload)
    thread.start()
    deadline = 60
    while len(acknowledged) < 6 and deadline > 0 and thread.is_alive():
        thread.join(0.5)
        deadline -= 0.5
    procs.stop(process, signal.SIGKILL)
    thread.join(30)
    assert len(acknowledged) >= 6 and errors, "the kill should have cut an upload short"

    process, port = start_edge(tmp_path, data_dir, name="edge-restarted")
    try:
        with sqlite3.connect(data_dir / "index.sqlite3") as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        store = FrameStore(data_dir, readonly=True)  # the restarted edge is the writer
        stored = {f.sha256 for f in store.frames()}
        assert set(acknowledged) <= stored
        for image in store.frames():
            assert hashlib.sha256(image.path.read_bytes()).hexdigest() == image.sha256
        on_disk = {p.stem for p in (data_dir / "frames").rglob("*") if p.is_file()}
        assert on_disk == stored
        store.close()
    finally:
        procs.stop(process)


def test_edge_without_a_model_restores_from_the_registry(tmp_path, small_model, token_file):
    store = CheckpointStore(tmp_path / "cloud")
    digest = store.save(3, small_model.trainable_state(), {"encoder": {
        "identity": small_model.encoder.identity, "layer": small_model.encoder.layer,
        "weights_sha256": small_model.encoder.weights_sha256}, "config": small_model.config.to_dict()})
    server, registry_port = start_registry(tmp_path / "cloud", "127.0.0.1:0", token=TOKEN)
    try:
        process, _ = start_edge(tmp_path, tmp_path / "edge", "--registry", f"127.0.0.1:{registry_port}",
                                "--token-file", str(token_file))
        procs.stop(process)
        from stylizer import load_checkpoint

        slot = load_checkpoint(tmp_path / "edge" / "model" / "current.safetensors")
        assert slot.sha256 == digest and slot.metadata["round"] == 3
        assert "restored round 3" in (tmp_path / "edge.log").read_text()
        bad_token = tmp_path / "bad"
        bad_token.write_text("not-the-token-at-all")
        process = procs.start(["edge", "serve", "--port", str(procs.free_port()), "--data-dir",
                               str(tmp_path / "edge2"), "--registry", f"127.0.0.1:{registry_port}",
                               "--token-file", str(bad_token)], tmp_path / "edge2.log")
        assert process.wait(60) == 2
        assert "UNAUTHENTICATED" in (tmp_path / "edge2.log").read_text()
    finally:
        server.stop(1)


def test_a_video_through_two_edges_matches_the_local_pipeline(tmp_path, checkpoint, photos):
    from fedvst.backends import Dispatcher
    from fedvst.pipeline import PipelineOptions, stylize_video
    from fedvst.video.io import read_frames
    from fedvst.video.keyframes import KeyFramePolicy
    from tests.fedvst.clips import camera_clip, write_clip

    source = write_clip(tmp_path / "in.mp4", camera_clip(photos["astronaut"], 10, (3.0, 1.0), (96, 128)))
    options = PipelineOptions(keyframes=KeyFramePolicy(mode="interval", interval=3))
    edges = [start_edge(tmp_path, tmp_path / f"edge{i}", "--initial-checkpoint", str(checkpoint), name=f"e{i}")
             for i in range(2)]
    try:
        remote = [RemoteBackend(f"127.0.0.1:{port}") for _, port in edges]
        with Dispatcher(remote) as dispatcher:
            summary = stylize_video(source, photos["coffee"], tmp_path / "remote.mp4", dispatcher, options)
        assert set(dispatcher.assignments.values()) == {f"127.0.0.1:{port}" for _, port in edges}
    finally:
        for process, _ in edges:
            procs.stop(process)
    with Dispatcher([LocalBackend(Stylizer(load_model(checkpoint)[0]))]) as dispatcher:
        stylize_video(source, photos["coffee"], tmp_path / "local.mp4", dispatcher, options)
    remote_frames = [f.image.astype(int) for f in read_frames(tmp_path / "remote.mp4")]
    local_frames = [f.image.astype(int) for f in read_frames(tmp_path / "local.mp4")]
    assert summary.frames == len(remote_frames) == len(local_frames) == 10
    for a, b in zip(remote_frames, local_frames, strict=True):
        assert np.abs(a - b).mean() < 0.5
