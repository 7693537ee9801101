"""Addresses and ports a server or client is handed, and a server's hold on its data folder."""

import signal
import socket
import sys

import pytest

from fedvst.processes import DataDirLock, check_listenable
from fedvst.protocol.security import check_address


@pytest.mark.parametrize("address", ["127.0.0.1:8500", "edge.example.org:1", "[::1]:65535"])
def test_host_port_addresses_pass(address):
    assert check_address(address) == address


@pytest.mark.parametrize("address", ["127.0.0.1:99999", "127.0.0.1:0", "localhost", ":8500", "host:", "host:x1",
                                     ""])
def test_anything_else_is_refused_instead_of_being_wrapped_or_guessed(address):
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        check_address(address)


def test_a_port_another_server_listens_on_is_refused_with_the_reason():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}: .*in use"):
            check_listenable("127.0.0.1", port)
    check_listenable("127.0.0.1", port)  # free again once its holder closed it
    check_listenable("127.0.0.1", 0)
    with pytest.raises(ValueError, match="0–65535"):
        check_listenable("127.0.0.1", 65536)


def test_a_data_folder_has_one_owner_until_it_lets_go(tmp_path):
    first = DataDirLock(tmp_path / "edge", "edge")
    with pytest.raises(OSError, match=r"in use by another edge \(pid \d+\)"):
        DataDirLock(tmp_path / "edge", "edge")
    first.release()
    first.release()  # idempotent
    DataDirLock(tmp_path / "edge", "edge").release()


def test_a_tls_mismatch_is_named_as_one(tmp_path):
    """Issue 16, item 9: a phone without --edge-ca talking to a TLS edge saw only 'Socket closed'."""
    from concurrent import futures

    import grpc
    import numpy as np

    from cloud_server.make_certs import make_ca_and_server
    from fedvst.protocol.security import listen, server_credentials
    from fedvst.remote import EdgeError, RemoteBackend

    make_ca_and_server(tmp_path, ["127.0.0.1", "localhost"])
    tls_server, plain_server = grpc.server(futures.ThreadPoolExecutor(2)), grpc.server(futures.ThreadPoolExecutor(2))
    tls_port = listen(tls_server, "127.0.0.1:0", server_credentials(tmp_path / "server.crt", tmp_path / "server.key"))
    plain_port = plain_server.add_insecure_port("127.0.0.1:0")
    tls_server.start()
    plain_server.start()
    style = np.zeros((64, 64, 3), np.uint8)
    try:
        with pytest.raises(EdgeError, match="pass --edge-ca"):
            RemoteBackend(f"127.0.0.1:{tls_port}", timeout_s=10).set_style(style)
        with pytest.raises(EdgeError, match="TLS handshake failed"):
            RemoteBackend(f"127.0.0.1:{plain_port}", ca=tmp_path / "ca.crt", timeout_s=10).set_style(style)
    finally:
        tls_server.stop(0)
        plain_server.stop(0)


def test_flowers_own_children_are_started_through_shims_that_exec_the_real_program(tmp_path):
    import os
    import subprocess

    from fedvst.processes import FLOWER_CHILDREN, flower_executable, guard_flower_children

    env = guard_flower_children(tmp_path, {"PATH": os.environ["PATH"]})
    again = guard_flower_children(tmp_path, env)  # a second start finds its own shims on PATH
    shims = tmp_path / "bin"
    assert env["PATH"].split(os.pathsep)[0] == str(shims)
    for name in FLOWER_CHILDREN:
        text = (shims / name).read_text()
        assert f'-m fedvst.processes "{flower_executable(name)}"' in text and str(shims) not in text
        assert os.access(shims / name, os.X_OK)
    assert again["PATH"].split(os.pathsep)[:2] == [str(shims), str(shims)]
    # what a shim execs through runs with the parent-death signal set to SIGKILL (prctl PR_GET_PDEATHSIG)
    ask = ("import ctypes; v = ctypes.c_int(); ctypes.CDLL(None).prctl(2, ctypes.byref(v), 0, 0, 0); "
           "print(v.value)")
    told = subprocess.run([sys.executable, "-m", "fedvst.processes", sys.executable, "-c", ask], capture_output=True,
                          text=True, timeout=60)
    assert told.stdout.strip() == str(int(signal.SIGKILL))


def test_the_tls_hint_needs_a_peer_that_speaks_tls(tmp_path):
    """Issue 26: any closed socket on a plaintext channel read as a TLS problem (an edge killed mid-call too)."""
    from concurrent import futures

    import grpc

    from cloud_server.make_certs import make_ca_and_server
    from fedvst.protocol.security import listen, server_credentials, speaks_tls, tls_hint
    from tests import procs

    make_ca_and_server(tmp_path, ["127.0.0.1"])
    tls_server, plain_server = grpc.server(futures.ThreadPoolExecutor(2)), grpc.server(futures.ThreadPoolExecutor(2))
    tls_port = listen(tls_server, "127.0.0.1:0", server_credentials(tmp_path / "server.crt", tmp_path / "server.key"))
    plain_port = plain_server.add_insecure_port("127.0.0.1:0")
    tls_server.start()
    plain_server.start()

    class Closed(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.UNAVAILABLE

        def details(self):
            return "Socket closed"

    try:
        assert speaks_tls(f"127.0.0.1:{tls_port}")
        assert not speaks_tls(f"127.0.0.1:{plain_port}") and not speaks_tls(f"127.0.0.1:{procs.free_port()}")
        assert "pass --edge-ca" in tls_hint(Closed(), False, address=f"127.0.0.1:{tls_port}")
        assert tls_hint(Closed(), False, address=f"127.0.0.1:{procs.free_port()}") == ""  # gone, not TLS
        assert tls_hint(Closed(), False, address=f"127.0.0.1:{plain_port}") == ""
    finally:
        tls_server.stop(0)
        plain_server.stop(0)


def test_status_at_a_wrong_port_or_with_a_bad_ca_says_what_it_reached_and_what_to_pass(tmp_path):
    """Issue 26: 'UNIMPLEMENTED: Method not found!', 'Failed parsing HTTP/2' and 'Failed to create security
    handshaker' were all the user got."""
    import http.server
    import threading
    from concurrent import futures

    import grpc

    from fedvst.cloud_status import fetch_status

    other_grpc = grpc.server(futures.ThreadPoolExecutor(2))  # answers gRPC, serves no registry (an edge's port)
    grpc_port = other_grpc.add_insecure_port("127.0.0.1:0")
    other_grpc.start()
    http1 = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=http1.serve_forever, daemon=True).start()
    (tmp_path / "style.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    try:
        with pytest.raises(ConnectionError, match="answers gRPC but is not the cloud's model registry: pass the "
                                                  "registry's port"):
            fetch_status(f"127.0.0.1:{grpc_port}")
        with pytest.raises(ConnectionError, match=r"is not a gRPC server \(it answered in HTTP/1\)"):
            fetch_status(f"127.0.0.1:{http1.server_address[1]}")
        with pytest.raises(ValueError, match="style.png is not a PEM file holding the CA certificate"):
            fetch_status(f"127.0.0.1:{grpc_port}", ca=tmp_path / "style.png")
    finally:
        other_grpc.stop(0)
        http1.shutdown()
