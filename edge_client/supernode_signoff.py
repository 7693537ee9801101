"""Sign off an authenticated edge's previous SuperNode before starting a new one.

A SuperNode killed without signing off (``kill -9``, power loss, the cloud restarting under it)
stays "online" on the SuperLink until 2 × its 30 s heartbeat interval has passed (Flower 1.41
fixes both numbers), and every activation of the same node key is refused until then. The edge
knows its node id (its SuperNode logs "SuperNode ID: N" once activated) and holds the node's
private key, so it sends Flower's own ``DeactivateNode`` for that id, signed with that key, exactly
what a SuperNode sends when it stops cleanly. The SuperLink checks the signature and that the key
owns the id; a node that is offline already is simply refused, which changes nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

NODE_ID_LINE = re.compile(rb"SuperNode ID: (\d+)")  # what Flower's SuperNode logs once activated
TAIL_BYTES = 1 << 20


def last_node_id(supernode_log: Path) -> int | None:
    """The node id the last activated SuperNode of this edge logged, or None if none did."""
    try:
        with Path(supernode_log).open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - TAIL_BYTES))
            found = NODE_ID_LINE.findall(handle.read())
    except OSError:
        return None
    return int(found[-1]) if found else None


def sign_off(superlink: str, node_id: int, private_key: Path, root_certificates: Path | None) -> tuple[bool, str]:
    """Send a signed ``DeactivateNode`` for ``node_id`` to ``superlink`` (HOST:PORT, HTTPS when
    ``root_certificates`` is given); returns whether the SuperLink took it, and one line saying what
    happened. Never raises for a
    refusal or an unreachable SuperLink: the SuperNode that starts next reports those itself.
    Bounded by Flower's 30 s HTTP timeout."""
    import httpx
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_ssh_private_key
    from flwr.proto.fleet_pb2 import DeactivateNodeRequest  # pylint: disable=E0611
    from flwr.supercore.interceptors.http.runtime_version import RuntimeVersionHttpInterceptor
    from flwr.supernode.fleet_http_client import FleetHttpClient
    from flwr.supernode.node_auth_http_interceptor import NodeAuthHttpInterceptor

    try:
        key = load_ssh_private_key(Path(private_key).read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        return False, f"could not read the node key {private_key}: {exc}"
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return False, f"node key {private_key} is not an elliptic-curve key"
    try:
        with FleetHttpClient.from_server_address(
                superlink, insecure=root_certificates is None,
                root_certificates=str(root_certificates) if root_certificates else None,
                interceptors=[RuntimeVersionHttpInterceptor(component_name="SuperNode"),
                              NodeAuthHttpInterceptor(key, key.public_key())]) as client:
            client.DeactivateNode(DeactivateNodeRequest(node_id=node_id))
    except (httpx.HTTPError, RuntimeError, OSError) as exc:
        return False, f"previous SuperNode {node_id} not signed off ({type(exc).__name__}: {str(exc)[:160]}); it was " \
               "offline already, or the cloud is unreachable"
    return True, f"signed off the previous SuperNode {node_id}, which had stopped without doing so"
