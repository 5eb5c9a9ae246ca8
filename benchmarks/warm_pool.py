"""Warm-pool benchmark: EGS against static pools, reactive, seasonal-naive and the oracle on ServeGen.

The three 14-day ServeGen language models (`language-m-{large,mid,small}`), each alone on one GPU
class (examples/scenario-servegen.yaml: 8-GPU nodes at $98.32 per node-hour, 5-10 min provisioning,
120 s load, 1 GPU per replica, 10% headroom). Every parameter is fitted on days 0-9 only (days 0-2
warm the forecasts up; the rule is applied to days 3-9) and days 10-13 are scored, through the same
code `egs simulate` runs. The training-picked static pool is the smallest K with at most 0.5% of
added replicas waiting over 60 s on days 3-9 (`static:auto`); the hindsight one the smallest K with
p99 <= 60 s on the scored days (context only). Progress and a table go to stderr; the last line of
stdout is one JSON object:

    {"models": {"m-large": {"policies": {POLICY: <egs simulate --json>}, "train_static_k",
     "hindsight_static_k", "egs_cost_over_train_static", "egs_cost_over_oracle",
     "egs_cost_over_hindsight_static"}, "m-mid": ..., "m-small": ...}}

    python benchmarks/warm_pool.py [--data DIR] [--clients] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from autoscaler.adapters.files import read_scenario, read_servegen, trace_from_rows
from autoscaler.fitting import Protocol, fit_egs, fit_static_k, hindsight_static_k
from autoscaler.pool import PoolSettings
from autoscaler.simulator import Policy, Result, Scenario, Trace, simulate

REPO = Path(__file__).resolve().parent.parent
SCENARIO = REPO / "examples" / "scenario-servegen.yaml"
MODELS = ("m-large", "m-mid", "m-small")
TARGETS = {"m-large": 0.75, "m-mid": 0.90, "m-small": 1.00}
"""EGS cost over the training-picked static pool must stay at or below these, with p99 wait <= 60 s."""


def default_data() -> Path:
    """`shared/data/servegen-bailian` beside the repository (or beside the folder that holds it)."""
    for base in (REPO.parent, REPO.parent.parent):
        folder = base / "shared" / "data" / "servegen-bailian"
        if folder.is_dir():
            return folder
    return REPO.parent / "shared" / "data" / "servegen-bailian"


def load(data: Path, model: str, clients: bool) -> Trace:
    aggregate = data / f"language-{model}_aggregate_10min.csv"
    per_client = data / f"language-{model}_per_client_10min.csv" if clients else None
    return trace_from_rows(read_servegen(aggregate, model, per_client), clients).trace


def run_model(trace: Trace, scenario: Scenario, protocol: Protocol) -> dict[str, Any]:
    gpn = scenario.gpu_class.gpus_per_node
    score = protocol.score_window
    trace = trace.first_days(score.end_day)

    def run(policy: Policy, label: str) -> Result:
        t0 = time.monotonic()
        result = replace(simulate(trace, scenario, policy, score, protocol.seed)[0], policy=label)
        print(f"  {label:16} {time.monotonic() - t0:5.1f} s", file=sys.stderr)
        return result

    train_k = fit_static_k(trace, scenario, protocol)
    hindsight_k = hindsight_static_k(trace, scenario, protocol)
    egs = fit_egs(trace, scenario, protocol, Policy("egs", PoolSettings(gpn)))
    print(f"  fitted: static K {train_k}, EGS jump quantile {egs.pool.jump_quantile:.4f}", file=sys.stderr)
    results = {
        "egs": run(egs, "egs"),
        "reactive": run(Policy("reactive", PoolSettings(gpn)), "reactive"),
        "static:auto": run(Policy("static", PoolSettings(gpn, static_nodes=train_k)), "static:auto"),
        "seasonal-naive": run(Policy("seasonal-naive", PoolSettings(gpn)), "seasonal-naive"),
        "oracle": run(Policy("oracle", PoolSettings(gpn)), "oracle"),
    }
    hindsight_label = f"static:{hindsight_k}"
    results[hindsight_label] = run(Policy("static", PoolSettings(gpn, static_nodes=hindsight_k)), hindsight_label)
    cost = {name: r.cost_usd for name, r in results.items()}
    return {
        "policies": {name: r.as_json() for name, r in results.items()},
        "train_static_k": train_k,
        "hindsight_static_k": hindsight_k,
        "egs_cost_over_train_static": cost["egs"] / cost["static:auto"],
        "egs_cost_over_oracle": cost["egs"] / cost["oracle"],
        "egs_cost_over_hindsight_static": cost["egs"] / cost[hindsight_label],
    }


def table(models: dict[str, dict[str, Any]]) -> str:
    cols = ("p99_wait_s", "frac_wait_gt_60s", "node_hours", "cost_usd", "eta_promised", "eta_kept_frac",
            "eta_mean_slack_s")  # fmt: skip
    lines = [f"{'model':8} {'policy':16} " + " ".join(f"{c:>16}" for c in cols)]
    for model, out in models.items():
        for name, r in out["policies"].items():
            lines.append(f"{model:8} {name:16} " + " ".join(f"{r[c]:16.4g}" for c in cols))
        ratio = out["egs_cost_over_train_static"]
        lines.append(
            f"{model:8} EGS/static {ratio:.3f} (target <= {TARGETS.get(model, 1.0):.2f}), "
            f"EGS/oracle {out['egs_cost_over_oracle']:.3f}, EGS/hindsight {out['egs_cost_over_hindsight_static']:.3f}, "
            f"K train {out['train_static_k']}, K hindsight {out['hindsight_static_k']}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data(), help="the servegen-bailian folder")
    parser.add_argument("--clients", action="store_true", help="read the per-client files (the client column)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the provisioning delays")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ",".join(MODELS))
    args = parser.parse_args()
    scenario = read_scenario(SCENARIO)
    protocol = Protocol(train_days=10, score_days=4, warmup_days=3, seed=args.seed)
    models: dict[str, dict[str, Any]] = {}
    for model in args.models.split(","):
        print(f"{model}:", file=sys.stderr)
        one = Scenario(scenario.gpu_class, scenario.headroom, {model: scenario.models[model]})
        models[model] = run_model(load(args.data, model, args.clients), one, protocol)
    print(table(models), file=sys.stderr)
    print(json.dumps({"models": models}))


if __name__ == "__main__":
    main()
