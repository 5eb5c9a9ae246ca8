"""How far any fit of EGS's warm-pool family could go on the generator: the bound in hindsight.

`benchmarks/warm_pool.py` fits EGS on the training days and scores it on the days after; on the generator
it misses the issue's cost target (mean <= 0.95x `static:auto`). This asks whether a better fit could meet
it. Per seed of `benchmarks/demand.py` (10-minute samples, the same scenario and protocol), it runs every
configuration the fit chooses among on the scored days: each rung of `LEARNING` and `LEVELS`, each cap of
1 to K+2 idle nodes (K: `static:auto`'s), each quiet-hours cap below the caps K-1 to K+1, and every static
pool of 0 to K+3 nodes. Then, of those runs, the cheapest

- `hindsight`: with waits no worse than `static:auto`'s (p99 and the share over 60 s, each at most its
  target where `static:auto` meets it): the best that picking per seed on the scored days gives;
- `rule`: of those, the cheapest that also meets the fitting rule on its own training days (at most 0.5%
  of added replicas over 60 s): the best a fit that sees the training days alone could pick;
- `targets`: meeting the generator's wait targets (p99 <= 60 s, <= 0.5% over 60 s), none where no
  configuration does;

each as its cost over `static:auto`'s, and their means over the seeds. About a minute of CPU a seed.
Progress goes to stderr; the last line of stdout is one JSON object `{"seeds": {NAME: {...}}, "summary":
{...}}`.

    python benchmarks/warm_pool_bound.py [--generator-seeds 0-9] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from autoscaler.fitting import LEARNING, LEVELS, STILL_UP_S, at_rung, fit_static_k, meets_rule, rung_of  # noqa: E402
from autoscaler.simulator import WAIT_LIMIT_S, Policy, Result, Scenario, pool_settings, simulate  # noqa: E402
from benchmarks.warm_pool import (  # noqa: E402
    SHARE_TARGET,
    Case,
    cases,
    data_dir,
    generator_seed,
    loaded,
    meets_wait_targets,
    seed_range,
)


def configurations(scenario: Scenario, k: int) -> list[Policy]:
    """Every static pool of 0 to K+3 nodes and every EGS configuration the fit chooses among, with caps of
    1 to K+2 idle nodes and, below the caps K-1 to K+1, each quiet-hours cap (a cap of 0 is reactive, the
    static pool of 0); the learning rungs with and without `still_up_s`."""
    statics = [Policy("static", pool_settings(scenario, n)) for n in range(k + 4)]
    base = Policy("egs", pool_settings(scenario))
    egs = []
    for rung in LEARNING + LEVELS:
        still_up = (0.0, STILL_UP_S) if rung in LEARNING else (0.0,)
        for cap in range(1, k + 3):
            quiet = [None, *range(cap)] if k - 1 <= cap <= k + 1 else [None]
            capped = at_rung(base, rung, cap)
            egs += [
                replace(capped, pool=replace(capped.pool, quiet_nodes=q, still_up_s=u)) for u in still_up for q in quiet
            ]
    return statics + egs


def label(policy: Policy) -> str:
    """A configuration as docs/benchmarks.md's warm-pool table writes a fit in its "EGS fitted" column: the
    rung (`learn 7 d`, `q 1 of 400, 6 h`, or `no pool`: `LEVELS[0]`) and the caps."""
    pool = policy.pool
    if policy.name == "static":
        return f"static:{pool.static_nodes}"
    if rung_of(pool) == LEVELS[0]:
        rung = "no pool"
    elif pool.learn_s:
        rung = f"learn {pool.learn_s / 86_400:g} d"
    else:
        rung = f"q {pool.quantile:g} of {pool.neighbours}, {pool.recent_s / 3_600:g} h"
    quiet = "" if pool.quiet_nodes is None else f" ({pool.quiet_nodes} quiet)"
    up = f", still up {pool.still_up_s / 3_600:g} h" if pool.still_up_s else ""
    return f"{rung}{up}; <= {pool.max_idle_nodes}{quiet}"


def bound(case: Case, data: Path, tried: Callable[[Scenario, int], list[Policy]] = configurations) -> dict[str, Any]:
    """The case's three cheapest picks (module docstring) among the configurations `tried` gives for its
    scenario and K, each as its label, cost ratio and waits."""
    scenario, trace = loaded(case, data, False)
    protocol = case.protocol
    k = fit_static_k(trace, scenario, protocol)
    runs = {p: simulate(trace, scenario, p, protocol.score_window, protocol.seed)[0] for p in tried(scenario, k)}
    auto = runs[Policy("static", pool_settings(scenario, k))]

    def cheapest(ok: Callable[[Policy, Result], bool]) -> dict[str, Any] | None:
        for policy, result in sorted(runs.items(), key=lambda run: run[1].cost_usd):
            if ok(policy, result):
                return {
                    "policy": label(policy),
                    "cost_over_static_auto": result.cost_usd / auto.cost_usd,
                    "p99_wait_s": result.p99_wait_s,
                    "frac_wait_gt_60s": result.frac_wait_gt_60s,
                }
        return None

    def no_worse(result: Result) -> bool:
        return result.p99_wait_s <= max(WAIT_LIMIT_S, auto.p99_wait_s) and result.frac_wait_gt_60s <= max(
            SHARE_TARGET, auto.frac_wait_gt_60s
        )

    return {
        "static_k": k,
        "configurations": len(runs),
        "hindsight": cheapest(lambda _, r: no_worse(r)),
        "rule": cheapest(lambda p, r: no_worse(r) and meets_rule(trace, scenario, protocol, p)),
        "targets": cheapest(lambda _, r: meets_wait_targets(r)),
    }


def summary(seeds: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each pick's mean cost over `static:auto` (`targets`: over the seeds where some configuration meets them,
    and how many do)."""
    out: dict[str, Any] = {"seeds": len(seeds)}
    for pick in ("hindsight", "rule", "targets"):
        ratios = [s[pick]["cost_over_static_auto"] for s in seeds.values() if s[pick] is not None]
        out[f"{pick}_mean_cost_over_static_auto"] = float(np.mean(ratios)) if ratios else None
        out[f"{pick}_seeds"] = len(ratios)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=data_dir(), help="the shared data folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the provisioning delays")
    parser.add_argument("--generator-seeds", default="0-9", help="the generator's seeds, FIRST-LAST")
    args = parser.parse_args()
    start = time.process_time()
    seeds: dict[str, dict[str, Any]] = {}
    for case in cases(args.seed, seed_range(args.generator_seeds)):
        if not generator_seed(case.name, case.kind):
            continue
        seeds[case.name] = bound(case, args.data)
        print(case.name, json.dumps(seeds[case.name]), file=sys.stderr, flush=True)
    out = {"seeds": seeds, "summary": summary(seeds), "cpu_s": round(time.process_time() - start, 1)}
    print(json.dumps(out["summary"]), file=sys.stderr)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
