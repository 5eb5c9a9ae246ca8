"""The exporter's HTTP edge against hostile clients: bursts, idle and vanishing clients, HEAD, IPv6,
and /health when the collector stops completing cycles.

The server is the real `ExporterServer` on 127.0.0.1 (or ::1) in this process; what it serves is a
fixed `Rendered`, and /health reads an injected clock, so no test waits for a collection interval.
"""

from __future__ import annotations

import http.client
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from exporter.backend import GpuBackend
from exporter.collector import Collector, CollectorSettings, Rendered
from exporter.gpu import GpuIdentity, Node, Reading
from exporter.server import ExporterServer, health
from tests.clock import Clock

BODY = b"DCGM_FI_DEV_GPU_UTIL 1.0\n"
FRESH = Rendered(BODY, 1000.0, True)


ServerFactory = Callable[..., ExporterServer]


@pytest.fixture
def serve() -> Iterator[ServerFactory]:
    servers: list[tuple[ExporterServer, bool]] = []

    def start(
        rendered: Rendered | Callable[[], Rendered] = FRESH,
        host: str = "127.0.0.1",
        listening_only: bool = False,
        **options: Any,
    ) -> ExporterServer:
        snapshot = rendered if callable(rendered) else lambda: rendered
        server = ExporterServer((host, 0), snapshot, max_age_s=32.0, **options)
        servers.append((server, not listening_only))
        if not listening_only:
            server.serve_in_thread()
        return server

    yield start
    for server, serving in servers:
        if serving:
            server.shutdown()
        server.server_close()


def _port(server: ExporterServer) -> int:
    return int(server.server_address[1])


def _request(
    server: ExporterServer, method: str, path: str, host: str = "127.0.0.1"
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(host, _port(server), timeout=10)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_head_answers_what_get_would_without_the_body(serve: ServerFactory) -> None:
    server = serve(clock=Clock(1001.0))
    for path in ("/metrics", "/health", "/", "/nowhere"):
        get_status, get_headers, get_body = _request(server, "GET", path)
        head_status, head_headers, head_body = _request(server, "HEAD", path)
        assert (head_status, head_body) == (get_status, b"")
        assert head_headers["Content-Length"] == get_headers["Content-Length"] == str(len(get_body))
        assert head_headers["Content-Type"] == get_headers["Content-Type"]


def test_two_hundred_clients_connecting_at_once_are_all_accepted(serve: ServerFactory) -> None:
    """Nothing accepts yet, so every connection waits in the listen backlog: with socketserver's
    default of 5, the seventh SYN is dropped and its connect() times out."""
    server = serve(listening_only=True)
    clients = []
    try:
        for _ in range(200):
            clients.append(socket.create_connection(("127.0.0.1", _port(server)), timeout=0.5))
    finally:
        for c in clients:
            c.close()
    assert len(clients) == 200


def test_a_connection_that_sends_nothing_is_closed_after_the_connection_timeout(serve: ServerFactory) -> None:
    server = serve(connection_timeout_s=0.2)
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=10) as idle:
        began = time.monotonic()
        assert idle.recv(1) == b"", "the server closes the connection"
        assert time.monotonic() - began < 9


def test_a_kept_alive_connection_is_closed_once_idle(serve: ServerFactory) -> None:
    server = serve(connection_timeout_s=0.2)
    conn = http.client.HTTPConnection("127.0.0.1", _port(server), timeout=10)
    conn.request("GET", "/metrics")
    assert conn.getresponse().read().startswith(BODY)
    assert conn.sock is not None
    assert conn.sock.recv(1) == b"", "closed after the timeout, not held open for ever"
    conn.close()


def test_a_client_that_hangs_up_mid_answer_is_logged_without_a_traceback(
    serve: ServerFactory, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    big = Rendered(b"x" * (32 * 1024 * 1024), 1000.0, True)  # far more than the socket buffers hold
    server = serve(big)
    with caplog.at_level(logging.DEBUG, logger="exporter.server"):
        client = socket.create_connection(("127.0.0.1", _port(server)), timeout=10)
        client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(1024).startswith(b"HTTP/1.1 200")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not FIN
        client.close()
        deadline = time.monotonic() + 10
        while not any("went away" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.02)
    assert any("went away" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize(
    ("age_s", "healthy", "problem"),
    [
        (0.0, True, ""),
        (32.0, True, ""),
        (32.5, True, "snapshot is 32s old: the collector has not completed a cycle since"),
        (1e6, True, "snapshot is 1000000s old: the collector has not completed a cycle since"),
        (0.0, False, "no GPU driver"),
    ],
)
def test_health_fails_once_no_cycle_has_completed_for_the_stale_age(age_s: float, healthy: bool, problem: str) -> None:
    assert health(Rendered(BODY, 100.0, healthy), 100.0 + age_s, max_age_s=32.0) == problem


class _NeverOpens:
    """A FAKE backend whose driver hangs in open(): the collector never completes a cycle."""

    name = "fake"
    simulated = True

    def __init__(self) -> None:
        self.release = threading.Event()

    def open(self) -> Node:
        self.release.wait(30)
        return Node(gpus=())

    def read(self, gpu: GpuIdentity, fields: object) -> Reading:
        raise AssertionError("never reached")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("interval_s", [0.1, 10.0, 3600.0])
def test_health_fails_when_the_collector_is_stuck_whatever_the_interval(
    serve: ServerFactory, interval_s: float
) -> None:
    clock = Clock(1000.0)
    backend = _NeverOpens()
    typed: GpuBackend = backend
    settings = CollectorSettings(interval_s=interval_s)
    collector = Collector(typed, "n", settings, clock=clock)
    collector.last = Rendered(BODY, clock(), True)  # as if one cycle had completed just now
    thread = threading.Thread(target=collector.run, daemon=True)
    thread.start()
    server = serve(lambda: collector.last, clock=clock)
    server.max_age_s = settings.stale_after_s
    try:
        assert _request(server, "GET", "/health")[0] == 200
        clock.t += settings.stale_after_s + 1
        status, _, body = _request(server, "GET", "/health")
        assert status == 503
        assert b"has not completed a cycle" in body
    finally:
        collector.stop()
        backend.release.set()
        thread.join(10)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this host")
def test_serves_on_the_ipv6_loopback(serve: ServerFactory) -> None:
    server = serve(host="::1", clock=Clock(1001.0))
    assert server.url_host == f"[::1]:{_port(server)}"
    status, _, body = _request(server, "GET", "/metrics", host="::1")
    assert status == 200 and body.startswith(BODY)
