"""The fleet server: one process serving many simulated nodes, each as its own scrape target."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from exporter.attribution import PodRef
from localplay.fleet_server import FleetServer, uniform_fleet
from localplay.localstack import free_port


def test_each_node_is_served_on_its_own_path_with_its_own_gpus_and_pods() -> None:
    server = FleetServer(
        ("127.0.0.1", free_port()),
        uniform_fleet(16),
        pods=lambda node, gpu: (PodRef("ns", f"p{gpu}", "c"),) if gpu == 0 else (),
    )
    server.serve_in_thread()
    try:
        configs = server.scrape_configs("egs-exporter", "15s")
        targets = configs[0]["static_configs"]
        assert [t["labels"]["instance"] for t in targets] == ["sim-node-00000", "sim-node-00001"]
        host, port = server.server_address[:2]
        with urllib.request.urlopen(f"http://{host!s}:{port}{targets[1]['labels']['__metrics_path__']}") as r:
            body = r.read().decode()
        fb = [line for line in body.splitlines() if line.startswith("DCGM_FI_DEV_FB_USED{")]
        assert len(fb) == 8
        assert all('Hostname="sim-node-00001"' in line for line in fb)
        assert sum('pod="p0"' in line for line in fb) == 1
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://{host!s}:{port}/nodes/nope/metrics")
        assert missing.value.code == 404
    finally:
        server.close()
