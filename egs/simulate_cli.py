"""`egs simulate`: replay a demand trace through a warm-pool policy and report waits, cost and ETAs.

Composition only: `autoscaler.adapters.files` loads and checks the trace and scenario,
`autoscaler.fitting` fits the policy's parameter on the training days (`static:auto`, `egs`),
`autoscaler.simulator` runs DESIGN.md's model over the trace and scores the days after training, and
`autoscaler.adapters.plots` draws `--plot`. Everything is loaded and checked before anything runs or
is written; bad input is reported by `egs/cli.py` (`egs: error: <file>: row N: ...`, exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TextIO

from autoscaler.adapters.files import check_trace, read_scenario, read_trace
from autoscaler.adapters.plots import PlotInput, check_plot_dir, write_plots
from autoscaler.fitting import Protocol, fit_egs, fit_static_k
from autoscaler.simulator import Policy, Scenario, Timeline, Trace, pool_settings, simulate
from egs.arguments import number

POLICY_HELP = (
    "egs (spare GPUs for the next rise, from the demand history alone; fitted on the training days), reactive "
    "(no pool), static:K (K idle nodes), static:auto (K fitted on the training days), seasonal-naive (last week's "
    "rise), oracle (knows the future: the cost floor)"
)
DAYS = number(at_least=1, at_most=366, unit="days")
WARMUP_DAYS = 3.0
MAX_STATIC_NODES = 10_000
"""static:K above this is refused: K idle nodes are simulated one by one (static:1000000000 took 22.7 GB)."""
MAX_SEED = 2**32 - 1


def add_parser(sub: Any) -> None:
    """Register `egs simulate` on the `egs` command's subparsers."""
    sim = sub.add_parser(
        "simulate",
        description="Simulate one GPU class's nodes, warm pool and replicas in 60 s steps over a demand trace "
        "(DESIGN.md's warm-pool model), driven by the autoscaler's own forecast, pool and ETA code. Parameters "
        "are fitted on the first --train-days only (the first min(3, N-1) of them warm the forecasts up): the "
        "smallest value with at most 0.5% of the replicas added waiting over 60 s. The next --score-days are "
        "scored.",
    )
    sim.add_argument("--trace", type=Path, required=True, help="trace CSV: time_s,model,demand_rps[,client]")
    sim.add_argument("--scenario", type=Path, required=True, help="scenario YAML (examples/scenario-servegen.yaml)")
    sim.add_argument("--policy", required=True, type=_policy_arg, metavar="POLICY", help=POLICY_HELP)
    sim.add_argument("--train-days", type=DAYS, required=True, metavar="N", help="days to fit on (from day 0)")
    sim.add_argument("--score-days", type=DAYS, required=True, metavar="M", help="days scored after training")
    sim.add_argument(
        "--seed", type=_seed, default=0, help="seed of the provisioning delays, 0 to 2^32-1 (default %(default)s)"
    )
    sim.add_argument("--json", action="store_true", help="print one JSON object on stdout instead of the table")
    sim.add_argument(
        "--plot",
        type=Path,
        metavar="DIR",
        help="write PNGs for a capacity planner: cost against static:auto and the oracle, GPUs, pool, ETAs, demand",
    )
    sim.add_argument(
        "--demand-unit",
        default="req/s",
        metavar="UNIT",
        help="the trace's demand unit, for the plots' axis (default %(default)s; tokens/s for BurstGPT)",
    )
    sim.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    sim.set_defaults(run=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    scenario = read_scenario(args.scenario)
    loaded = read_trace(args.trace)
    check_trace(loaded, scenario, args.train_days + args.score_days, args.trace)
    if args.plot is not None:
        check_plot_dir(args.plot)
    protocol = Protocol(args.train_days, args.score_days, min(WARMUP_DAYS, args.train_days - 1), args.seed)
    name, k, asked = args.policy
    bar = None if args.quiet else ProgressBar(sys.stderr)
    # static:auto's K: the policy asked, EGS's cap and the plots' baseline read it, fitted once.
    static_k = None
    if args.plot is not None or name == "egs" or (name == "static" and k is None):
        if bar:
            bar.label("fitting K on the training days")
        static_k = fit_static_k(loaded.trace, scenario, protocol)
    policy = _fitted(name, k, static_k, loaded.trace, scenario, protocol, bar)
    result, timeline = simulate(
        loaded.trace.first_days(protocol.score_window.end_day),
        scenario,
        policy,
        protocol.score_window,
        args.seed,
        progress=bar.phase("simulating") if bar else None,
        timeline=args.plot is not None,
    )
    if bar:
        bar.done()
    result = replace(result, policy=asked)
    if timeline is not None:
        assert static_k is not None  # fitted above for the plots
        write_plots(_plot_input(args, (policy, timeline), loaded.trace, scenario, protocol, asked, static_k), args.plot)
    report = {**result.as_json(), "fitted": fitted_parameters(policy, asked)}
    if args.json:
        print(json.dumps(report))
    else:
        _print_table(report)
    return 0


def _plot_input(
    args: argparse.Namespace,
    ran: tuple[Policy, Timeline],
    trace: Trace,
    scenario: Scenario,
    protocol: Protocol,
    asked: str,
    k: int,
) -> PlotInput:
    """The plots' data: the policy's run (`ran`) beside `static:auto`'s and the oracle's (run here, for their
    $/h, unless one of them is the policy's run: a baseline asked for is not simulated twice)."""
    cut = trace.first_days(protocol.score_window.end_day)
    baselines = {}
    for label, policy in ((f"static:auto (K={k})", Policy("static", pool_settings(scenario, k))),
                          ("oracle", Policy("oracle", pool_settings(scenario)))):  # fmt: skip
        other = ran[1] if policy == ran[0] else simulate(cut, scenario, policy, protocol.score_window, args.seed,
                                                         timeline=True)[1]  # fmt: skip
        assert other is not None
        baselines[label] = other
    return PlotInput(
        title=f"{asked} on {args.trace.name}",
        timeline=ran[1],
        baselines=baselines,
        gpus_per_node=scenario.gpu_class.gpus_per_node,
        price_per_node_hour=scenario.gpu_class.price_per_node_hour,
        score_start_day=protocol.score_window.start_day,
        demand_unit=args.demand_unit,
    )


def fitted_parameters(policy: Policy, asked: str) -> dict[str, object]:
    """What was fitted on the training days (`static:auto`'s K, EGS's quantile) and EGS's fixed design
    parameters beside it, so that a reader of `--json` can rerun the same policy."""
    if policy.name == "static":
        return {"static_k": policy.pool.static_nodes} if asked == "static:auto" else {}
    if policy.name != "egs":
        return {}
    pool = policy.pool
    return {
        "quantile": pool.quantile,
        "neighbours": pool.neighbours,
        "recent_s": pool.recent_s,
        "hold_s": pool.hold_s,
        "learn_s": pool.learn_s,
        "max_idle_nodes": pool.max_idle_nodes,
        "quiet_nodes": pool.quiet_nodes,
        "still_up_s": pool.still_up_s,
        "fixed": {
            "lead_s": pool.lead_s,
            "activity_s": pool.activity_s,
            "jump_threshold": pool.jump_threshold,
            "history_s": pool.history_s,
            "allowance_gpus": pool.allowance_gpus,
        },
    }


def _fitted(
    name: str,
    k: int | None,
    static_k: int | None,
    trace: Trace,
    scenario: Scenario,
    protocol: Protocol,
    bar: ProgressBar | None,
) -> Policy:
    """The policy asked, its parameters fitted on the training days (`static_k`: static:auto's K, fitted)."""
    if name == "static":
        size = k if k is not None else static_k
        assert size is not None  # static:auto: the caller fitted it
        return Policy("static", pool_settings(scenario, size))
    if name == "egs":
        if bar:
            bar.label("fitting EGS's covered rise on the training days")
        return fit_egs(trace, scenario, protocol, Policy("egs", pool_settings(scenario)), static_k)
    return Policy(name, pool_settings(scenario))  # type: ignore[arg-type]  # checked by _policy_arg


def _policy_arg(text: str) -> tuple[str, int | None, str]:
    """(policy name, static K or None, the text asked for: what `policy` in the result says)."""
    if text in ("egs", "reactive", "seasonal-naive", "oracle"):
        return text, None, text
    if text == "static:auto":
        return "static", None, text
    head, _, k = text.partition(":")
    if head == "static" and k.isascii() and k.isdigit():
        if int(k) > MAX_STATIC_NODES:
            raise argparse.ArgumentTypeError(f"static:K takes K from 0 to {MAX_STATIC_NODES:,} nodes; got {text!r}")
        return "static", int(k), text
    raise argparse.ArgumentTypeError(
        f"--policy must be egs, reactive, static:K (K a whole number >= 0), static:auto, seasonal-naive or oracle;"
        f" got {text!r}"
    )


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_SEED}, got {text}")
    return value


def _print_table(report: dict[str, object]) -> None:
    for key, value in report.items():
        print(f"{key:24} {_shown(value)}")


def _shown(value: object) -> object:
    """Four significant digits, but dollars and hours from 10,000 up in full (not 9.772e+04)."""
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"
    return json.dumps(value) if isinstance(value, dict) else value


class ProgressBar:
    """A one-line progress bar on a stream (stderr): label, bar, percentage; redrawn at most 10 times a second."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream, self.width = stream, width
        self.text = ""
        self.last = 0.0

    def label(self, text: str) -> None:
        self.text = text
        self._draw(0.0, force=True)

    def phase(self, text: str) -> Callable[[float], None]:
        self.label(text)
        return self._draw

    def _draw(self, fraction: float, force: bool = False) -> None:
        now = time.monotonic()
        if not force and fraction < 1.0 and now - self.last < 0.1:
            return
        self.last = now
        filled = round(self.width * fraction)
        self.stream.write(f"\r{self.text:48.48} [{'#' * filled}{'.' * (self.width - filled)}] {fraction:4.0%}")
        self.stream.flush()

    def done(self) -> None:
        self.stream.write("\n")
        self.stream.flush()
