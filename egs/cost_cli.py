"""`egs cost`: GPU cost per team, read from Prometheus (the same figures as the "Cost by team" dashboard).

Composition only: `autoscaler.adapters.prometheus` reads the recording rules
`namespace:egs_gpu_cost_usd_per_hour:sum` and `gpu_class:egs_gpu_idle_cost_usd_per_hour:sum` and the
controller's series behind them; `autoscaler.cost.TeamCost` is what is printed. `egs/cli.py` registers it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from autoscaler.adapters.prometheus import PrometheusMetrics
from autoscaler.cost import TeamCost
from egs.arguments import POSITIVE


def add_parser(sub: Any) -> None:
    """Register `egs cost` on the `egs` command's subparsers."""
    cost = sub.add_parser(
        "cost",
        description="What each namespace pays per hour for the GPUs its pods hold (a shared GPU by the share of "
        "its memory a pod holds, whole GPUs as 1), and what the GPUs nobody holds cost per class, at each "
        "class's price per GPU-hour, as Prometheus records them from the controller's series.",
    )
    cost.add_argument("--prometheus", metavar="URL", required=True, help="Prometheus (or Thanos, Mimir) query URL")
    cost.add_argument(
        "--timeout", type=POSITIVE, default=10.0, help="seconds all the queries may take (default %(default)s)"
    )
    cost.add_argument(
        "-o",
        "--output",
        choices=["table", "json"],
        default="table",
        help="table (default), or json: one document on stdout with fleet, teams and idle $/hour, each "
        "namespace's $/hour and GPUs per class, and each class's GPUs, price and idle $/hour",
    )
    cost.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    report = PrometheusMetrics(args.prometheus, timeout_s=args.timeout).team_cost(time.time())
    if args.output == "json":
        json.dump(report.as_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(table(report))
    return 0


def table(report: TeamCost) -> str:
    doc = report.as_json()
    lines = [f"{'NAMESPACE':<24} {'$/HOUR':>10}  GPUS"]
    for ns in doc["namespaces"]:
        gpus = ", ".join(f"{g:g} {c}" for c, g in ns["gpus"].items())
        lines.append(f"{ns['namespace']:<24} {ns['usd_per_hour']:>10.2f}  {gpus}")
    lines.append("")
    lines.append(f"{'GPU CLASS':<24} {'GPUS':>6} {'$/GPU-HOUR':>11} {'IDLE $/HOUR':>12}")
    for c in doc["gpu_classes"]:
        price = "-" if c["price_usd_per_hour"] is None else f"{c['price_usd_per_hour']:.2f}"
        lines.append(f"{c['gpu_class']:<24} {c['gpus']:>6g} {price:>11} {c['idle_usd_per_hour']:>12.2f}")
    lines.append("")
    lines.append(
        f"fleet {doc['fleet_usd_per_hour']:.2f} $/hour = teams {doc['teams_usd_per_hour']:.2f} "
        f"+ idle {doc['idle_usd_per_hour']:.2f}"
    )
    return "\n".join(lines) + "\n"
