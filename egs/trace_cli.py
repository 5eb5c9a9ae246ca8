"""`egs trace convert`: public demand traces to the canonical trace CSV `egs simulate` reads.

Composition only: `autoscaler.adapters.files` reads the ServeGen aggregate (and per-client) CSV,
BurstGPT's per-minute aggregate or Alibaba GenAI's request trace, and writes
`time_s,model,demand_rps[,client]`. Everything is read and checked before the output is
written (through a temporary file), so bad input leaves nothing behind. `egs/cli.py` registers it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from autoscaler.adapters.files import read_alibaba_genai, read_burstgpt, read_servegen, write_trace
from common.errors import InputError


def add_parser(sub: Any) -> None:
    """Register `egs trace convert` on the `egs` command's subparsers."""
    trace = sub.add_parser("trace", description="Convert demand traces for `egs simulate`.")
    actions = trace.add_subparsers(required=True, metavar="ACTION")
    convert = actions.add_parser(
        "convert",
        help="ServeGen, BurstGPT or Alibaba GenAI files -> canonical trace CSV",
        description="Convert a ServeGen-style aggregate file (window_start_s, total_rate_rps, active_clients, "
        "...) into the canonical trace CSV (time_s,model,demand_rps), or, with --clients, its per-client "
        "file into the long format with a fourth column `client` (demand summed over clients per window). "
        "A window with rate 0 and no active client is a collection gap and gets no row. --burstgpt reads "
        "BurstGPT's per-minute aggregate (demand in tokens/s, a minute without a request counting as 0) and "
        "--alibaba-genai its request trace (requests/s), each binned into windows of --step seconds.",
    )
    source = convert.add_mutually_exclusive_group(required=True)
    source.add_argument("--servegen", type=Path, metavar="AGGREGATE.csv", help="ServeGen's aggregate file")
    source.add_argument(
        "--burstgpt",
        type=Path,
        metavar="PER_MINUTE.csv",
        help="BurstGPT's week1_per_minute_tokens_per_s.csv (minute_index,total_tokens_per_s)",
    )
    source.add_argument(
        "--alibaba-genai",
        type=Path,
        metavar="REQUESTS.csv",
        help="Alibaba GenAI's lora_request_trace.csv (one row per request, gmt_create)",
    )
    convert.add_argument("--step", type=int, choices=(60, 600), default=600,
                         help="window of --burstgpt and --alibaba-genai, seconds (default %(default)s)")  # fmt: skip
    convert.add_argument(
        "--clients", type=Path, metavar="PER_CLIENT.csv", help="the per-client file: write one row per client"
    )
    convert.add_argument("--model", required=True, help="the model name to write in the `model` column")
    convert.add_argument("-o", "--output", type=Path, required=True, metavar="TRACE.csv", help="where to write")
    convert.set_defaults(run=run_convert)


def run_convert(args: argparse.Namespace) -> int:
    if args.clients is not None and args.servegen is None:
        raise InputError("--clients goes with --servegen only", source="--clients")
    if args.servegen is not None:
        rows = read_servegen(args.servegen, args.model, args.clients)
    elif args.burstgpt is not None:
        rows = read_burstgpt(args.burstgpt, args.model, args.step)
    else:
        rows = read_alibaba_genai(args.alibaba_genai, args.model, args.step)
    write_trace(args.output, rows, with_clients=args.clients is not None)
    print(f"wrote {len(rows)} rows for model {args.model} to {args.output}", file=sys.stderr)
    return 0
