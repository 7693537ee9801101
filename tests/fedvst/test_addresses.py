"""Addresses and ports a server or client is handed, and a server's hold on its data folder."""

import socket

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
