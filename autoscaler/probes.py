"""The controller's HTTP server: `/metrics`, and the kubelet's probes `/healthz` and `/readyz`.

`egs controller` serves it on `--metrics-listen`; the chart points the Deployment's liveness probe at
`/healthz` and its readiness probe at `/readyz`:

- `GET /healthz`: 200 while the last loop (leader or follower) finished less than 3 intervals and
  a Lease ago, else 503, the body saying why. A loop stuck on a read without a deadline, or a dead
  loop thread, gets the pod restarted.
- `GET /readyz`: 200 once the first loop ran, 503 before.
- anything else: the registry's exposition (what `prometheus_client.start_http_server` served).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, ClassVar

from prometheus_client import CollectorRegistry, MetricsHandler

from common.http_server import HttpServer

Probe = Callable[[], tuple[bool, str]]
"""(healthy, why in a sentence)."""


class ProbeServer(HttpServer):
    """`registry` on every path but the two probes."""

    def __init__(self, address: tuple[str, int], registry: CollectorRegistry, live: Probe, ready: Probe) -> None:
        handler = type("Handler", (_Handler,), {"registry": registry, "probes": {"/healthz": live, "/readyz": ready}})
        super().__init__(address, handler)

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="controller-http", daemon=True)
        thread.start()
        return thread


class _Handler(MetricsHandler):
    probes: ClassVar[dict[str, Probe]] = {}

    def do_GET(self) -> None:
        probe = self.probes.get(self.path.partition("?")[0])
        if probe is None:
            super().do_GET()
            return
        ok, why = probe()
        body = f"{'ok' if ok else 'failing'}: {why}\n".encode()
        self.send_response(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the kubelet probes every few seconds."""
