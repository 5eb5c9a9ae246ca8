"""The controller's runtime against its baselines in the same run: a hung Prometheus, and a new endpoint.

1. **A hung Prometheus** (a local socket that accepts and never answers): the seconds one loop's
   snapshot costs with the adapter (`--prometheus-timeout`, no retries) against one query through
   prometheus-api-client as it was built before (`disable_ssl=True`, its default
   `Retry(total=3, backoff_factor=1)`, the same per-request timeout), and the connections each made.
2. **A new endpoint's workload**: seconds from the InferenceEndpoint's creation (as `egs api` creates it
   before answering 201) to its Deployment, with `Controller.run` (watches) against the old loop
   (reconcile every `--interval`, nothing else), on the Kubernetes stand-in, `--endpoints` each.
3. **The demand history per loop**: a real Prometheus holding a week of `model:requests:rate5m` for
   `--models` models (backfilled with promtool, a sample every 5 minutes); `--loops` loops of the real
   controller 30 s apart (its history read whole once, then from a little before the last read) against
   the adapter asked for the whole week every loop, as the loop read before: seconds and samples per loop;
   and a standby replica beside it, whose first loop once it leads (the leader handed the Lease back) is
   timed against the leader's own first loop, which read the whole week cold, as every new leader did.

Prints a table on stderr and one JSON object on the last line of stdout.

    python benchmarks/controller_runtime.py [--timeout 1] [--interval 10] [--endpoints 3] [--models 100] [--loops 10]
"""

from __future__ import annotations

import argparse
import json
import math
import socket
import statistics
import sys
import tempfile
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_client import CollectorRegistry

from autoscaler.adapters.kubernetes import Cluster
from autoscaler.adapters.prometheus import DEMAND, MetricsUnavailable, PrometheusMetrics
from autoscaler.controller import HISTORY_STEP_S, Controller, owned_kinds
from autoscaler.decide import ClassSettings, Settings
from autoscaler.endpoint import manifest
from autoscaler.signals import Snapshot
from localplay.kube_standin import KubeCluster
from localplay.localstack import Prometheus
from scheduler.catalog import Catalog
from scheduler.registry import Registry
from scheduler.synthetic import gpu_node

REPO = Path(__file__).resolve().parent.parent
DEPLOYMENTS = "apps/v1/deployments"


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class BlackHole:
    """A TCP server that accepts every connection and never answers: a hung Prometheus."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with suppress(OSError):
            while True:
                self.accepted.append(self.sock.accept()[0])

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def hung_prometheus(timeout_s: float) -> dict[str, Any]:
    hole = BlackHole()
    try:
        started = time.monotonic()
        with suppress(MetricsUnavailable):
            PrometheusMetrics(hole.url, timeout_s=timeout_s).snapshot(time.time(), 600, 60)
        egs_s, egs_connections = time.monotonic() - started, len(hole.accepted)
        before = PrometheusConnect(url=hole.url, disable_ssl=True, timeout=timeout_s)
        started = time.monotonic()
        with suppress(requests.RequestException):  # what the old loop got, after the retries
            before.custom_query(DEMAND)
        default_s, default_connections = time.monotonic() - started, len(hole.accepted) - egs_connections
    finally:
        hole.close()
    log(f"hung Prometheus, {timeout_s:g} s timeout: egs {egs_s:.2f} s ({egs_connections} connection), "
        f"prometheus-api-client default {default_s:.2f} s ({default_connections} connections)")  # fmt: skip
    return {
        "timeout_s": timeout_s,
        "egs_s": round(egs_s, 3),
        "egs_connections": egs_connections,
        "default_s": round(default_s, 3),
        "default_connections": default_connections,
        "ratio_default_vs_egs": round(default_s / egs_s, 1),
    }


class Steady:
    """Metrics that say nothing changed (the endpoint keeps its minimum)."""

    def snapshot(self, at: float, history_s: float, step_s: float, live: bool = True) -> Snapshot:
        return Snapshot({}, {}, {})


def create_to_workload(interval_s: float, endpoints: int, watch: bool) -> list[float]:
    catalog = Catalog.load()
    registry = Registry.load(REPO / "examples" / "models.yaml", catalog)
    settings = Settings(classes={"H100-80GB": ClassSettings(gpus_per_node=8)})
    kube = KubeCluster().start()
    kube.put("v1/nodes", gpu_node("gpu-0", catalog.get("H100-80GB"), 8))
    cluster = Cluster(kube.api_client(), owned_kinds=owned_kinds(settings))
    ctl = Controller(cluster, Steady(), settings, registry, catalog, "bench", exposition=CollectorRegistry())
    stop = threading.Event()
    if watch:
        loop = threading.Thread(target=ctl.run, args=(interval_s,), daemon=True)
    else:  # the loop before watches: reconcile, sleep the interval, again

        def poll() -> None:
            ctl.elector.step()
            while not stop.is_set():
                ctl.elector.step()
                ctl.reconcile()
                stop.wait(interval_s)

        loop = threading.Thread(target=poll, daemon=True)
    loop.start()
    waits: list[float] = []
    try:
        time.sleep(1.0)
        for i in range(endpoints):
            name = f"chat-{i}"
            spec = {"model": "llama-3.1-8b-instruct", "qualityFloor": 0.99, "replicas": {"min": 1, "max": 1}}
            kube.put("egs.dev/v1alpha1/inferenceendpoints", manifest("team-a", name, spec))
            created = time.monotonic()
            while not [d for d in kube.all(DEPLOYMENTS) if d["metadata"]["name"].startswith(name)]:
                time.sleep(0.02)
            waits.append(time.monotonic() - created)
            time.sleep(interval_s / 3)  # somewhere else in the interval for the next one
    finally:
        stop.set()
        ctl.shutdown()
        loop.join(interval_s + 10)
        kube.stop()
    return waits


class Timed:
    """The Prometheus adapter, timing each snapshot and counting the history samples it answered."""

    def __init__(self, inner: PrometheusMetrics) -> None:
        self.inner = inner
        self.reads: list[tuple[float, int]] = []

    def snapshot(self, at: float, history_s: float, step_s: float, live: bool = True) -> Snapshot:
        started = time.monotonic()
        read = self.inner.snapshot(at, history_s, step_s, live)
        samples = sum(1 for h in read.history.values() for v in h.values if not math.isnan(v))
        self.reads.append((time.monotonic() - started, samples))
        return read


def history_reads(models: int, loops: int) -> dict[str, Any]:
    settings = Settings(classes={"H100-80GB": ClassSettings(gpus_per_node=8)})
    end = float(int(time.time()) // 300 * 300 - 300)
    with tempfile.TemporaryDirectory() as work:
        lines = [f"# TYPE {DEMAND} gauge"]
        for t in range(int(end - settings.history_s), int(end) + 1, 300):
            rates = ((m, 1 + (t // 300 * 7 + m) % 11) for m in range(models))
            lines += [f'{DEMAND}{{model_name="m{m}"}} {rate} {t}' for m, rate in rates]
        prom = Prometheus(Path(work), [], interval="15s").backfill(lines).start()
        kube = KubeCluster().start()
        try:
            catalog = Catalog.load()
            registry = Registry.load(REPO / "examples" / "models.yaml", catalog)
            clock = [end - 30 * loops]

            def replica(name: str) -> tuple[Controller, Timed]:
                timed = Timed(PrometheusMetrics(prom.url, timeout_s=30))
                cluster = Cluster(kube.api_client(), owned_kinds=owned_kinds(settings))
                ctl = Controller(cluster, timed, settings, registry, catalog, name, clock=lambda: clock[0],
                                 exposition=CollectorRegistry())  # fmt: skip
                ctl.elector.step()
                return ctl, timed

            (ctl, timed), (standby, warm) = replica("bench"), replica("standby")
            whole = Timed(PrometheusMetrics(prom.url, timeout_s=30))
            for _ in range(loops):
                clock[0] += 30
                ctl.reconcile()
                standby.reconcile()
                whole.snapshot(clock[0], settings.history_s, HISTORY_STEP_S)
            ctl.elector.release()
            if not standby.elector.step():
                raise RuntimeError("the standby did not take the Lease handed back")
            clock[0] += 30
            standby.reconcile()
        finally:
            kube.stop()
            prom.stop()
    later, before = timed.reads[1:], whole.reads[1:]  # the first loop reads the whole week either way
    egs_s, egs_samples = statistics.mean(r[0] for r in later), statistics.mean(r[1] for r in later)
    week_s, week_samples = statistics.mean(r[0] for r in before), statistics.mean(r[1] for r in before)
    first_s, (led_s, led_samples) = timed.reads[0][0], warm.reads[-1]
    log(f"history per loop, {models} models: egs {egs_s * 1000:.1f} ms, {egs_samples:.0f} samples; whole week "
        f"{week_s * 1000:.1f} ms, {week_samples:.0f} samples (first loop {first_s * 1000:.1f} ms; a standby's "
        f"first loop as leader {led_s * 1000:.1f} ms, {led_samples} samples)")  # fmt: skip
    return {
        "models": models,
        "loops": loops,
        "first_loop_s": round(first_s, 4),
        "new_leader_first_loop_s": round(led_s, 4),
        "new_leader_first_loop_samples": led_samples,
        "ratio_cold_vs_warm_first_loop_s": round(first_s / led_s, 1),
        "egs_s": round(egs_s, 4),
        "egs_samples": round(egs_samples),
        "week_s": round(week_s, 4),
        "week_samples": round(week_samples),
        "ratio_week_vs_egs_s": round(week_s / egs_s, 1),
        "ratio_week_vs_egs_samples": round(week_samples / egs_samples, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--timeout", type=float, default=1.0, help="Prometheus timeout, seconds (default 1)")
    parser.add_argument("--interval", type=float, default=10.0, help="controller --interval (default 10)")
    parser.add_argument("--endpoints", type=int, default=3, help="endpoints created per variant (default 3)")
    parser.add_argument("--models", type=int, default=100, help="models with a week of demand history (default 100)")
    parser.add_argument("--loops", type=int, default=10, help="controller loops reading the history (default 10)")
    args = parser.parse_args()
    history = history_reads(args.models, args.loops)
    hung = hung_prometheus(args.timeout)
    watched = create_to_workload(args.interval, args.endpoints, watch=True)
    polled = create_to_workload(args.interval, args.endpoints, watch=False)
    shown = [", ".join(f"{w:.2f}" for w in waits) for waits in (watched, polled)]
    log(f"endpoint created -> Deployment, --interval {args.interval:g}: watches {shown[0]} s; loop alone {shown[1]} s")
    result = {
        "hung_prometheus": hung,
        "create_to_workload": {
            "interval_s": args.interval,
            "watch_max_s": round(max(watched), 3),
            "watch_mean_s": round(statistics.mean(watched), 3),
            "poll_mean_s": round(statistics.mean(polled), 3),
            "ratio_poll_vs_watch": round(statistics.mean(polled) / statistics.mean(watched), 1),
        },
        "history_reads": history,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
