"""Issue 26: a reply the phone itself refuses is not "edge busy", and fields have a size the phone checks."""

from concurrent import futures

import grpc
import numpy as np
import pytest

from fedvst.backends import BackendBusyError, KeyFrameJob
from fedvst.protocol import fedvst_pb2, fedvst_pb2_grpc
from fedvst.remote import EdgeError, RemoteBackend
from stylizer.field import MAX_FIELD_CELLS, ColourField, FieldError


class _OversizedEdge(fedvst_pb2_grpc.StylizerServicer):
    """Answers like an edge, but with a 512×512×16 field: 96 MiB, over the phone's 64 MiB limit."""

    def UploadStyle(self, request, context):  # noqa: N802 - gRPC method name
        return fedvst_pb2.UploadStyleReply(handle="h", width=8, height=8)

    def Stylize(self, requests, context):  # noqa: N802 - gRPC method name
        shape = (512, 512, 16, 12)
        data = np.zeros(shape, "<f2").tobytes()
        for request in requests:
            field = fedvst_pb2.ColourField(version=1, layout="gh,gw,depth,3x4-row-major", shape=shape, data=data)
            yield fedvst_pb2.StylizedFrame(index=request.index, field=field)


def test_a_reply_over_the_phones_limit_drops_the_edge_instead_of_waiting_as_if_busy():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                         options=[("grpc.max_send_message_length", 200 << 20)])
    fedvst_pb2_grpc.add_StylizerServicer_to_server(_OversizedEdge(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    backend = RemoteBackend(f"127.0.0.1:{port}", timeout_s=60)
    try:
        backend.set_style(np.zeros((8, 8, 3), np.uint8))
        image = np.zeros((16, 16, 3), np.uint8)
        with pytest.raises(EdgeError) as refused:
            backend.stylize_batch([KeyFrameJob(0, image, (16, 16), full=image)])
        assert not isinstance(refused.value, BackendBusyError)  # was EdgeBusyError: retried for 10 minutes
        assert "sent what this phone refuses" in str(refused.value) and "dropping that edge" in str(refused.value)
    finally:
        backend.close()
        server.stop(1)


def test_fields_have_a_maximum_checked_before_decoding():
    with pytest.raises(FieldError, match="too large"):
        ColourField.from_bytes(b"", (512, 512, 16, 12))  # refused from the shape alone, before the bytes
    with pytest.raises(FieldError, match=f"more than {MAX_FIELD_CELLS} cells"):
        ColourField(np.zeros((256, 256, 8, 12), np.float32))  # what an edge would refuse to build
    assert ColourField(np.zeros((128, 128, 16, 12), np.float32)).depth == 16  # the largest allowed


class _RecordingEdge(fedvst_pb2_grpc.StylizerServicer):
    def __init__(self) -> None:
        self.styles: list[bytes] = []

    def UploadStyle(self, request, context):  # noqa: N802 - gRPC method name
        self.styles.append(request.image)
        return fedvst_pb2.UploadStyleReply(handle="h", width=8, height=8)


def test_a_phone_shrinks_a_huge_style_before_uploading_it():
    """Issue 26: a 6000×4000 style went up as a 49 MB PNG, which the edge refused as too large."""
    from stylizer.images import decode_image_bytes

    edge = _RecordingEdge()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                         options=[("grpc.max_receive_message_length", 200 << 20)])
    fedvst_pb2_grpc.add_StylizerServicer_to_server(edge, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    backend = RemoteBackend(f"127.0.0.1:{port}", timeout_s=60)
    rng = np.random.default_rng(0)
    try:
        backend.set_style(rng.integers(0, 256, (4000, 6000, 3), dtype=np.uint8))  # noise: PNG cannot shrink it
        uploaded = decode_image_bytes(edge.styles[0])
        assert uploaded.shape == (683, 1024, 3) and len(edge.styles[0]) < 4 << 20
    finally:
        backend.close()
        server.stop(1)
