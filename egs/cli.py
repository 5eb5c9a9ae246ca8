"""The `egs` command: wires the components together. No logic of its own lives here.

Exit codes, the same for every subcommand (`EXIT_CODES`, printed by `egs --help`): what a command
expects to go wrong is one of `common.errors`' types, reported as one line `egs: error: ...` on
stderr with that type's code. Anything else is a bug: it is not caught, so Python prints its
traceback and exits 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from common.errors import EgsError
from egs.exit_codes import EXIT_CODES as EXIT_CODES
from exporter.backends import BACKENDS, make_backend
from exporter.collector import (
    INTERVAL_BOUNDS_S,
    READ_TIMEOUT_BOUNDS_S,
    Collector,
    CollectorSettings,
    seconds_problem,
)
from exporter.fleet import DEFAULT_FLEET, Fleet, load_fleet
from exporter.server import ExporterServer, parse_listen

log = logging.getLogger("egs")

DEFAULT_KUBELET_SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
LIGHT_COMMANDS = ("exporter", "demo")
"""Commands wired from this module's own imports. `egs exporter` runs on every GPU node within an
RSS budget (40 MB at 64 GPUs), so the other commands' modules (the scheduler, scipy, ...) are
imported inside `_parser()`, and only when their command is the one run or the full help is asked
for; `tests/test_exporter_imports.py` fails when one is imported at the top of this module."""


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser(_command(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.run(args))
    except EgsError as e:
        print(f"egs: error: {e}", file=sys.stderr)
        return e.exit_code


def _command(argv: Sequence[str]) -> str | None:
    """The light command that `argv` runs, or None when it runs another one or none."""
    words = iter(argv)
    for word in words:
        if word == "--log-level":
            next(words, None)
        elif not word.startswith("-"):
            return word if word in LIGHT_COMMANDS else None
    return None


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of the light `command` alone (then nothing else is imported)."""
    parser = argparse.ArgumentParser(
        prog="egs",
        description="Elastic GPU Service: GPU monitoring and autoscaling for LLM inference on Kubernetes.",
        epilog="exit codes:\n" + "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_CODES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    exp = sub.add_parser(
        "exporter",
        help="serve GPU metrics (dcgm-exporter names) on /metrics",
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
    exp.set_defaults(run=run_exporter)

    from egs.demo_cli import add_parser as add_demo_parser

    add_demo_parser(sub)

    if command is None:
        from egs.api_cli import add_parser as add_api_parser
        from egs.controller_cli import add_parser as add_controller_parser
        from egs.plan_cli import add_parser as add_plan_parser
        from egs.render_cli import add_parser as add_render_parser
        from egs.simulate_cli import add_parser as add_simulate_parser
        from egs.trace_cli import add_parser as add_trace_parser

        add_plan_parser(sub)
        add_simulate_parser(sub)
        add_trace_parser(sub)
        add_render_parser(sub)
        add_controller_parser(sub)
        add_api_parser(sub)
    return parser


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


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _fleet(path: Path | None) -> Fleet:
    return load_fleet(path) if path else DEFAULT_FLEET


def run_exporter(args: argparse.Namespace) -> int:
    address = parse_listen(args.listen)
    fleet = _fleet(args.fleet)
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


if __name__ == "__main__":
    sys.exit(main())
