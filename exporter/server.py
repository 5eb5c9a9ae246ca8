"""HTTP edge of the exporter: `/metrics` serves the last rendered snapshot, `/health` says if it is good.

A scrape does no GPU work: it copies the bytes the collector rendered and appends the snapshot's age.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from exporter.collector import Rendered
from exporter.exposition import CONTENT_TYPE, age_line

log = logging.getLogger(__name__)


class ExporterServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        snapshot: Callable[[], Rendered],
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(address, _Handler)
        self.snapshot = snapshot
        self.max_age_s = max_age_s
        """/health fails when the served snapshot is older than this (the collector is stuck)."""
        self.clock = clock

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="http", daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: ExporterServer
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes; with Nagle on, a kept-alive connection (as
    # Prometheus keeps) waits for the client's delayed ACK (~40 ms) before the body goes out.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        rendered = self.server.snapshot()
        age = self.server.clock() - rendered.collected_at
        if path == "/metrics":
            self._send(HTTPStatus.OK, CONTENT_TYPE, rendered.body, age_line(age))
        elif path == "/health":
            problem = ""
            if not rendered.healthy:
                problem = "no GPU driver"
            elif age > self.server.max_age_s:
                problem = f"snapshot is {age:.0f}s old"
            status = HTTPStatus.SERVICE_UNAVAILABLE if problem else HTTPStatus.OK
            self._send(status, "text/plain; charset=utf-8", (problem or "ok").encode() + b"\n")
        elif path == "/":
            self._send(HTTPStatus.OK, "text/html; charset=utf-8", b'<a href="/metrics">metrics</a>\n')
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")

    def _send(self, status: HTTPStatus, content_type: str, *chunks: bytes) -> None:
        """Send the chunks as one body without joining them: the snapshot is not copied per scrape."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(sum(len(c) for c in chunks)))
        self.end_headers()
        for chunk in chunks:
            self.wfile.write(chunk)

    def log_message(self, format: str, *args: object) -> None:
        log.debug(format, *args)
