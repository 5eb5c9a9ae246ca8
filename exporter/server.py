"""HTTP edge of the exporter: `/metrics` serves the last rendered snapshot, `/health` says if it is good.

A scrape does no GPU work: it copies the bytes the collector rendered and appends the snapshot's age.
The server runs on every GPU node, so it is written for hostile clients: a deep listen backlog,
a timeout on every connection, HEAD answered, and a client that goes away mid-answer is logged at
debug level (it is the client's problem, not the exporter's).
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from common.errors import InputError
from common.http_server import HttpServer
from exporter.collector import Rendered
from exporter.exposition import CONTENT_TYPE, age_line

log = logging.getLogger(__name__)

CONNECTION_TIMEOUT_S = 30.0
"""A connection that sends or takes nothing for this long is closed. Prometheus keeps its connection
alive between scrapes and simply opens a new one when the old one was closed."""


class ListenError(InputError):
    """`--listen` names an address this host cannot serve on; the message says why, in one line.

    An input error even for a port in use: what the user changes is the option."""

    def __init__(self, message: str) -> None:
        super().__init__(message, source="--listen")


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `[IPV6]:PORT` or `:PORT` (every IPv4 interface) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ListenError(f"must be HOST:PORT or [IPV6]:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ListenError(f"write an IPv6 address in brackets, [{host}]:{port}, got {text!r}")
    if not 1 <= int(port) <= 65535:
        raise ListenError(f"port must be 1-65535, got {port}")
    return host or "0.0.0.0", int(port)


def resolve(host: str, port: int) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    """The address family and socket address to bind for `host`; ListenError for an unknown host."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        raise ListenError(f"cannot resolve host {host!r}: {getattr(e, 'strerror', None) or e}") from e
    family, _, _, _, address = infos[0]
    return family, address


class ExporterServer(HttpServer):
    def __init__(
        self,
        address: tuple[str, int],
        snapshot: Callable[[], Rendered],
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
        connection_timeout_s: float = CONNECTION_TIMEOUT_S,
    ) -> None:
        """Bind and listen on `address` (host, port); raises ListenError, in one line, when it cannot."""
        self.address_family, bind_to = resolve(*address)
        self.snapshot = snapshot
        self.max_age_s = max_age_s
        """/health fails when the served snapshot is older than this (the collector is stuck)."""
        self.clock = clock
        self.connection_timeout_s = connection_timeout_s
        try:
            super().__init__(bind_to, _Handler)
        except OSError as e:
            reason = e.strerror or str(e)
            if e.errno == errno.EADDRNOTAVAIL:
                reason += " (the address is not one of this host's)"
            raise ListenError(f"cannot serve on {_show(address)}: {reason}") from e

    @property
    def url_host(self) -> str:
        """`host:port` as a URL writes it (IPv6 in brackets), with the port actually bound."""
        return _show((str(self.server_address[0]), int(self.server_address[1])))

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        thread.start()
        return thread


def health(rendered: Rendered, now: float, max_age_s: float) -> str:
    """What is wrong with the served snapshot, or "" when /health should answer 200.

    The age is counted from the end of the last cycle that completed, so a collector that stopped,
    hangs or fails every cycle fails /health within `max_age_s`, whatever the interval.
    """
    if not rendered.healthy:
        return "no GPU driver"
    age = now - rendered.collected_at
    if age > max_age_s:
        return f"snapshot is {age:.0f}s old: the collector has not completed a cycle since"
    return ""


class _Handler(BaseHTTPRequestHandler):
    server: ExporterServer
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes; with Nagle on, a kept-alive connection (as
    # Prometheus keeps) waits for the client's delayed ACK (~40 ms) before the body goes out.
    disable_nagle_algorithm = True

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.connection_timeout_s)

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        rendered = self.server.snapshot()
        now = self.server.clock()
        if path == "/metrics":
            self._send(HTTPStatus.OK, CONTENT_TYPE, body, rendered.body, age_line(now - rendered.collected_at))
        elif path == "/health":
            problem = health(rendered, now, self.server.max_age_s)
            status = HTTPStatus.SERVICE_UNAVAILABLE if problem else HTTPStatus.OK
            self._send(status, "text/plain; charset=utf-8", body, (problem or "ok").encode() + b"\n")
        elif path == "/":
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", body, b'<a href="/metrics">metrics</a>\n')
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", body, b"not found\n")

    def _send(self, status: HTTPStatus, content_type: str, body: bool, *chunks: bytes) -> None:
        """Send the chunks as one body without joining them: the snapshot is not copied per scrape."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(sum(len(c) for c in chunks)))
        self.end_headers()
        if body:
            for chunk in chunks:
                self.wfile.write(chunk)

    def log_message(self, format: str, *args: object) -> None:
        log.debug(format, *args)


def _show(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
