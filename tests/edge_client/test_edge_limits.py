"""An edge under hostile or heavy load, served by the real EdgeServer on 127.0.0.1 in this process
(so that its counters and its model can be inspected): idle streams, decode bombs, busy phones."""

from __future__ import annotations

import io
import logging
import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from edge_client.server import EdgeServer, EdgeSettings
from edge_client.service import Limits
from fedvst.backends import Dispatcher, KeyFrameJob, LocalBackend
from fedvst.protocol import fedvst_pb2
from fedvst.remote import RemoteBackend, encode_png
from stylizer import Stylizer, load_model, save_model
from tests import procs


@pytest.fixture()
def checkpoint(tmp_path, small_model):
    path = tmp_path / "model.safetensors"
    save_model(path, small_model, round=1)
    return path


def start(tmp_path, checkpoint, **limits) -> EdgeServer:
    edge = EdgeServer(EdgeSettings(port=procs.free_port(), data_dir=tmp_path / "edge", initial_checkpoint=checkpoint,
                                   limits=Limits(**limits)))
    edge.start()
    return edge


def one_reply(call, request: fedvst_pb2.KeyFrame, timeout_s: float) -> fedvst_pb2.StylizedFrame:
    (raw,) = list(call(iter([request.SerializeToString()]), timeout=timeout_s))
    return fedvst_pb2.StylizedFrame.FromString(raw)


def frame_bytes(photos, i: int = 0) -> bytes:
    return encode_png(np.ascontiguousarray(photos["astronaut"][i * 8:i * 8 + 96, :128]))


def test_idle_streams_cannot_starve_health_checks_style_uploads_or_phones(tmp_path, checkpoint, photos, caplog):
    """Case 5: ten Stylize streams that never sent a message took every worker thread for as long
    as their clients stayed connected."""
    edge = start(tmp_path, checkpoint, capacity=4, stream_idle_s=3.0)
    address = f"127.0.0.1:{edge.port}"
    release = threading.Event()
    outcomes: list[grpc.StatusCode] = []
    channels = [grpc.insecure_channel(address) for _ in range(10)]

    def idle_stream(channel) -> None:
        def nothing():
            release.wait(120)
            yield from ()
        try:
            list(channel.stream_stream("/fedvst.v1.Stylizer/Stylize")(nothing(), timeout=120))
            outcomes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            outcomes.append(exc.code())

    try:
        threads = [threading.Thread(target=idle_stream, args=(c,), daemon=True) for c in channels]
        for thread in threads:
            thread.start()
        time.sleep(1.0)  # let them all connect
        with grpc.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        phone = RemoteBackend(address, timeout_s=30)
        phone.set_style(photos["coffee"])  # a style upload is never starved either
        with caplog.at_level(logging.WARNING), Dispatcher([phone], busy_timeout_s=60) as dispatcher:
            job = KeyFrameJob(0, photos["astronaut"][:96, :128].copy(), (96, 128))
            result = dispatcher.submit(job).result(timeout=90)  # waits out the refusals, then is served
        assert result.shape[-1] == 12
        for thread in threads:
            thread.join(30)
        assert edge.service.streams.idle_cancelled >= 1 and grpc.StatusCode.CANCELLED in outcomes
        assert "idle Stylize stream" in caplog.text
        assert edge.service.streams.open_streams() == 0
    finally:
        release.set()
        for channel in channels:
            channel.close()
        edge.stop()


def test_a_decode_bomb_is_shrunk_before_the_network_and_oversized_frames_are_refused(tmp_path, checkpoint, photos):
    """Case 6: a 12 KB PNG decoding to 2048×2048 ran the network at full size for 90 s."""
    edge = start(tmp_path, checkpoint)
    seen: list[tuple[int, ...]] = []
    stylizer = edge.slot.current()
    network_field = stylizer.field

    def recording_field(small, *args, **kwargs):
        seen.append(tuple(small.shape))
        return network_field(small, *args, **kwargs)

    stylizer.field = recording_field
    address = f"127.0.0.1:{edge.port}"
    try:
        phone = RemoteBackend(address)
        phone.set_style(photos["coffee"])
        bomb = io.BytesIO()
        Image.new("RGB", (2048, 2048), (90, 120, 30)).save(bomb, format="PNG")
        assert len(bomb.getvalue()) < 64 * 1024
        call = grpc.insecure_channel(address).stream_stream("/fedvst.v1.Stylizer/Stylize")
        request = fedvst_pb2.KeyFrame(style_handle=phone.handle, index=3, image=bomb.getvalue(), target_width=256,
                                      target_height=256, reply_field=True)
        reply = one_reply(call, request, 120)
        assert reply.HasField("field")
        assert seen and max(shape[1] for shape in seen) <= stylizer.work_width  # never the 2048 px frame
        big = io.BytesIO()
        Image.new("L", (4096, 4096)).save(big, format="PNG")  # within the side limit, over the pixel budget
        request.image = big.getvalue()
        with pytest.raises(grpc.RpcError) as refused:
            list(call(iter([request.SerializeToString()]), timeout=60))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "pixels" in refused.value.details()
        header = _png_header(100_000, 100_000)
        request.image = header
        with pytest.raises(grpc.RpcError) as refused:
            list(call(iter([request.SerializeToString()]), timeout=60))
        assert "100000×100000" in refused.value.details() and "DecompressionBomb" not in refused.value.details()
    finally:
        edge.stop()


def _png_header(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


def test_busy_phones_wait_and_are_all_served(tmp_path, checkpoint, photos):
    """Case 7: a phone failed its video on the first RESOURCE_EXHAUSTED; here 6 phones share an edge
    of capacity 1 and every key frame is served, the same as locally."""
    edge = start(tmp_path, checkpoint, capacity=1, streams=6, streams_per_peer=6)
    address = f"127.0.0.1:{edge.port}"
    local = LocalBackend(Stylizer(load_model(checkpoint)[0]))
    local.set_style(photos["coffee"])
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def phone(p: int) -> None:
        try:
            remote = RemoteBackend(address, timeout_s=60)
            remote.set_style(photos["coffee"])
            jobs = [KeyFrameJob(p * 10 + i, photos["chelsea"][i * 9:i * 9 + 96, p * 20:p * 20 + 128].copy(),
                                (96, 128)) for i in range(4)]
            with Dispatcher([remote], busy_timeout_s=120) as dispatcher:
                futures = [dispatcher.submit(job) for job in jobs]
                results[p] = [(job, f.result(timeout=180)) for job, f in zip(jobs, futures, strict=True)]
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=phone, args=(p,)) for p in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(240)
        assert not errors, errors
        assert edge.service.stats.rejected > 0, "the edge should have been busy"
        for pairs in results.values():
            for job, field in pairs:
                assert field.to_bytes() == local.stylize_batch([job])[0].to_bytes()
    finally:
        edge.stop()


def test_odd_requests_get_one_clear_answer(tmp_path, checkpoint, photos, caplog):
    """A GIF kept for training, an unknown reply format, a 1×1 style, a style evicted by other phones,
    a style uploaded without consent."""
    edge = start(tmp_path, checkpoint, max_styles=1)
    address = f"127.0.0.1:{edge.port}"
    try:
        phone = RemoteBackend(address, allow_collection=True)
        phone.set_style(photos["coffee"])
        call = grpc.insecure_channel(address).stream_stream("/fedvst.v1.Stylizer/Stylize")
        gif = io.BytesIO()
        Image.fromarray(photos["astronaut"][:96, :128]).save(gif, format="GIF")
        request = fedvst_pb2.KeyFrame(style_handle=phone.handle, index=5, image=gif.getvalue(), target_width=128,
                                      target_height=96, reply_field=True, allow_collection=True)
        with caplog.at_level(logging.WARNING):
            reply = one_reply(call, request, 60)
        assert reply.HasField("field") and not reply.stored
        assert "frame 5 not kept for training" in caplog.text and edge.store.frames() == []

        request = fedvst_pb2.KeyFrame(style_handle=phone.handle, index=6, image=frame_bytes(photos), target_width=128,
                                      target_height=96, reply_format=7)
        with pytest.raises(grpc.RpcError) as refused:
            list(call(iter([request.SerializeToString()]), timeout=60))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "reply_format" in refused.value.details()

        with pytest.raises(Exception, match="sides under 32 px"):
            RemoteBackend(address).set_style(np.zeros((1, 1, 3), np.uint8))

        assert [s.sha256 for s in edge.store.styles()] and len(edge.store.styles()) == 1  # phone's consent
        other = RemoteBackend(address)  # no consent: its style is used, not kept
        other.set_style(photos["rocket"])  # and it evicts the first phone's style (max_styles=1)
        assert len(edge.store.styles()) == 1
        job = KeyFrameJob(7, photos["astronaut"][:96, :128].copy(), (96, 128))
        assert phone.stylize_batch([job])[0].shape[-1] == 12  # uploaded its style again by itself
        assert phone.stored == 1 and len(edge.store.frames()) == 1
    finally:
        edge.stop()


def test_a_refused_supernode_is_explained_and_only_its_own_output_is_read(tmp_path):
    from edge_client.server import supernode_refusal

    log = tmp_path / "supernode.log"
    log.write_text("ERROR : Failed to activate SuperNode.\n")  # an earlier start's refusal
    offset = log.stat().st_size
    with log.open("a") as handle:
        handle.write("INFO : Starting Flower SuperNode\nINFO : connected\n")
    assert supernode_refusal(log, offset, authenticated=True) == ""  # this start was not refused
    with log.open("a") as handle:
        handle.write("grpc._channel._InactiveRpcError: FAILED_PRECONDITION: Failed to activate SuperNode.\n")
    why = supernode_refusal(log, offset, authenticated=True)
    assert "not registered there (fedvst cloud serve --node-key KEY.pub)" in why
    assert "60 s after its last heartbeat" in why
    assert supernode_refusal(tmp_path / "missing.log", 0, authenticated=True) == ""
