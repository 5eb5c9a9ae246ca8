"""A client that hangs up is routine for every `/metrics` and probe server EGS runs: no traceback on stderr,
and the next client is served (`common.http_server.HttpServer`).

Prometheus gives up on a scrape past its timeout and the kubelet on a probe past its deadline, on a loaded
node; socketserver printed a traceback for each (`Exception occurred during processing of request from
...`): the controller's /metrics and probes did, in the controller's log, and the vLLM stand-in did in the
demo's stderr, which failed tests/test_demo.py in `make test` on a fresh clone at load ~140. Here the
client resets the connection mid-request, as one past its timeout does.
"""

from __future__ import annotations

import http.client
import logging
import socket
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from autoscaler.probes import ProbeServer
from exporter.fleet import DEFAULT_FLEET
from localplay.fleet_server import FleetServer
from localplay.vllm_standin import Server, VllmStandIn


@contextmanager
def controller() -> Iterator[tuple[str, int]]:
    server = ProbeServer(("127.0.0.1", 0), CollectorRegistry(), lambda: (True, "fine"), lambda: (True, "fine"))
    server.serve_in_thread()
    try:
        yield "127.0.0.1", server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def vllm() -> Iterator[tuple[str, int]]:
    standin = VllmStandIn([Server("m", "ns", "pod-0", rps=1.0, waiting=0, running=1, kv_cache=0.5)])
    try:
        host, port = standin.address.split(":")
        yield host, int(port)
    finally:
        standin.close()


@contextmanager
def fleet() -> Iterator[tuple[str, int]]:
    server = FleetServer(("127.0.0.1", 0), DEFAULT_FLEET)
    server.serve_in_thread()
    try:
        yield "127.0.0.1", server.server_address[1]
    finally:
        server.close()


SERVERS: dict[str, tuple[Callable[[], Any], str]] = {
    "controller /healthz": (controller, "/healthz"),
    "vLLM stand-in /metrics": (vllm, "/metrics"),
    "fleet /nodes/<node>/metrics": (fleet, f"/nodes/{DEFAULT_FLEET.nodes[0].name}/metrics"),
}


@pytest.mark.parametrize("name", SERVERS)
def test_a_client_that_hangs_up_leaves_no_traceback_and_the_next_is_served(
    name: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    serve, path = SERVERS[name]
    with serve() as (host, port):
        client = socket.create_connection((host, port), timeout=10)
        client.sendall(b"GET /")  # the request line never ends: the handler is reading it
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not FIN
        client.close()
        time.sleep(0.5)
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("GET", path)
        assert conn.getresponse().status == 200
        conn.close()
    assert "Traceback" not in capfd.readouterr().err
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
