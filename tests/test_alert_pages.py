"""A VRAM-saturated GPU pages through a real Alertmanager, and the page resolves when VRAM falls.

Real Prometheus, real Alertmanager, the real rules (rendered with a 2 s `for` instead of 5 m), the
exporter's collector and HTTP server scraped over loopback, and a webhook receiver standing in for
the pager. The sim backend drives GPU 3 to 96% VRAM at 30% compute, then back down.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from alerts.config import RulesConfig
from alerts.rules import render
from exporter.attribution import DeviceAssignment, PodRef
from exporter.backends.sim import SimBackend
from exporter.collector import Collector, CollectorSettings
from exporter.fleet import DEFAULT_FLEET
from exporter.server import ExporterServer
from localplay.localstack import Alertmanager, Prometheus, free_port


class Pager:
    """Webhook receiver: keeps every alert Alertmanager posts."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        pager = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with pager._changed:
                    pager.alerts.extend(body["alerts"])
                    pager._changed.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def wait_for(self, status: str, alertname: str, timeout_s: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                for alert in self.alerts:
                    if alert["status"] == status and alert["labels"]["alertname"] == alertname:
                        return alert
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {status} {alertname} within {timeout_s}s; got {self.alerts}")
                self._changed.wait(left)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[SimBackend, Pager, str]]:
    node = DEFAULT_FLEET.nodes[0]
    backend = SimBackend(node)
    held = backend.open().gpus[3]
    pods = [DeviceAssignment("nvidia.com/gpu", held.uuid, PodRef("serving", "llama-70b-0", "vllm"))]
    collector = Collector(backend, node.name, CollectorSettings(interval_s=0.5), pods=lambda: pods)
    threading.Thread(target=collector.run, daemon=True).start()
    exporter = ExporterServer(("127.0.0.1", free_port()), lambda: collector.last, max_age_s=5)
    exporter.serve_in_thread()
    pager = Pager()
    route = {"receiver": "pager", "group_by": ["alertname", "Hostname", "gpu"]}
    route |= {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}
    am = Alertmanager(
        tmp_path / "alertmanager",
        {
            "route": {**route, "receiver": "null", "routes": [{**route, "matchers": ['severity="page"']}]},
            "receivers": [
                {"name": "null"},
                {"name": "pager", "webhook_configs": [{"url": pager.url, "send_resolved": True}]},
            ],
        },
    ).start()
    rules = tmp_path / "egs.rules.yaml"
    rules.write_text(render(RulesConfig(vram_saturated_for="2s", vram_saturated_keep_firing_for="2s")))
    prom = Prometheus(
        tmp_path / "prometheus",
        [f"127.0.0.1:{exporter.server_address[1]}"],
        interval="1s",
        rule_files=[rules],
        alertmanagers=[am.address],
        extra_args=["--rules.alert.resend-delay=1s"],
    )
    try:
        prom.start()
        yield backend, pager, prom.url
    finally:
        prom.stop()
        am.stop()
        collector.stop()
        exporter.shutdown()
        pager.server.shutdown()


def test_vram_saturation_pages_with_the_gpu_and_pod_then_resolves(stack: tuple[SimBackend, Pager, str]) -> None:
    backend, pager, _ = stack
    backend.set_load(3, util=0.30, vram=0.975)
    page = pager.wait_for("firing", "GPUVRAMSaturated")
    labels = page["labels"]
    assert labels["severity"] == "page"
    assert (labels["Hostname"], labels["gpu"], labels["modelName"]) == ("sim-h100-0", "3", "NVIDIA H100 80GB HBM3")
    assert (labels["namespace"], labels["pod"]) == ("serving", "llama-70b-0")
    assert page["annotations"]["runbook_url"].endswith("#alert-name-gpuvramsaturated")
    assert "has 96.92% of its VRAM in use" in page["annotations"]["description"]
    assert {a["labels"]["gpu"] for a in pager.alerts if a["labels"]["alertname"] == "GPUVRAMSaturated"} == {"3"}

    backend.set_load(3, util=0.30, vram=0.5)
    resolved = pager.wait_for("resolved", "GPUVRAMSaturated")
    assert resolved["labels"]["gpu"] == "3"
