"""Scrape cost of the sim exporter against Debian's prometheus-node-exporter, in one run.

Starts `egs exporter --backend sim` for a node of 8 GPUs and one of 64, and node_exporter, all on
127.0.0.1; scrapes each over one kept-alive connection, as Prometheus does; times one whole
collection cycle (reads and rendering) in-process; reads the exporters' RSS from /proc (the kubelet
client is loaded: the default socket is configured, and missing here); times the import of the
exporter with its kubelet client in a fresh interpreter, beside the grpcio client it replaced, in
the same run. Prints progress on stderr and one JSON object on the last line of stdout.

    python benchmarks/exporter_scrape.py [--scrapes 400]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from exporter.backends.sim import SimBackend
from exporter.collector import Collector, CollectorSettings
from exporter.fleet import DEFAULT_FLEET, Fleet, GpuGroup, SimNode
from localplay.localstack import LocalStack, free_port

TARGETS = {"p99_ms": 10.0, "ratio_vs_node_exporter": 1.0, "cpu_percent_64": 1.0, "rss_mb_64": 40.0}
IMPORTS = {
    "import_ms": "import egs.cli, exporter.podresources",
    # the baseline: the same, with the grpcio client the exporter used before (grpcio is a dev dependency)
    "import_ms_grpcio": "import egs.cli, grpc, exporter.podresources_pb2, exporter.podresources_pb2_grpc",
}


def fleet_of(gpus: int) -> Fleet:
    group = DEFAULT_FLEET.nodes[0].gpus[0]
    return Fleet(nodes=(SimNode(name=f"sim-{gpus}", gpus=(GpuGroup(**{**group.__dict__, "count": gpus}),)),))


def write_fleet(fleet: Fleet, path: Path) -> Path:
    g = fleet.nodes[0].gpus[0]
    path.write_text(
        json.dumps(
            {
                "nodes": [
                    {
                        "name": fleet.nodes[0].name,
                        "gpus": [
                            {
                                "model": g.model,
                                "vendor": g.vendor,
                                "count": g.count,
                                "memory_mib": g.memory_mib,
                                "compute_capability": g.compute_capability,
                                "arch": g.arch,
                                "interconnect": g.interconnect,
                                "driver_version": g.driver_version,
                            }
                        ],
                    }
                ]
            }
        )
    )
    return path


def scrape_times(port: int, n: int) -> tuple[list[float], int]:
    """Seconds per scrape over one kept-alive connection, and the series count of the last body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times, body = [], b""
    for i in range(n + 20):
        began = time.perf_counter()
        conn.request("GET", "/metrics", headers={"Accept": "text/plain;version=0.0.4"})
        response = conn.getresponse()
        body = response.read()
        if i >= 20:  # the first scrapes warm up both sides
            times.append(time.perf_counter() - began)
    conn.close()
    series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
    return times, series


def collect_ms(gpus: int, cycles: int = 30) -> tuple[float, float]:
    """Median wall and CPU milliseconds of one whole collection cycle (reads and rendering)."""
    collector = Collector(SimBackend(fleet_of(gpus).nodes[0]), f"sim-{gpus}")
    collector.collect()
    wall, cpu = [], []
    for _ in range(cycles):
        w, c = time.perf_counter(), time.process_time()
        collector.collect()
        wall.append((time.perf_counter() - w) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return statistics.median(wall), statistics.median(cpu)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def import_ms(code: str, runs: int = 7) -> float:
    """Median milliseconds that `code` adds to a fresh interpreter's start-up."""

    def median_run(source: str) -> float:
        times = []
        for _ in range(runs):
            began = time.perf_counter()
            subprocess.run([sys.executable, "-c", source], check=True)
            times.append(time.perf_counter() - began)
        return statistics.median(times)

    return (median_run(code) - median_run("pass")) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scrapes", type=int, default=400, help="timed scrapes per target (default %(default)s)")
    args = parser.parse_args()
    with LocalStack(prefix="egs-bench-") as stack:
        ports = {}
        for gpus in (8, 64):
            fleet_file = write_fleet(fleet_of(gpus), stack.workdir / f"fleet-{gpus}.json")
            ports[gpus] = int(stack.exporter(f"egs-{gpus}", "--fleet", str(fleet_file)).rsplit(":", 1)[1])
        node_port = free_port()
        stack.launch(
            "prometheus-node-exporter",
            "prometheus-node-exporter",
            [f"--web.listen-address=127.0.0.1:{node_port}"],
            f"http://127.0.0.1:{node_port}/metrics",
        )
        print(f"scraping egs (8 and 64 GPUs) and node_exporter {args.scrapes} times each", file=sys.stderr)
        egs8, series8 = scrape_times(ports[8], args.scrapes)
        egs64, series64 = scrape_times(ports[64], args.scrapes)
        node, node_series = scrape_times(node_port, args.scrapes)
        rss = {gpus: rss_mb(stack.process(f"egs-{gpus}").pid) for gpus in (8, 64)}
    print("timing collection cycles in-process", file=sys.stderr)
    wall8, _ = collect_ms(8)
    wall64, cpu64 = collect_ms(64)
    print("timing imports in fresh interpreters", file=sys.stderr)
    imports = {name: round(import_ms(code), 1) for name, code in IMPORTS.items()}
    egs_us = statistics.median(egs8) / series8 * 1e6
    node_us = statistics.median(node) / node_series * 1e6
    interval_ms = CollectorSettings.interval_s * 1000
    result = {
        "p50_ms": round(statistics.median(egs8) * 1000, 3),
        "p99_ms": round(statistics.quantiles(egs8, n=100)[98] * 1000, 3),
        "p99_ms_64": round(statistics.quantiles(egs64, n=100)[98] * 1000, 3),
        "series": series8,
        "series_64": series64,
        "node_exporter_series": node_series,
        "egs_us_per_series": round(egs_us, 3),
        "node_exporter_us_per_series": round(node_us, 3),
        "ratio_vs_node_exporter": round(egs_us / node_us, 3),
        "collect_ms_8": round(wall8, 3),
        "collect_ms_64": round(wall64, 3),
        "cpu_percent_64": round(cpu64 / interval_ms * 100, 3),
        "collect_interval_s": CollectorSettings.interval_s,
        "rss_mb_8": round(rss[8], 1),
        "rss_mb_64": round(rss[64], 1),
        **imports,
        "targets": TARGETS,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
