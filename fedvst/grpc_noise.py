"""gRPC's own TLS handshake messages, said in words: a filter on this process's standard error.

gRPC's C core writes a failed handshake straight to file descriptor 2 as raw OpenSSL text
("Handshake failed with error SSL_ERROR_SSL: …WRONG_VERSION_NUMBER"), once per attempt, in the
output of a server whose client forgot ``--ca``. ``HandshakeNoise`` puts a pipe in front of fd 2
and rewrites each such line as one line naming the server, the kind of client and the likely
cause, drops the core's other INFO and WARNING lines, and passes every other line through
unchanged. gRPC does not report the client's address in these lines, so the line names the
server the client reached. ``log_handshakes`` makes the core log them at all.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

HANDSHAKE = re.compile(r"Handshake failed with error (\w+): (.*)$")
CORE_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [\w./-]+:\d+\] ")  # gRPC core's log format
CAUSES = (  # (pattern in OpenSSL's text, what it means for the operator)
    ("WRONG_VERSION_NUMBER", "a client spoke plain text to this TLS port: give it the CA certificate ({ca_flag})"),
    ("HTTP_REQUEST", "a client spoke HTTP/1, not gRPC, to this TLS port: point it at the right port"),
    ("CERTIFICATE_VERIFY_FAILED", "a client does not trust this server's certificate: give it the CA that "
                                  "signed it ({ca_flag})"),
    ("UNKNOWN_CA", "a client does not trust this server's certificate: give it the CA that signed it ({ca_flag})"),
    ("BAD_CERTIFICATE", "a client refused this server's certificate: check that the certificate names the "
                        "address the client dials (make_certs --hosts / --edge-hosts)"),
)


def explain(line: str, who: str, ca_flag: str) -> str | None:
    """The one line for a gRPC handshake failure in ``line`` (None: not one)."""
    match = HANDSHAKE.search(line)
    if match is None:
        return None
    detail = match.group(2)
    for pattern, meaning in CAUSES:
        if pattern in detail:
            return f"{who}: TLS handshake refused: {meaning.format(ca_flag=ca_flag)}"
    return f"{who}: TLS handshake with a client failed ({detail.strip()[:160]})"


def log_handshakes() -> bool:
    """Make gRPC's core, when this process imports it, log at INFO, the level of its handshake
    failures (Flower sets ERROR, which hides them, so a client without ``--ca`` went unexplained).
    Call before anything imports grpc; False (nothing changed) if something did. The variable is
    put back at once, so child processes keep their own default; ``HandshakeNoise`` drops the core's
    other INFO and WARNING lines."""
    if "grpc" in sys.modules:
        return False
    before = os.environ.get("GRPC_VERBOSITY")
    os.environ["GRPC_VERBOSITY"] = "info"
    try:
        import grpc  # noqa: F401 - the core reads the level once, on import
    finally:
        if before is None:
            os.environ.pop("GRPC_VERBOSITY", None)
        else:
            os.environ["GRPC_VERBOSITY"] = before
    return True


def rewrite(line: str, who: str, ca_flag: str) -> str | None:
    """What ``HandshakeNoise`` writes for one line of fd 2: the ``explain`` line for a handshake
    failure, None (nothing) for gRPC core's other INFO and WARNING lines, else ``line`` itself."""
    said = explain(line, who, ca_flag)
    if said is not None:
        return said + "\n"
    core = CORE_LINE.match(line)
    if core is not None and core.group(1) in "IW":
        return None
    return line


class HandshakeNoise:
    """While started, gRPC handshake failures on fd 2 come out as ``explain`` lines. ``who`` and
    ``ca_flag`` may be set after ``start`` (a server learns its name once it listens)."""

    def __init__(self, who: str, ca_flag: str) -> None:
        self.who = who
        self.ca_flag = ca_flag
        self._saved: int | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        """Put the filter in front of fd 2; it is taken away again by ``stop`` or, whatever way the
        process ends normally (a refused option's ``SystemExit`` included), at exit, after the
        lines still in the pipe were written."""
        sys.stderr.flush()
        read_end, write_end = os.pipe()
        self._saved = os.dup(2)
        os.dup2(write_end, 2)
        os.close(write_end)
        self._reader = threading.Thread(target=self._pump, args=(read_end, self._saved), daemon=True,
                                        name="grpc-noise")
        self._reader.start()
        atexit.register(self.stop)

    def _pump(self, read_end: int, out: int) -> None:
        with os.fdopen(read_end, "rb") as pipe:
            for raw in pipe:
                said = rewrite(raw.decode("utf-8", "replace"), self.who, self.ca_flag)
                if said is None:
                    continue
                try:
                    os.write(out, said.encode())
                except OSError:
                    return

    def stop(self) -> None:
        """Put fd 2 back (the pipe's last writer closes, so the reader drains it and ends)."""
        if self._saved is None:
            return
        atexit.unregister(self.stop)
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        if self._reader is not None:
            self._reader.join(timeout=5)
        os.close(self._saved)
        self._saved = None


def watch_handshakes(who: str = "server", ca_flag: str = "--ca") -> HandshakeNoise:
    """For a TLS server, before anything imports grpc: the filter, started, then ``log_handshakes``
    (so even gRPC's start-up warning about its log level goes through the filter)."""
    noise = HandshakeNoise(who, ca_flag)
    noise.start()
    log_handshakes()
    return noise


@contextlib.contextmanager
def explaining_as(noise: HandshakeNoise | None, who: str, ca_flag: str) -> Iterator[None]:
    """While the block runs, ``noise`` (None: no filter) names the server ``who`` and tells clients
    ``ca_flag``; stopped when the block ends."""
    if noise is None:
        yield
        return
    noise.who, noise.ca_flag = who, ca_flag
    try:
        yield
    finally:
        noise.stop()
