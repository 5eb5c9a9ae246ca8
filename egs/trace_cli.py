"""`egs trace convert`: ServeGen's per-window rate files to the canonical trace CSV `egs simulate` reads.

Composition only: `autoscaler.adapters.files` reads the ServeGen aggregate (and per-client) CSV and
writes `time_s,model,demand_rps[,client]`. Everything is read and checked before the output is
written (through a temporary file), so bad input leaves nothing behind. `egs/cli.py` registers it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from autoscaler.adapters.files import read_servegen, write_trace


def add_parser(sub: Any) -> None:
    """Register `egs trace convert` on the `egs` command's subparsers."""
    trace = sub.add_parser("trace", description="Convert demand traces for `egs simulate`.")
    actions = trace.add_subparsers(required=True, metavar="ACTION")
    convert = actions.add_parser(
        "convert",
        help="ServeGen aggregate (and per-client) CSV -> canonical trace CSV",
        description="Convert a ServeGen-style aggregate file (window_start_s, total_rate_rps, active_clients, "
        "...) into the canonical trace CSV (time_s,model,demand_rps), or, with --clients, its per-client "
        "file into the long format with a fourth column `client` (demand summed over clients per window). "
        "A window with rate 0 and no active client is a collection gap and gets no row.",
    )
    convert.add_argument("--servegen", type=Path, required=True, metavar="AGGREGATE.csv", help="the aggregate file")
    convert.add_argument(
        "--clients", type=Path, metavar="PER_CLIENT.csv", help="the per-client file: write one row per client"
    )
    convert.add_argument("--model", required=True, help="the model name to write in the `model` column")
    convert.add_argument("-o", "--output", type=Path, required=True, metavar="TRACE.csv", help="where to write")
    convert.set_defaults(run=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    rows = read_servegen(args.servegen, args.model, args.clients)
    write_trace(args.output, rows, with_clients=args.clients is not None)
    print(f"wrote {len(rows)} rows for model {args.model} to {args.output}", file=sys.stderr)
    return 0
