"""The cloud's dashboard: a read-only web page (``fedvst cloud serve --dashboard HOST:PORT``).

Routes (GET and HEAD only; anything else is 405):

- ``/``: the page (``dashboard.html``), with its first state and chart inline (shown at load,
  before any request), which refreshes itself every few seconds;
- ``/dashboard.js``: its script;
- ``/state.json``: ``overview.overview`` of the cloud's data folder, plus ``heldout`` (which
  pictures score the rounds) and ``now`` (unix s); node ids are strings;
- ``/chart.svg``: the held-out total per counted round, drawn by matplotlib (each point is an SVG
  group with id ``round-N``), so the page needs no chart script and nothing from outside.

With a token (the registry's ``--token-file``), every route but the script (code, no data) needs
it, as ``Authorization: Bearer TOKEN`` or ``?token=TOKEN`` (the page passes the one it was opened
with to its requests); a request without it gets 401 and one line saying what to do.
"""

from __future__ import annotations

import hmac
import io
import json
import logging
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from cloud_server.overview import overview

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
CLIENT_TIMEOUT_S = 10.0  # a connection that has not sent a complete request by then is closed
MAX_CLIENTS = 16  # requests served at once; more wait in the listen backlog
STATIC = {"/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8")}
PAGE = "dashboard.html"  # served at / with the state and chart written into it (``Dashboard.page``)
PUBLIC = "/dashboard.js"  # the one route without the token: code only (a browser sends no header for it)
SECURITY_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                                               "img-src 'self' data:; frame-ancestors 'none'"}


def chart_figure(rounds: list[dict[str, Any]]) -> Figure:
    """The held-out total per round (matplotlib, no pyplot: safe in server threads); the x-axis starts
    at round 0. Each scored round is a marker in a group with id ``round-N``; round 0 (the initial
    model) is also a dashed reference line."""
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    scored = [(r["round"], float(r["heldout_total"])) for r in rounds
              if isinstance(r.get("heldout_total"), (int, float))]
    figure = Figure(figsize=(7.0, 3.2), dpi=100)
    FigureCanvasSVG(figure)
    axes = figure.add_subplot()
    axes.set_xlabel("global round")
    axes.set_ylabel("held-out loss (Eq. 5 total)")
    if scored:
        xs, ys = zip(*scored, strict=True)
        axes.plot(xs, ys, color="#1f77b4", linewidth=1.5)
        for x, y in scored:
            axes.plot([x], [y], marker="o", color="#1f77b4", gid=f"round-{x}", clip_on=False)
        if xs[0] == 0:
            axes.axhline(ys[0], color="#888888", linestyle="--", linewidth=1, label="initial model (round 0)")
            axes.legend(loc="upper right", fontsize=8, frameon=False)
        axes.set_xlim(0, max(1, max(xs)) + 0.25)  # rounds count from 0: no negative rounds on the axis
        if len(xs) <= 20:
            axes.set_xticks(sorted(set(xs) | {0}))
    else:
        axes.text(0.5, 0.5, "no round scored yet", ha="center", va="center", transform=axes.transAxes)
    axes.ticklabel_format(axis="y", style="plain", useOffset=False)  # the scores as they are, no "+4.6e5"
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def chart_svg(rounds: list[dict[str, Any]]) -> bytes:
    """``chart_figure`` as SVG."""
    buffer = io.BytesIO()
    chart_figure(rounds).savefig(buffer, format="svg")
    return buffer.getvalue()


class BoundedHTTPServer(ThreadingHTTPServer):
    """At most ``MAX_CLIENTS`` requests served at once (a further connection waits in the listen
    backlog); a client that sends no complete request within ``CLIENT_TIMEOUT_S`` is dropped; a client
    that went away is one debug line, not a traceback."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        self._slots.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            log.debug("dashboard: client %s went away (%s)", client_address[0], type(error).__name__)
            return
        log.warning("dashboard: request from %s failed: %s", client_address[0], error)


class Dashboard:
    """The dashboard of the cloud whose data folder is ``cloud_root``; ``start`` then ``stop``."""

    def __init__(self, cloud_root: Path, address: str, *, token: str | None = None, heldout: str = "") -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--dashboard takes HOST:PORT (for example 127.0.0.1:8090), got {address!r}")
        if int(port) > 65535:  # 0 asks the system for any free port (the banner then names it)
            raise ValueError(f"--dashboard port must be in 1–65535 (or 0: any free port), got {port}")
        self.cloud_root = Path(cloud_root)
        self.token = token
        self.heldout = heldout
        self._chart: tuple[str, bytes] = ("", b"")
        self._chart_lock = threading.Lock()
        self._serving: threading.Thread | None = None
        try:
            self.server = BoundedHTTPServer((host.strip("[]"), int(port)), self._handler())
        except OSError as exc:
            raise OSError(f"--dashboard {address}: cannot listen there ({exc.strerror or exc})") from None
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.host = host

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    @property
    def how_to_open(self) -> str:
        """The URL as a person opens it (with the token's place, when there is one)."""
        return f"{self.url}?token=TOKEN (TOKEN: the contents of --token-file)" if self.token else self.url

    def start(self) -> None:
        self._serving = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.5},
                                         daemon=True, name="dashboard")
        self._serving.start()

    def stop(self) -> None:
        if self._serving is not None:  # shutdown() waits for a serve_forever that never ran
            self.server.shutdown()
        self.server.server_close()

    def state(self) -> dict[str, Any]:
        """``overview`` plus ``heldout`` and ``now``; node ids as strings (64-bit: JavaScript's numbers
        would round them)."""
        state = {**overview(self.cloud_root), "heldout": self.heldout, "now": time.time()}
        for edge in (state["federation"] or {}).get("edges", []):
            edge["node"] = str(edge.get("node"))
        return state

    def chart(self, rounds: list[dict[str, Any]]) -> bytes:
        """The chart for ``rounds``, drawn again only when their scores change."""
        key = json.dumps([(r["round"], r.get("heldout_total")) for r in rounds])  # what the chart draws
        with self._chart_lock:
            if self._chart[0] != key:
                self._chart = (key, chart_svg(rounds))
            return self._chart[1]

    def page(self) -> bytes:
        """The page with its first state (JSON in a data block the script reads: no inline code, so
        the CSP stays ``script-src 'self'``) and the chart (inline SVG) written in."""
        state = self.state()
        data = json.dumps(state).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        chart = self.chart(state["rounds"]).decode("utf-8")
        chart = chart[chart.find("<svg"):]  # no XML prolog or doctype inside HTML
        html = (HERE / PAGE).read_text(encoding="utf-8")
        return html.replace("<!--STATE-->", data, 1).replace("<!--CHART-->", chart, 1).encode("utf-8")

    def authorized(self, header: str | None, query: dict[str, list[str]]) -> bool:
        if not self.token:
            return True
        offered = header[len("Bearer "):] if header and header.startswith("Bearer ") else \
            (query.get("token") or [""])[0]
        return hmac.compare_digest(offered.encode(), self.token.encode())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        dashboard = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "fedvst-dashboard"
            sys_version = ""
            timeout = CLIENT_TIMEOUT_S  # the socket's: a silent or half-sent request is dropped after it

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("dashboard %s: " + format, self.client_address[0], *args)

            def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in SECURITY_HEADERS.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != PUBLIC and not dashboard.authorized(self.headers.get("Authorization"),
                                                                     parse_qs(parts.query)):
                    self._send(HTTPStatus.UNAUTHORIZED, b"this dashboard needs the cloud's token: open "
                               b"/?token=TOKEN, TOKEN being what fedvst cloud serve --token-file holds\n",
                               "text/plain; charset=utf-8")
                    return
                try:
                    if parts.path == "/":
                        self._send(HTTPStatus.OK, dashboard.page(), "text/html; charset=utf-8")
                    elif parts.path in STATIC:
                        name, content_type = STATIC[parts.path]
                        self._send(HTTPStatus.OK, (HERE / name).read_bytes(), content_type)
                    elif parts.path == "/state.json":
                        self._send(HTTPStatus.OK, json.dumps(dashboard.state()).encode(), "application/json")
                    elif parts.path == "/chart.svg":
                        body = dashboard.chart(overview(dashboard.cloud_root)["rounds"])
                        self._send(HTTPStatus.OK, body, "image/svg+xml")
                    else:
                        self._send(HTTPStatus.NOT_FOUND, b"not found: the dashboard has /, /state.json and "
                                   b"/chart.svg\n", "text/plain; charset=utf-8")
                except (ConnectionError, TimeoutError):
                    return  # the client went away mid-reply: nothing to answer (handle_error's line is enough)
                except Exception as exc:  # one bad read must not take the page down for good
                    log.warning("dashboard: %s failed: %s", parts.path, exc)
                    self._send(HTTPStatus.INTERNAL_SERVER_ERROR, f"could not read the cloud's state: {exc}\n"
                               .encode(), "text/plain; charset=utf-8")

            do_HEAD = do_GET  # noqa: N815 - http.server's name

            def _refuse(self) -> None:
                self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"the dashboard is read-only: GET only\n",
                           "text/plain; charset=utf-8")

            do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815 - http.server's names

        return Handler
