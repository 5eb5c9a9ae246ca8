"""A STAND-IN for vLLM's /metrics endpoint (no model server runs in CI or in `egs demo`).

It writes the series the rules read from vLLM, with vLLM's names and labels (`model_name`; `pod` and
`namespace` as a pod scrape with `honorLabels` keeps them): a request counter that grows with time
at each pod's rate, the running and waiting gauges and the KV-cache usage, each model on the pods
given. `update()` replaces the pods and their numbers (the demo replays demand through it); a pod's
counter keeps what it has counted, as a running server's does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from common.http_server import HttpServer
from localplay.localstack import free_port


@dataclass(frozen=True)
class Server:
    """One vLLM pod serving `model` at `rps` requests per second."""

    model: str
    namespace: str
    pod: str
    rps: float
    waiting: int
    running: int
    kv_cache: float


class _Collector:
    def __init__(self, servers: Sequence[Server]) -> None:
        self._servers = list(servers)
        self._counted: dict[tuple[str, str, str], float] = {}
        self._since = time.monotonic()
        self._lock = threading.Lock()

    def update(self, servers: Sequence[Server]) -> None:
        with self._lock:
            self._count()
            self._servers = list(servers)

    def _count(self) -> None:
        """Add what every pod served since the last count at its rate."""
        now = time.monotonic()
        for s in self._servers:
            key = (s.model, s.namespace, s.pod)
            self._counted[key] = self._counted.get(key, 0.0) + s.rps * (now - self._since)
        self._since = now

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            self._count()
            servers, counted = list(self._servers), dict(self._counted)
        labels = ["model_name", "namespace", "pod"]
        success = CounterMetricFamily(
            "vllm:request_success", "Count of successfully processed requests.", labels=[*labels, "finished_reason"]
        )
        waiting = GaugeMetricFamily("vllm:num_requests_waiting", "Requests waiting to be processed.", labels=labels)
        running = GaugeMetricFamily("vllm:num_requests_running", "Requests running on GPU.", labels=labels)
        kv = GaugeMetricFamily("vllm:kv_cache_usage_perc", "KV-cache usage (1 = 100%).", labels=labels)
        for s in servers:
            ident = [s.model, s.namespace, s.pod]
            success.add_metric([*ident, "stop"], counted[(s.model, s.namespace, s.pod)])
            waiting.add_metric(ident, s.waiting)
            running.add_metric(ident, s.running)
            kv.add_metric(ident, s.kv_cache)
        yield from (success, waiting, running, kv)


class VllmStandIn:
    """Serves the stand-in's /metrics on 127.0.0.1 until `close()`."""

    def __init__(self, servers: Sequence[Server]) -> None:
        registry = CollectorRegistry()
        self._collector = _Collector(servers)
        registry.register(self._collector)

        class Handler(BaseHTTPRequestHandler):
            # The text format whatever the scraper asks for: prometheus_client's OpenMetrics writer
            # would rename `vllm:x` to `vllm_x`, which is not what vLLM's /metrics serves Prometheus.
            def do_GET(self) -> None:
                body = generate_latest(registry)
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._http = HttpServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def update(self, servers: Sequence[Server]) -> None:
        """Serve these pods from now on (counters of pods that stay go on from where they were)."""
        self._collector.update(servers)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._http.server_address[1]}"

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()
