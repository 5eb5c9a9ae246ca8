"""Serve every node of a simulated fleet from one process: `/nodes/<name>/metrics`.

One exporter process per node is what a cluster runs; for a benchmark or the autoscaler simulator
with thousands of simulated nodes that would be thousands of processes. This server renders each
node's exposition once, with the same `exposition.render` the exporter uses, from the sim backend
(rule-evaluation cost does not depend on the values moving); Prometheus scrapes each node as its own
target (see `scrape_configs()`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from common.http_server import HttpServer
from exporter.attribution import PodRef
from exporter.backends.sim import SimBackend
from exporter.exposition import CONTENT_TYPE, render
from exporter.fields import NAMES
from exporter.fleet import DEFAULT_FLEET, Fleet, GpuGroup, SimNode
from exporter.snapshot import GpuSample, Snapshot

PodsFor = Callable[[str, int], Sequence[PodRef]]
"""(node name, GPU index) -> the pods that hold it."""


class FleetServer(HttpServer):
    def __init__(
        self,
        address: tuple[str, int],
        fleet: Fleet,
        pods: PodsFor | None = None,
        exposition: Callable[[Snapshot], bytes] = render,
    ) -> None:
        """`exposition` renders a node's snapshot: EGS's exporter's (default) or a stand-in's
        (`localplay.dcgm_standin.render_dcgm`, what dcgm-exporter writes for the same readings)."""
        super().__init__(address, _Handler)
        self._exposition = exposition
        self._backends = {node.name: SimBackend(node) for node in fleet.nodes}
        self._nodes = {name: backend.open() for name, backend in self._backends.items()}
        self._pods = pods or (lambda node, gpu: ())
        self.bodies: dict[str, bytes] = {}
        self._render_all()

    def _render_all(self) -> None:
        """Read and render every node once (a collection cycle for the whole fleet)."""
        for name, backend in self._backends.items():
            node = self._nodes[name]
            samples = tuple(
                GpuSample(gpu, True, backend.read(gpu, NAMES).values, tuple(self._pods(name, gpu.index)))
                for gpu in node.gpus
            )
            snap = Snapshot(
                hostname=name,
                backend=backend.name,
                simulated=True,
                driver_up=True,
                attribution_up=True,
                gpus=samples,
                links=node.links,
                collections=1,
            )
            self.bodies[name] = self._exposition(snap)

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="fleet-http", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.shutdown()
        self.server_close()

    def scrape_configs(self, job: str, interval: str) -> list[dict[str, Any]]:
        """A Prometheus scrape config with one target per node, each with its own `instance`."""
        host, port = self.server_address[:2]
        address = f"{host!s}:{port}"
        targets = [
            {"targets": [address], "labels": {"instance": name, "__metrics_path__": f"/nodes/{name}/metrics"}}
            for name in self.bodies
        ]
        return [{"job_name": job, "scrape_interval": interval, "static_configs": targets}]


class _Handler(BaseHTTPRequestHandler):
    server: FleetServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        body = self.server.bodies.get(parts[1]) if len(parts) == 3 and parts[0] == "nodes" else None
        status = HTTPStatus.OK if body is not None else HTTPStatus.NOT_FOUND
        payload = body if body is not None else b"no such node\n"
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


def uniform_fleet(gpus: int, per_node: int = 8) -> Fleet:
    """`gpus` H100s, `per_node` to a node, for scale runs."""
    group = DEFAULT_FLEET.nodes[0].gpus[0]
    nodes = tuple(
        SimNode(name=f"sim-node-{i:05d}", gpus=(GpuGroup(**{**group.__dict__, "count": per_node}),))
        for i in range(max(1, gpus // per_node))
    )
    return Fleet(nodes=nodes)
