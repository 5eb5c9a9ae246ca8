"""The Prometheus adapter's reads bounded in time, verified over TLS, pinned to one evaluation time, and
robust to bad samples; in real time with short timeouts, against local sockets.

Covers the findings of issue 21: a Prometheus that accepts and never answers costs one deadline, not
prometheus-api-client's default 4 timeouts and 6 s of back-off, and is asked once (no hidden retries);
an https Prometheus is verified by default (a self-signed certificate fails; its CA file or the skip
flag passes); every instant query of a snapshot is evaluated at the same `time`; a sample that is +Inf,
NaN or not a number is dropped and listed, and the other models keep their signals. The reads of the
recording rules against a real Prometheus are in test_prometheus_adapter.py.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

from autoscaler.adapters.prometheus import DEMAND, KV_CACHE, MetricsUnavailable, PrometheusMetrics
from autoscaler.signals import BadSample

AT = 1_800_000_000.0


class BlackHole:
    """A TCP server that accepts every connection and never answers: a hung Prometheus."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


class FakePrometheus(ThreadingHTTPServer):
    """Answers /api/v1/query from `answers` (query -> result list) and records each request's `time`."""

    daemon_threads = True

    def __init__(self, answers: dict[str, list[dict[str, Any]]]) -> None:
        self.answers = answers
        self.times: list[str] = []
        super().__init__(("127.0.0.1", 0), _Answer)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Answer(BaseHTTPRequestHandler):
    server: ClassVar[FakePrometheus]  # type: ignore[misc]

    def do_GET(self) -> None:
        url = urlparse(self.path)
        params = parse_qs(url.query)
        query = params.get("query", [""])[0]
        if url.path == "/api/v1/query":
            self.server.times.append(params.get("time", [""])[0])
            result = self.server.answers.get(query, [])
        else:
            result = []
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def sample(model: str, value: str) -> dict[str, Any]:
    return {"metric": {"model_name": model}, "value": [AT, value]}


def test_a_hung_prometheus_costs_one_deadline_and_one_request(black_hole: BlackHole) -> None:
    started = time.monotonic()
    with pytest.raises(MetricsUnavailable, match="model:requests:rate5m"):
        PrometheusMetrics(black_hole.url, timeout_s=0.5).snapshot(AT, 600, 60)
    took = time.monotonic() - started
    # prometheus-api-client's default Retry(total=3, backoff_factor=1): 4 x 0.5 s + 6 s of back-off
    assert took < 3.0  # a loaded machine's slack; the old default took 8 s
    assert len(black_hole.accepted) == 1


def test_the_deadline_is_for_the_whole_snapshot_not_each_query() -> None:
    slow = FakePrometheus({DEMAND: [sample("llama", "2")]})

    class Late(_Answer):
        def do_GET(self) -> None:
            time.sleep(0.5)
            super().do_GET()

    slow.RequestHandlerClass = Late
    started = time.monotonic()
    with pytest.raises(MetricsUnavailable, match=r"deadline passed|timed out"):
        PrometheusMetrics(slow.url, timeout_s=1.0).snapshot(AT, 600, 60)
    assert time.monotonic() - started < 2.5  # 10 queries of 0.5 s each would take 5 s
    slow.shutdown()


def test_every_instant_query_of_a_snapshot_is_evaluated_at_one_time() -> None:
    prom = FakePrometheus({DEMAND: [sample("llama", "2")], f"timestamp({DEMAND})": [sample("llama", str(AT - 5))]})
    snapshot = PrometheusMetrics(prom.url).snapshot(AT, 600, 60)
    assert snapshot.signals["llama"].demand_rps == 2.0
    assert len(prom.times) == 10 and set(prom.times) == {repr(AT)}  # 9 signals and the GPU indexes
    prom.shutdown()


def test_a_bad_sample_is_dropped_and_listed_and_the_other_models_keep_theirs() -> None:
    answers = {
        DEMAND: [sample("llama", "+Inf"), sample("mistral", "1.5"), sample("qwen", "NaN")],
        KV_CACHE: [sample("mistral", "lots")],
    }
    prom = FakePrometheus(answers)
    snapshot = PrometheusMetrics(prom.url).snapshot(AT, 600, 60)
    assert set(snapshot.signals) == {"mistral"}
    assert snapshot.signals["mistral"].demand_rps == 1.5 and snapshot.signals["mistral"].kv_cache_usage is None
    assert set(snapshot.bad) == {
        BadSample(DEMAND, 'model_name="llama"', "infinite", "+Inf"),
        BadSample(DEMAND, 'model_name="qwen"', "nan", "NaN"),
        BadSample(KV_CACHE, 'model_name="mistral"', "not_a_number", "lots"),
    }
    prom.shutdown()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An https Prometheus with a self-signed certificate for 127.0.0.1, and that certificate."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    prom = FakePrometheus({DEMAND: [sample("llama", "2")]})
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    prom.socket = context.wrap_socket(prom.socket, server_side=True)
    yield f"https://127.0.0.1:{prom.server_address[1]}", cert
    prom.shutdown()


def test_tls_is_verified_by_default(tls: tuple[str, Path]) -> None:
    url, _ = tls
    with pytest.raises(MetricsUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        PrometheusMetrics(url, timeout_s=10).snapshot(AT, 600, 60)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verifies_against_a_ca_file_or_is_skipped_by_choice(tls: tuple[str, Path]) -> None:
    url, cert = tls
    assert set(PrometheusMetrics(url, timeout_s=10, ca_file=cert).snapshot(AT, 600, 60).signals) == {"llama"}
    assert set(PrometheusMetrics(url, timeout_s=10, verify=False).snapshot(AT, 600, 60).signals) == {"llama"}
