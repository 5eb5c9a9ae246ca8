"""Warm-pool benchmark: EGS against static pools, reactive, seasonal-naive and the oracle on every trace.

Traces (each alone on its scenario in `examples/`, through the same code `egs simulate` runs; every
parameter is fitted on the training days only, the first 3 of them warming up, and the days after are
scored):

- `servegen-m-{large,mid,small}`: the three 14-day ServeGen language models (10-minute samples;
  `scenario-servegen.yaml`), trained on days 0-9, scored on 10-13;
- `burstgpt-10min`, `burstgpt-1min`: BurstGPT's first week in tokens/s (`scenario-burstgpt.yaml`),
  trained on days 0-4, scored on 5-6;
- `alibaba-genai`: 22.7 days of Stable Diffusion requests (`scenario-alibaba-genai.yaml`), trained on
  days 0-14, scored on 15-21;
- `synthetic-S` (seeds 0-9, or `--generator-seeds`, 10-minute samples) and `synthetic-1min-S` (the first two):
  `benchmarks/demand.py`'s generator (`scenario-synthetic.yaml`, 4 req/s per replica), 0-9 / 10-13;
- only when named (`--traces check`, `check-flash`, ...): `check-<family>-S` (`--check-seeds`, 10-minute
  samples) and `check-<family>-1min-S` (the first two), `benchmarks/check_demand.py`'s independent check
  set (a family per mechanism, never tuned on), scored as the generator is and summed up per family;
- only when named (`--traces hawkes`): `hawkes-S` (`--hawkes-seeds`, 5-minute samples) and `hawkes-1min-S` (the
  first two), `benchmarks/hawkes_demand.py`'s self-exciting switch-ons (a generator nobody tuned on), scored
  and summed up as a check family.

Policies per trace: `egs` (fitted), `reactive`, `static:auto` (the training-picked K: the smallest
with at most 0.5% of added replicas waiting over 60 s on the fitting days), `seasonal-naive`,
`oracle`, the hindsight static K (smallest with p99 <= 60 s on the scored days: context, it sees them)
and the smallest static K at least as good as EGS on both wait figures (`static:match`: if it is
cheaper, a static pool dominates EGS). With `--slow-orders`, every trace is run a second time with
5-20 minute provisioning. Ratios against each target are in the JSON; `cpu_s` is the process CPU of
each run, `egs_cpu_over_reactive` the EGS simulation's CPU over reactive's, and `trace_cpu_s` the
CPU of the whole trace (every fit and run).

A trace that misses its target on EGS's ETA slack alone where `eta_bound_slack_s` (the least mean slack
any rule keeping the promises' share could leave) is itself over the target is `slack_alone_past_bound`,
and counted so in the summary.

Progress and a table go to stderr; the last line of stdout is one JSON object
`{"traces": {NAME: {"policies": {POLICY: <egs simulate --json>}, ...ratios...}}, "summary": {...}}`.

    python benchmarks/warm_pool.py [--traces NAME,...] [--seed S] [--slow-orders] [--generator-seeds 100-109]
                                   [--check-seeds 0-9] [--hawkes-seeds 0-9]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # benchmarks/demand.py, the generator

from autoscaler.adapters.files import (  # noqa: E402
    read_alibaba_genai,
    read_burstgpt,
    read_scenario,
    read_servegen,
    trace_from_rows,
)
from autoscaler.fitting import Protocol, fit_egs, fit_static_k, hindsight_static_k, meets_p99, smallest  # noqa: E402
from autoscaler.pool import forget  # noqa: E402
from autoscaler.simulator import WAIT_LIMIT_S, Policy, Result, Scenario, Trace, pool_settings, simulate  # noqa: E402
from benchmarks import check_demand, hawkes_demand  # noqa: E402
from benchmarks.demand import generate, resample  # noqa: E402

EXAMPLES = REPO / "examples"
SLOW_ORDERS_S = (300.0, 1200.0)
"""`--slow-orders`: provisioning delays of 5-20 minutes instead of the scenarios' 5-10."""
SERVEGEN_TARGETS = {"m-large": 0.75, "m-mid": 0.90, "m-small": 1.00}
"""EGS cost over the training-picked static pool on ServeGen must stay at or below these."""
ETA_KEPT_TARGET = 0.95
ETA_SLACK_TARGET_S = 120.0
"""Every trace's ETA targets: at least this share of EGS's first promises kept, their mean slack at most this."""
SHARE_TARGET = 0.005
"""The generator's target for the share of added replicas waiting over 60 s (beside p99 <= `WAIT_LIMIT_S`)."""


def data_dir() -> Path:
    """`shared/data` beside the repository (or beside the folder that holds it)."""
    for base in (REPO.parent, REPO.parent.parent):
        folder = base / "shared" / "data"
        if folder.is_dir():
            return folder
    return REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class Case:
    """One trace of the benchmark: how to load it, its scenario, protocol and target kind."""

    name: str
    load: Callable[[Path], Trace]
    scenario: str
    protocol: Protocol
    kind: str
    """servegen (cost ratio vs static:auto), public (no static dominates), synthetic and check (the generator's
    targets; check: never tuned on, summed up per family)."""
    model: str


def _servegen(model: str) -> Callable[[Path], Trace]:
    def load(data: Path) -> Trace:
        rows = read_servegen(data / "servegen-bailian" / f"language-{model}_aggregate_10min.csv", model)
        return trace_from_rows(rows, False).trace

    return load


def _burstgpt(step: int) -> Callable[[Path], Trace]:
    def load(data: Path) -> Trace:
        path = data / "burstgpt-derived-third-party" / "week1_per_minute_tokens_per_s.csv"
        return trace_from_rows(read_burstgpt(path, "burstgpt", step), False).trace

    return load


def _genai(data: Path) -> Trace:
    path = data / "alibaba-genai-v2026" / "lora_request_trace.csv"
    return trace_from_rows(read_alibaba_genai(path, "genai", 600), False).trace


def _drawn(step_min: int, draw: Callable[..., tuple[check_demand.Rates, Any]], *args: Any) -> Callable[[Path], Trace]:
    """A generator's trace (`draw(*args)`: demand.py's, check_demand.py's or hawkes_demand.py's), for model
    `synthetic`."""

    def load(data: Path) -> Trace:
        return Trace(step_min * 60.0, {"synthetic": resample(draw(*args)[0], step_min)})

    return load


def _unseen(name: str, step_min: int, draw: Callable[[int], tuple[check_demand.Rates, Any]], seeds: range,
            seed: int) -> list[Case]:  # fmt: skip
    """A generator never tuned on, drawn with each of `seeds`: `<name>-S` (`step_min`-minute samples) and
    `<name>-1min-S` (the first two seeds), on the generator's scenario and protocol."""
    fourteen = Protocol(10, 4, 3, seed)
    out = [Case(f"{name}-{s}", _drawn(step_min, draw, s), "scenario-synthetic.yaml", fourteen, "check", "synthetic")
           for s in seeds]  # fmt: skip
    out += [Case(f"{name}-1min-{s}", _drawn(1, draw, s), "scenario-synthetic.yaml", fourteen, "check", "synthetic")
            for s in seeds[:2]]  # fmt: skip
    return out


def check_cases(seed: int, check_seeds: range) -> list[Case]:
    """`benchmarks/check_demand.py`'s families: `check-<family>-S` (10-minute samples) and
    `check-<family>-1min-S` (`_unseen`)."""
    return [
        case
        for family in check_demand.FAMILIES
        for case in _unseen(f"check-{family}", 10, partial(check_demand.generate, family), check_seeds, seed)
    ]


def hawkes_cases(seed: int, hawkes_seeds: range) -> list[Case]:
    """`benchmarks/hawkes_demand.py`'s self-exciting switch-ons: `hawkes-S` (5-minute samples) and
    `hawkes-1min-S` (`_unseen`)."""
    return _unseen("hawkes", 5, hawkes_demand.generate, hawkes_seeds, seed)


def cases(seed: int, generator_seeds: range = range(10)) -> list[Case]:
    fourteen = Protocol(10, 4, 3, seed)
    week = Protocol(5, 2, 3, seed)
    out = [Case(f"servegen-{m}", _servegen(m), "scenario-servegen.yaml", fourteen, "servegen", m)
           for m in SERVEGEN_TARGETS]  # fmt: skip
    out += [
        Case("burstgpt-10min", _burstgpt(600), "scenario-burstgpt.yaml", week, "public", "burstgpt"),
        Case("burstgpt-1min", _burstgpt(60), "scenario-burstgpt.yaml", week, "public", "burstgpt"),
        Case("alibaba-genai", _genai, "scenario-alibaba-genai.yaml", Protocol(15, 7, 3, seed), "public", "genai"),
    ]
    out += [Case(f"synthetic-{s}", _drawn(10, generate, s), "scenario-synthetic.yaml", fourteen, "synthetic",
                 "synthetic") for s in generator_seeds]  # fmt: skip
    out += [Case(f"synthetic-1min-{s}", _drawn(1, generate, s), "scenario-synthetic.yaml", fourteen, "synthetic",
                 "synthetic") for s in generator_seeds[:2]]  # fmt: skip
    return out


def selected(all_cases: list[Case], wanted: str) -> list[Case]:
    """The cases `--traces` names (comma-separated names or prefixes); with none named, every case but the
    check set's, which is run only when named (never tuned on, it is not part of the targets' count)."""
    prefixes = [w for w in wanted.split(",") if w]
    if not prefixes:
        return [c for c in all_cases if c.kind != "check"]
    return [c for c in all_cases if any(c.name.startswith(w) for w in prefixes)]


def loaded(case: Case, data: Path, slow_orders: bool) -> tuple[Scenario, Trace]:
    """The case's scenario (its one model; 5-20 minute orders with `slow_orders`) and its trace up to the end
    of the scored days."""
    scenario = read_scenario(EXAMPLES / case.scenario)
    gc = scenario.gpu_class
    if slow_orders:
        gc = replace(gc, provision_delay_s=SLOW_ORDERS_S)
    scenario = Scenario(gc, scenario.headroom, {case.model: scenario.models[case.model]})
    return scenario, case.load(data).first_days(case.protocol.score_window.end_day)


def run_case(case: Case, data: Path, slow_orders: bool) -> dict[str, Any]:
    scenario, trace = loaded(case, data, slow_orders)
    protocol = case.protocol
    score = protocol.score_window
    cpu: dict[str, float] = {}

    def run(policy: Policy, label: str) -> Result:
        forget()  # timed cold: the fit left the EGS policy's cache warm for the days it shares
        t0 = time.process_time()
        result = replace(simulate(trace, scenario, policy, score, protocol.seed)[0], policy=label)
        cpu[label] = time.process_time() - t0
        return result

    def static(k: int) -> Policy:
        return Policy("static", pool_settings(scenario, k))

    t0 = time.process_time()
    train_k = fit_static_k(trace, scenario, protocol)
    cpu["fit static"] = time.process_time() - t0
    t0 = time.process_time()
    egs_policy = fit_egs(trace, scenario, protocol, Policy("egs", pool_settings(scenario)), train_k)
    cpu["fit egs"] = time.process_time() - t0
    hindsight_k = hindsight_static_k(trace, scenario, protocol)
    results = {
        "egs": run(egs_policy, "egs"),
        "reactive": run(Policy("reactive", pool_settings(scenario)), "reactive"),
        "static:auto": run(static(train_k), "static:auto"),
        "seasonal-naive": run(Policy("seasonal-naive", pool_settings(scenario)), "seasonal-naive"),
        "oracle": run(Policy("oracle", pool_settings(scenario)), "oracle"),
        "static:hindsight": run(static(hindsight_k), "static:hindsight"),
    }
    egs = results["egs"]

    def as_good(k: int) -> bool:
        r = simulate(trace, scenario, static(k), score, protocol.seed)[0]
        return r.p99_wait_s <= egs.p99_wait_s and r.frac_wait_gt_60s <= egs.frac_wait_gt_60s

    match_k = smallest(as_good, max(train_k, hindsight_k) * 2 + 2)
    results["static:match"] = run(static(match_k), "static:match")
    cost = {name: r.cost_usd for name, r in results.items()}
    out: dict[str, Any] = {
        "kind": case.kind,
        "policies": {name: r.as_json() for name, r in results.items()},
        "fitted": {
            "static_k": train_k,
            "egs_quantile": egs_policy.pool.quantile,
            "egs_neighbours": egs_policy.pool.neighbours,
            "egs_recent_s": egs_policy.pool.recent_s,
            "egs_hold_s": egs_policy.pool.hold_s,
            "egs_learn_s": egs_policy.pool.learn_s,
            "egs_max_idle_nodes": egs_policy.pool.max_idle_nodes,
            "egs_quiet_nodes": egs_policy.pool.quiet_nodes,
            "egs_still_up_s": egs_policy.pool.still_up_s,
        },
        "hindsight_static_k": hindsight_k,
        "match_static_k": match_k,
        "egs_cost_over_static_auto": cost["egs"] / cost["static:auto"],
        "egs_cost_over_oracle": cost["egs"] / cost["oracle"],
        "egs_cost_over_hindsight_static": cost["egs"] / cost["static:hindsight"],
        "static_dominates_egs": cost["static:match"] < cost["egs"],
        "egs_cpu_over_reactive": cpu["egs"] / max(cpu["reactive"], 1e-9),
        "cpu_s": {k: round(v, 3) for k, v in cpu.items()},
    }
    out["meets_target"] = _meets(case, out, results, egs.eta_mean_slack_s)
    out["slack_alone_past_bound"] = slack_alone_past_bound(case, out, results)
    return out


def _meets(case: Case, out: dict[str, Any], results: dict[str, Result], mean_slack_s: float) -> bool:
    """Whether the trace meets its target, its EGS ETAs' mean slack read as `mean_slack_s`."""
    egs = results["egs"]
    etas = egs.eta_kept_frac >= ETA_KEPT_TARGET and mean_slack_s <= ETA_SLACK_TARGET_S
    if case.kind == "servegen":
        ratio = out["egs_cost_over_static_auto"] <= SERVEGEN_TARGETS[case.model] + 1e-9
        return bool(ratio and meets_p99(egs) and etas)
    if case.kind == "public":
        cheapest_ok = results["static:hindsight"].cost_usd
        return bool(not out["static_dominates_egs"] and egs.cost_usd <= cheapest_ok + 1e-6 and etas)
    return bool(meets_wait_targets(egs) and etas)


def slack_alone_past_bound(case: Case, out: dict[str, Any], results: dict[str, Result]) -> bool:
    """Whether the trace misses its target on its EGS ETAs' mean slack alone, where no promise rule that keeps
    their share could have met the slack target in expectation (`eta_bound_slack_s` over it).

    With 5-20 minute orders a 0.95 promise resting on one fresh order leaves 430 s on average (the law's 0.95
    point, 1155 s, less the mean of the draws under it), and orders in flight narrow the bound only to 136-239 s
    on the traces that promised (the tenth session's trace): such a miss is the orders' law, not the promise
    rule's or the pool's, and the summary counts it apart (the target stands)."""
    egs = results["egs"]
    return bool(
        not _meets(case, out, results, egs.eta_mean_slack_s)
        and _meets(case, out, results, 0.0)
        and egs.eta_bound_slack_s > ETA_SLACK_TARGET_S
    )


def meets_wait_targets(result: Result) -> bool:
    """Whether `result` meets the generator's wait targets: p99 <= 60 s and at most `SHARE_TARGET` over 60 s."""
    return meets_p99(result) and result.frac_wait_gt_60s <= SHARE_TARGET


def generator_seed(name: str, kind: str) -> bool:
    """Whether the trace `name` of `kind` is one of the generator's 10-minute seeds (demand.py's), which its
    targets are scored on."""
    return kind == "synthetic" and "1min" not in name


def summary(traces: dict[str, dict[str, Any]]) -> dict[str, Any]:
    synthetic = [t for n, t in traces.items() if generator_seed(n, t["kind"])]
    out: dict[str, Any] = {
        "traces_meeting_target": sum(t["meets_target"] for t in traces.values()),
        "traces": len(traces),
        "traces_missing_on_slack_alone_past_bound": sum(t["slack_alone_past_bound"] for t in traces.values()),
    }
    if synthetic:
        out |= {f"synthetic_{k}": v for k, v in _seeds_summary(synthetic).items()}
    families: dict[str, list[dict[str, Any]]] = {}
    for name, t in traces.items():
        if t["kind"] == "check" and "1min" not in name:
            families.setdefault(family_of(name), []).append(t)
    out |= {family.replace("-", "_"): _seeds_summary(checked) for family, checked in families.items()}
    cpu = [t["egs_cpu_over_reactive"] for t in traces.values()]
    out["max_egs_cpu_over_reactive"] = max(cpu) if cpu else 0.0
    return out


def family_of(name: str) -> str:
    """A check trace's family, its name without the seed (`check-flash-3` -> `check-flash`, `hawkes-1min-0` ->
    `hawkes`): the summary sums up a family's 10-minute (hawkes: 5-minute) seeds together."""
    return name.rsplit("-", 1)[0].removesuffix("-1min")


def _seeds_summary(traces: list[dict[str, Any]]) -> dict[str, Any]:
    """A generator's 10-minute seeds (demand.py's, or one check family's) against the generator's targets and
    the pathologies looked for, and `static:auto`'s wait targets beside EGS's: a miss both share is the trace's."""
    egs = [t["policies"]["egs"] for t in traces]
    auto = [t["policies"]["static:auto"] for t in traces]
    ratio = [t["egs_cost_over_static_auto"] for t in traces]
    return {
        "seeds": len(traces),
        "mean_cost_over_static_auto": float(np.mean(ratio)),
        "max_cost_over_static_auto": float(np.max(ratio)),
        "p99_le_60s": sum(r["p99_wait_s"] <= WAIT_LIMIT_S for r in egs),
        "frac_gt_60s_le_0.5pct": sum(r["frac_wait_gt_60s"] <= SHARE_TARGET for r in egs),
        "static_auto_p99_le_60s": sum(r["p99_wait_s"] <= WAIT_LIMIT_S for r in auto),
        "static_auto_frac_gt_60s_le_0.5pct": sum(r["frac_wait_gt_60s"] <= SHARE_TARGET for r in auto),
        "p99_over_static_auto": sum(
            e["p99_wait_s"] > max(a["p99_wait_s"], WAIT_LIMIT_S) for e, a in zip(egs, auto, strict=True)
        ),
        "static_dominates": sum(t["static_dominates_egs"] for t in traces),
        "etas_kept_lt_95pct": sum(r["eta_kept_frac"] < 0.95 for r in egs),
        "max_cpu_over_reactive": max(t["egs_cpu_over_reactive"] for t in traces),
    }


def table(traces: dict[str, dict[str, Any]]) -> str:
    cols = ("p99_wait_s", "frac_wait_gt_60s", "cost_usd", "eta_kept_frac", "eta_mean_slack_s", "eta_quantile_slack_s",
            "eta_bound_slack_s")  # fmt: skip
    lines = [f"{'trace':18} {'policy':17} " + " ".join(f"{c:>16}" for c in cols)]
    for name, out in traces.items():
        for policy, r in out["policies"].items():
            lines.append(f"{name:18} {policy:17} " + " ".join(f"{r[c]:16.4g}" for c in cols))
        lines.append(
            f"{name:18} EGS/static:auto {out['egs_cost_over_static_auto']:.3f}, EGS/oracle "
            f"{out['egs_cost_over_oracle']:.3f}, EGS/hindsight {out['egs_cost_over_hindsight_static']:.3f}, "
            f"K auto/hindsight/match {out['fitted']['static_k']}/{out['hindsight_static_k']}/{out['match_static_k']}, "
            f"EGS quantile {out['fitted']['egs_quantile']:.4f} of {out['fitted']['egs_neighbours']} "
            f"recent {out['fitted']['egs_recent_s'] / 3600:g} h, learn {out['fitted']['egs_learn_s'] / 3600:g} h, "
            f"at most {out['fitted']['egs_max_idle_nodes']} idle nodes ({out['fitted']['egs_quiet_nodes']} quiet), "
            f"still up {out['fitted']['egs_still_up_s'] / 3600:g} h, "
            f"CPU EGS/reactive {out['egs_cpu_over_reactive']:.1f}, "
            f"target {'met' if out['meets_target'] else 'MISSED'}"
            f"{' (on ETA slack alone, past the bound)' if out['slack_alone_past_bound'] else ''}"
        )
    return "\n".join(lines)


def seed_range(text: str) -> range:
    """`FIRST-LAST`, both included."""
    first, last = (int(x) for x in text.split("-"))
    return range(first, last + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=data_dir(), help="the shared data folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the provisioning delays")
    parser.add_argument("--traces", default="", help="comma-separated names or prefixes (default: all)")
    parser.add_argument("--slow-orders", action="store_true", help="5-20 minute provisioning instead of 5-10")
    parser.add_argument(
        "--generator-seeds", default="0-9", help="the generator's seeds, FIRST-LAST (tune on others than 0-9)"
    )
    parser.add_argument(
        "--check-seeds", default="0-9", help="check_demand.py's seeds, FIRST-LAST (its traces run only when named)"
    )
    parser.add_argument(
        "--hawkes-seeds", default="0-9", help="hawkes_demand.py's seeds, FIRST-LAST (its traces run only when named)"
    )
    args = parser.parse_args()
    every = cases(args.seed, seed_range(args.generator_seeds)) + check_cases(args.seed, seed_range(args.check_seeds))
    every += hawkes_cases(args.seed, seed_range(args.hawkes_seeds))
    traces: dict[str, dict[str, Any]] = {}
    start = time.process_time()
    for case in selected(every, args.traces):
        print(f"{case.name} ...", file=sys.stderr, flush=True)
        t0 = time.process_time()
        traces[case.name] = run_case(case, args.data, args.slow_orders)
        traces[case.name]["trace_cpu_s"] = round(time.process_time() - t0, 1)
        print(table({case.name: traces[case.name]}), file=sys.stderr, flush=True)
    out = {"traces": traces, "summary": summary(traces), "cpu_s": round(time.process_time() - start, 1)}
    print(json.dumps(out["summary"]), file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
