"""The vLLM stand-in takes a scraper that hangs up as routine: no traceback on stderr.

`make test` on a fresh clone at load ~140 failed tests/test_demo.py on a socketserver traceback in the
demo's stderr (`Exception occurred during processing of request from ...`): the stand-in's server, the
one the demo runs in its own process without a `handle_error` of its own, met a Prometheus that had given
up on a scrape. Here the scraper resets the connection mid-request, as one past its timeout does.
"""

from __future__ import annotations

import http.client
import socket
import struct
import time

import pytest

from localplay.vllm_standin import Server, VllmStandIn


def test_a_scraper_that_hangs_up_leaves_no_traceback_and_the_next_scrape_is_served(
    capfd: pytest.CaptureFixture[str],
) -> None:
    standin = VllmStandIn([Server("m", "ns", "pod-0", rps=1.0, waiting=0, running=1, kv_cache=0.5)])
    try:
        host, port = standin.address.split(":")
        client = socket.create_connection((host, int(port)), timeout=10)
        client.sendall(b"GET /metr")  # the request line never ends: the handler is reading it
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not FIN
        client.close()
        time.sleep(0.5)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", "/metrics")
        assert b"vllm:num_requests_running" in conn.getresponse().read()
        conn.close()
    finally:
        standin.close()
    assert "Traceback" not in capfd.readouterr().err
