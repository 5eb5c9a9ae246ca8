"""`egs demo`: the command's options; `localplay.demo` runs it (imported only when the demo runs).

Registered by `egs/cli.py`, which keeps `demo` a light command: nothing heavy is imported here."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from egs.arguments import POSITIVE

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TRACE = REPO / "examples" / "demand-day.csv"
DEFAULT_FLEET = REPO / "examples" / "fleet-mixed.yaml"


def add_parser(sub: Any) -> None:
    """Register `egs demo` on the `egs` command's subparsers."""
    demo = sub.add_parser(
        "demo",
        description="On this machine, no GPU and no cluster needed: a simulated GPU fleet's exporters, a real "
        "Prometheus with the EGS rules and alerts, a real Alertmanager, and the real `egs controller` and "
        "`egs api` against a Kubernetes API stand-in (kmock). A day of recorded demand (ServeGen, Alibaba "
        "Bailian) is replayed in --minutes: endpoints are requested through the API (202 with an ETA while a "
        "node is provisioned, 201 when warm GPUs serve at once), the controller scales them and keeps a warm "
        "pool, the demo plays scheduler, kubelet and node autoscaler (nodes join after --node-delay), and "
        "the capped endpoint's GPUs saturate in the busier half of the day and page through Alertmanager. A summary "
        "(demand, pools, placements, ETAs, alerts) is printed every --every seconds; at the end, or on "
        "Ctrl-C, an HTML report with plots is written (--report). Ctrl-C stops everything it started.",
    )
    demo.add_argument(
        "--minutes", type=POSITIVE, default=3.0, help="real minutes the day of demand takes (default %(default)s)"
    )
    demo.add_argument(
        "--speed", type=POSITIVE, help="replay this many times faster than recorded instead (1440: a day in a minute)"
    )
    demo.add_argument(
        "--start-hour",
        type=float,
        default=12.0,
        help="hour of the recorded day the replay starts at, wrapping round its end (default %(default)s: "
        "before the evening peak, through the night's trough)",
    )
    demo.add_argument("--every", type=POSITIVE, default=5.0, help="seconds between summaries (default %(default)s)")
    demo.add_argument("--trace", type=Path, default=DEFAULT_TRACE, help="demand trace CSV, canonical format "
                      "(`egs trace convert` writes one; default: a day of ServeGen, "
                      "examples/demand-day.csv)")  # fmt: skip
    demo.add_argument(
        "--peak-rps", type=POSITIVE, default=40.0, help="the busiest model's peak, req/s (default %(default)s)"
    )
    demo.add_argument("--fleet", type=Path, default=DEFAULT_FLEET, help="fleet file of the simulated nodes that "
                      "run beside the cluster's (default: examples/fleet-mixed.yaml)")  # fmt: skip
    demo.add_argument(
        "--node-delay",
        type=POSITIVE,
        default=8.0,
        help="seconds a GPU node takes from order to joining (default %(default)s)",
    )
    demo.add_argument("--report", type=Path, default=Path("egs-demo-report.html"), help="where the HTML report "
                      "goes (default %(default)s)")  # fmt: skip
    demo.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from exporter.fleet import load_fleet
    from localplay.demo import Options, run
    from localplay.demo_replay import load_replay

    load_fleet(args.fleet)  # a bad fleet file or trace fails here, in one line, before anything starts
    replay = load_replay(args.trace, args.minutes, args.peak_rps, args.start_hour)
    if args.speed is not None:
        replay = load_replay(args.trace, replay.length_s / args.speed / 60, args.peak_rps, args.start_hour)
    options = Options(replay, args.fleet, every_s=args.every, node_delay_s=args.node_delay, report=args.report)
    return run(options)
