"""`egs exporter`: serve one node's GPU metrics (`exporter/`) on /metrics.

Composition only. The parser needs nothing but the backends' names and the collector's bounds, so
that `egs exporter --help` and a bad option answer at once; the collector, the driver bindings and
the kubelet client are imported by `run` (the exporter runs on every GPU node within an RSS budget,
40 MB at 64 GPUs, and `tests/test_exporter_imports.py` keeps the other commands' modules out of it).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from exporter.backends import BACKENDS
from exporter.settings import INTERVAL_BOUNDS_S, READ_TIMEOUT_BOUNDS_S, CollectorSettings, seconds_problem

log = logging.getLogger("egs")

DEFAULT_KUBELET_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"


def add_parser(sub: Any) -> None:
    """Register `egs exporter` on the `egs` command's subparsers."""
    exp = sub.add_parser(
        "exporter",
        description="Serve GPU metrics for one node on /metrics, with dcgm-exporter's names and labels "
        "for NVIDIA and AMD alike, and /health (503 when no driver or a stale snapshot).",
    )
    exp.add_argument(
        "--backend",
        choices=BACKENDS,
        default="auto",
        help="where readings come from: nvml (NVIDIA), amdsmi (AMD), sim (simulated node), "
        "auto (the first driver found; default)",
    )
    exp.add_argument(
        "--listen",
        default="127.0.0.1:9400",
        help="HOST:PORT or [IPV6]:PORT to serve on; :PORT for every IPv4 interface (default %(default)s)",
    )
    exp.add_argument("--fleet", type=Path, help="fleet file for the sim backend (default: one node of 8 H100 80GB)")
    exp.add_argument("--node", help="which node of the fleet file to simulate (default: the first)")
    exp.add_argument("--hostname", help="Hostname label (default: $NODE_NAME, the sim node's name, or the host name)")
    exp.add_argument(
        "--kubelet-socket",
        default=DEFAULT_KUBELET_SOCKET,
        help="kubelet pod-resources socket for pod attribution (default %(default)s); 'none' turns it off",
    )
    exp.add_argument(
        "--collect-interval",
        type=seconds(INTERVAL_BOUNDS_S),
        default=CollectorSettings.interval_s,
        help="seconds between collection cycles, {:g}-{:g} (default %(default)s)".format(*INTERVAL_BOUNDS_S),
    )
    exp.add_argument(
        "--read-timeout",
        type=seconds(READ_TIMEOUT_BOUNDS_S),
        default=CollectorSettings.read_timeout_s,
        help="seconds a cycle waits for the GPUs' reads before marking a device down, "
        "{:g}-{:g} (default %(default)s)".format(*READ_TIMEOUT_BOUNDS_S),
    )
    exp.set_defaults(run=run)


def seconds(bounds: tuple[float, float]) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds within `bounds` (nan, inf and negatives refused)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
        problem = seconds_problem(value, bounds)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    return parse


def run(args: argparse.Namespace) -> int:
    from exporter.backends import make_backend
    from exporter.collector import Collector
    from exporter.fleet import DEFAULT_FLEET, load_fleet
    from exporter.server import ExporterServer, parse_listen

    address = parse_listen(args.listen)
    fleet = load_fleet(args.fleet) if args.fleet else DEFAULT_FLEET
    settings = CollectorSettings(interval_s=args.collect_interval, read_timeout_s=args.read_timeout)
    # Bound first: a bad address fails in one line before any driver is touched. No request is
    # served before serve_forever(), by when `collector` exists.
    server = ExporterServer(address, lambda: collector.last, max_age_s=settings.stale_after_s)
    backend = make_backend(args.backend, fleet, args.node)
    hostname = (
        args.hostname
        or os.environ.get("NODE_NAME")
        or (fleet.node(args.node).name if args.backend == "sim" else socket.gethostname())
    )
    pods = None
    if args.kubelet_socket != "none":
        from exporter.podresources import PodResourcesClient

        pods = PodResourcesClient(args.kubelet_socket).list
    collector = Collector(backend, hostname, settings, pods=pods)
    threading.Thread(target=collector.run, name="collector", daemon=True).start()

    def shutdown(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: shutting down", signum)
        collector.stop()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    log.info("exporter (%s backend) serving on http://%s/metrics", backend.name, server.url_host)
    server.serve_forever()
    backend.close()
    return 0
