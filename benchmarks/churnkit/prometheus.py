"""Churn's Prometheus: a stand-in of its query API (benchmarks/churn.py).

It answers each model's demand and the GPU exporter's GPU indexes of the play's nodes, and plays broken
samples and an outage when the scenario asks (benchmarks/churnkit/events.py).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from autoscaler.adapters.prometheus import DEMAND, GPU_INDEXES, KV_CACHE, RUNNING, WAITING
from benchmarks.churnkit.scenario import gpu_uuid
from localplay.localstack import free_port


class PrometheusStandIn:
    """`/api/v1/query` and `/api/v1/query_range` answering each model's demand, and the GPU index of each
    UUID on the Ready NVIDIA nodes of `nodes` as the GPU exporter's series label them (`GPU_INDEXES`); `bad`
    replaces a (query, model) sample's value with what a broken exporter or proxy would give; while `down`,
    every connection is closed unanswered, so each read fails at once as it does against a Prometheus whose
    Service has no ready endpoint (restarting, its volume full, OOM-killed)."""

    def __init__(self, demand: Mapping[str, float], nodes: Callable[[], list[dict[str, Any]]]) -> None:
        self.demand = dict(demand)
        self.nodes = nodes
        self.bad: dict[tuple[str, str], str] = {}
        self.down = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if outer.down:
                    self.close_connection = True
                    return
                url = urlparse(self.path)
                args = {k: v[-1] for k, v in parse_qs(url.query).items()}
                result = outer.answer(args.get("query", ""), float(args.get("time", time.time())))
                kind = "matrix" if url.path.endswith("query_range") else "vector"
                body = json.dumps({"status": "success", "data": {"resultType": kind, "result": result}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, name="prometheus", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, query: str, at: float) -> list[dict[str, Any]]:
        if query == GPU_INDEXES:
            return [{"metric": labels, "value": [at, "1"]} for labels in exported_gpus(self.nodes())]
        values = {DEMAND: None, WAITING: "0", RUNNING: "1", KV_CACHE: "0.3"}
        stamped = query.removeprefix("timestamp(").removesuffix(")")
        if stamped not in values:
            return []  # per pod, GPU saturation, history: none (the demand is split evenly)
        out = []
        for model, rps in self.demand.items():
            value = f"{at:.3f}" if stamped != query else values[query] or f"{rps:g}"
            value = self.bad.get((query, model), value)
            out.append({"metric": {"model_name": model}, "value": [at, value]})
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def exported_gpus(nodes: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """`Hostname`, `UUID` and `gpu` of each GPU of the Ready NVIDIA `nodes`, as the exporter each runs (a
    DaemonSet, `$NODE_NAME`) labels its series: the UUID NVML gives the GPU in the play (`gpu_uuid`)."""
    out = []
    for node in nodes:
        name, labels = node["metadata"]["name"], node["metadata"].get("labels") or {}
        conditions = (node.get("status") or {}).get("conditions") or ()
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        count = str(labels.get("nvidia.com/gpu.count", ""))
        if ready and count.isdigit():
            out += [{"Hostname": name, "UUID": gpu_uuid(name, i), "gpu": str(i)} for i in range(int(count))]
    return out
