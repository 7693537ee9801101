"""TLS and bearer-token plumbing shared by every gRPC server and client of fedvst.

Servers: ``server_credentials`` (TLS, optionally requiring client certificates = mTLS),
``TokenInterceptor`` (rejects calls without ``authorization: Bearer <token>``) and ``listen``
(binds a port no other server holds).
Clients: ``open_channel`` (TLS when a CA is given) and ``call_metadata``.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path

import grpc

AUTH_KEY = "authorization"
MAX_MESSAGE_BYTES = 64 << 20


# gRPC servers set SO_REUSEPORT by default: a second server on a taken port would then share it
# with the first (the kernel splitting the calls between them) instead of failing to start
EXCLUSIVE_PORT = ("grpc.so_reuseport", 0)


def listen(server: grpc.Server, address: str, credentials: grpc.ServerCredentials | None = None) -> int:
    """Bind ``server`` (built with ``EXCLUSIVE_PORT``) to ``address`` = host:port (port 0: any free
    one), with TLS when ``credentials`` are given; returns the port. OSError naming the address if
    it cannot be bound."""
    try:
        port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    except RuntimeError:  # grpcio raises where older versions returned 0
        port = 0
    if port == 0:
        raise OSError(f"cannot listen on {address}: the port is taken or the address is not this machine's")
    return port


def read_token(path: Path | None) -> str | None:
    """The bearer token stored in ``path`` (stripped), or None without a path."""
    if path is None:
        return None
    try:
        token = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read the token file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if len(token) < 16:
        raise ValueError(f"token in {path} is too short (need at least 16 characters)")
    return token


def check_tls_pair(cert: Path, key: Path) -> None:
    """ValueError naming the files unless they are a PEM certificate (chain) and its private key:
    gRPC only finds out when it binds, and then says nothing of why."""
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(f"TLS certificate {cert} and key {key} are not a PEM certificate and its private key "
                         f"({getattr(exc, 'strerror', None) or exc})") from None


def server_credentials(cert: Path, key: Path, ca: Path | None = None) -> grpc.ServerCredentials:
    """TLS for a server (ValueError for files that are not a certificate and its key); with ``ca``
    clients must present a certificate signed by it (mTLS)."""
    check_tls_pair(cert, key)
    client_ca = read_pem(ca, "CERTIFICATE", "the CA certificate") if ca else None
    return grpc.ssl_server_credentials([(Path(key).read_bytes(), Path(cert).read_bytes())],
                                       root_certificates=client_ca,
                                       require_client_auth=ca is not None)


def check_address(address: str) -> str:
    """``address`` unchanged if it is HOST:PORT (an IPv6 host in brackets) with a port in 1–65535,
    else ValueError (gRPC would quietly take port 99999 as 34463)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"address {address or '(empty)'} is not HOST:PORT with a port in 1–65535")
    return address


# gRPC's own retry policy for every fedvst call: a busy server (RESOURCE_EXHAUSTED, refused before any
# reply) is tried again with jittered exponential back-off, or after the server's grpc-retry-pushback-ms
# hint, within the call's deadline; gRPC allows at most 5 attempts, and a streamed call is replayed
# from a buffer big enough for the largest message we send. UNAVAILABLE is retried only for the unary
# UploadStyle: with grpcio 1.85 a retried *stream* whose connection was cut mid-call hung past its
# deadline (measured), and a dead edge's jobs are better handed to another edge anyway.
RETRY_ATTEMPTS = 5
RETRY_PUSHBACK = "grpc-retry-pushback-ms"  # gRPC's own trailing-metadata key: a retry policy waits this long


def _retry(*codes: str) -> dict[str, object]:
    return {"maxAttempts": RETRY_ATTEMPTS, "initialBackoff": "0.1s", "maxBackoff": "2s", "backoffMultiplier": 2,
            "retryableStatusCodes": list(codes)}


SERVICE_CONFIG = json.dumps({"methodConfig": [
    {"name": [{"service": "fedvst.v1.Stylizer", "method": "UploadStyle"}],
     "retryPolicy": _retry("RESOURCE_EXHAUSTED", "UNAVAILABLE")},
    {"name": [{"service": "fedvst.v1.Stylizer", "method": "Stylize"}, {"service": "fedvst.v1.ModelRegistry"}],
     "retryPolicy": _retry("RESOURCE_EXHAUSTED")},
]})


def open_channel(address: str, *, ca: Path | None = None, cert: Path | None = None,
                 key: Path | None = None) -> grpc.Channel:
    """Insecure channel, or TLS (optionally with a client certificate) when ``ca`` is given, to the
    HOST:PORT ``address`` (ValueError for anything else); calls retry as SERVICE_CONFIG says."""
    check_address(address)
    options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
               ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
               ("grpc.enable_retries", 1), ("grpc.service_config", SERVICE_CONFIG),
               ("grpc.per_rpc_retry_buffer_size", MAX_MESSAGE_BYTES), ("grpc.retry_buffer_size", 2 * MAX_MESSAGE_BYTES)]
    if ca is None:
        return grpc.insecure_channel(address, options=options)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=read_pem(ca, "CERTIFICATE", "the CA certificate"),
        private_key=read_pem(key, "PRIVATE KEY", "the private key") if key else None,
        certificate_chain=read_pem(cert, "CERTIFICATE", "the certificate") if cert else None)
    return grpc.secure_channel(address, credentials, options=options)


def read_pem(path: Path, kind: str, what: str) -> bytes:
    """A PEM file's bytes; ValueError (one line) when it is missing or holds no ``-----BEGIN … {kind}-----``
    block (gRPC's own error would be "Failed to create security handshaker", at the first call)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {what} {path}: {exc.strerror}") from None
    if f"{kind}-----".encode() not in data or b"-----BEGIN " not in data:
        raise ValueError(f"{path} is not a PEM file holding {what} (no '-----BEGIN … {kind}-----' block); pass the "
                         f"file make_certs wrote")
    return data


def speaks_tls(address: str, timeout_s: float = 2.0) -> bool:
    """Whether something at HOST:PORT answers a TLS handshake (certificates not checked): what tells a
    TLS server that closed a plaintext call from a server that is simply gone."""
    import socket
    import ssl

    host, _, port = address.rpartition(":")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as raw, \
                context.wrap_socket(raw, server_hostname=host.strip("[]") or None):
            return True
    except ssl.SSLError as exc:  # a TLS alert (say, a client certificate required) is still TLS
        return exc.reason not in ("WRONG_VERSION_NUMBER", "UNEXPECTED_EOF_WHILE_READING", "RECORD_LAYER_FAILURE",
                                  "PACKET_LENGTH_TOO_LONG", None)
    except (OSError, ValueError):
        return False


def tls_hint(exc: grpc.RpcError, tls: bool, ca_flag: str = "--edge-ca", peer: str = "the edge",
             address: str | None = None) -> str:
    """What a TLS mismatch looks like from a client of ``peer``, said in words ("" when it does not
    look like one); ``ca_flag`` is the option that names the peer's CA certificate. A plaintext call
    whose socket closed gets the hint only when ``address`` answers a TLS handshake (``speaks_tls``):
    an edge killed mid-call closes the socket too."""
    if exc.code() != grpc.StatusCode.UNAVAILABLE:
        return ""
    details = (exc.details() or "").lower()
    if not tls and "socket closed" in details and (address is None or speaks_tls(address)):
        return f" ({peer} closed the connection at once: if it serves TLS, pass {ca_flag} with its CA certificate)"
    if tls and "handshake failed" in details:
        return (f" (TLS handshake failed: {peer} may not serve TLS, or its certificate is not signed by the "
                f"{ca_flag} given)")
    return ""


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """gRPC metadata carrying the bearer token (empty without one)."""
    return ((AUTH_KEY, f"Bearer {token}"),) if token else ()


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuses every call (but health checks) without the right bearer token."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

        def deny(request: object, context: grpc.ServicerContext) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

        self._deny_unary = grpc.unary_unary_rpc_method_handler(deny)
        self._deny_stream = grpc.stream_stream_rpc_method_handler(deny)
        self._deny_unary_stream = grpc.unary_stream_rpc_method_handler(deny)

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        if method.startswith("/grpc.health.v1.Health/"):
            return continuation(handler_call_details)
        given = dict(handler_call_details.invocation_metadata or ()).get(AUTH_KEY, "")
        if hmac.compare_digest(given.encode(), self._expected):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        if handler.request_streaming:
            return self._deny_stream
        if handler.response_streaming:
            return self._deny_unary_stream
        return self._deny_unary
