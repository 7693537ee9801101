"""The edge finds its last SuperNode's node id in its log, and a sign-off that cannot be delivered
says so in one line instead of raising (the SuperNode that starts next reports the cause)."""

from cloud_server.make_certs import make_node_keys
from edge_client.supernode_signoff import last_node_id, sign_off
from fedvst.processes import free_port


def test_the_last_logged_node_id_is_the_one_signed_off(tmp_path):
    log = tmp_path / "supernode.log"
    assert last_node_id(log) is None  # no SuperNode ever ran here
    log.write_bytes(b"\x1b[92mINFO \x1b[0m:      SuperNode ID: 11\nrestarting\n"
                    b"\x1b[92mINFO \x1b[0m:      SuperNode ID: 13261745126345029801\n\xff\xfe not text\n")
    assert last_node_id(log) == 13261745126345029801


def test_an_undeliverable_sign_off_is_one_line_not_an_exception(tmp_path):
    private, _ = make_node_keys(tmp_path, "node_0")
    taken, line = sign_off(f"127.0.0.1:{free_port()}", 42, private, None)
    assert not taken and "previous SuperNode 42 not signed off" in line and "\n" not in line
    (tmp_path / "broken").write_text("not a key")
    taken, line = sign_off("127.0.0.1:1", 42, tmp_path / "broken", None)
    assert not taken and "could not read the node key" in line
