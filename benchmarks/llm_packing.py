"""What a batch of LLM endpoints costs per hour on production-shaped fleets it has never seen, engine by engine.

`--fleets N` fleets are generated from `--seed S` (`scheduler.synthetic.mixed_fleet`): 228-259 GPUs
of 11 node kinds of both vendors, every NVIDIA class sharing its GPUs' memory (KAI, HAMi,
time-slicing, or MIG-split), PCIe-only classes in nodes of 4 and 8 GPUs (where 70B models run
tensor parallel over PCIe), AMD whole and partitioned, NVLink/xGMI nodes RDMA-labelled half the
time, about one node in six tainted; prices per GPU-hour drawn at 0.5-1.5x the catalogue's
(`drawn_prices`); and a batch of 40-55 requests (102-177 replicas, quality floors 0.95-1.0,
contexts 4k-32k, concurrency 8-64, some tolerating the taints). Compared in one run, on the same
nodes and prices, by cost per hour per unit of throughput (`Plan.effective_cost_per_hour`, what
the engines minimise; equal to the cost per hour where no replica is tensor parallel):

- naive: one FP16/BF16 replica per whole GPU (tensor-parallel where one GPU is too small), no
  sharing, no quantisation, no MIG instances or partitions, the cheapest class that fits: what a
  cluster without EGS does;
- greedy: the greedy passes alone (`scheduler.placement.place`), in-process: what the online
  engine was before it rounded the LP relaxation, and is where it has no LP in time;
- online: the online engine (`scheduler.schedule`, engine `online`: the cutting-stock LP relaxation
  rounded), in-process: placement wall and CPU time;
- auto: the whole `egs plan` command as a user runs it (the fleet, models and requests as files,
  `--sharing` and `--price` flags, `-o json`), its wall and CPU time from start to the last byte of
  JSON, beside two baselines run just before it: Python's bare start-up and the same command with
  `--engine online`; and the load average. On a busy machine the 2 s deadline cuts the solver short
  (the command's wall time is its CPU time stretched by the others' load), so the command runs once
  more with `--time-limit` stretched by the online command's wall/CPU ratio: `auto_at_quiet_budget`,
  what the 2 s of a quiet machine give it;
- exact: the exact re-plan under `--time-limit` (default 60 s), in-process, with its proven lower
  bound.

Targets, per fleet: auto within 2% of exact's cost with the command in <= 2 s (on a quiet 2-core
machine); online within 3% in <= 0.5 s of placement; in the mean over fleets, exact within 1% of
its lower bound.

`--large NODES` instead puts generated fleets together to NODES nodes with 1,600 replicas and
reports what `exact` and `auto` take under `--time-limit`, in wall time and peak memory: the
deadline must hold however large the fleet.

Progress on stderr; the last line of stdout is one JSON object.

    python benchmarks/llm_packing.py [--fleets 3] [--seed 1] [--time-limit 60]
    python benchmarks/llm_packing.py --large 5000 --time-limit 2
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from scheduler.catalog import Catalog
from scheduler.fleet import FleetState
from scheduler.inventory import SharingPolicy, build_inventory
from scheduler.placement import place, place_all
from scheduler.plan import Plan, Request
from scheduler.registry import Registry
from scheduler.schedule import schedule
from scheduler.synthetic import drawn_prices, mixed_fleet, mixed_requests

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "examples" / "models.yaml"
LARGE_REPLICAS = 1_600
AUTO_LIMIT_S = 2.0
"""`egs plan`'s default --time-limit, which the command's wall time is held to."""
TARGETS = {
    "auto_vs_exact": 1.02,
    "auto_command_seconds": 2.0,
    "online_vs_exact": 1.03,
    "online_seconds": 0.5,
    "exact_vs_lower_bound_mean": 1.01,
}


def summary(plan: Plan, seconds: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "cost_per_hour": plan.cost_per_hour,
        "effective_cost_per_hour": plan.effective_cost_per_hour,
        "gpus_used": plan.gpus_used,
        "replicas": len(plan.placements),
        "unplaced": len(plan.unplaced),
        "pcie_tensor_parallel": sum(1 for p in plan.placements if p.interconnect == "pcie"),
    }
    if seconds is not None:
        out["seconds"] = round(seconds, 3)
    return out


def requests_file(batch: list[Request]) -> dict[str, Any]:
    """The batch as `egs plan --requests` reads it."""
    entries = []
    for r in batch:
        entry: dict[str, Any] = {"name": r.name, "model": r.model, "replicas": r.replicas}
        entry |= {"min_quality": r.min_quality, "context": r.context, "concurrency": r.concurrency}
        if r.tolerations:
            entry["tolerations"] = [
                {"key": t.key, "operator": t.operator, "value": t.value, "effect": t.effect} for t in r.tolerations
            ]
        entries.append(entry)
    return {"requests": entries}


CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
"""The commands run as an installed `egs` does, from compiled bytecode: without it Python compiles
every module of the repository at each start (0.4 s here, where PYTHONDONTWRITEBYTECODE is set)."""


def timed(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds of `command` from start to its exit (its stdout read to the last byte), its CPU
    seconds (user + system), and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=True, env=CHILD_ENV)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, done.stdout


def command_run(
    folder: Path, nodes: list[dict[str, Any]], batch: list[Request], policy: dict[str, str], prices: dict[str, float]
) -> dict[str, Any]:
    """`egs plan` as a user runs it on these files and flags: auto, then online; Python's bare
    start-up before each as the baseline of the same moment."""
    (folder / "nodes.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "NodeList", "items": nodes}))
    (folder / "requests.yaml").write_text(yaml.safe_dump(requests_file(batch), sort_keys=False))
    command = [sys.executable, "-m", "egs.cli", "plan", "--fleet", str(folder / "nodes.yaml"), "--models", str(MODELS)]
    command += ["--requests", str(folder / "requests.yaml"), "-o", "json"]
    command += [f"--sharing={cls}={mechanism}" for cls, mechanism in sorted(policy.items())]
    command += [f"--price={cls}={usd}" for cls, usd in sorted(prices.items())]
    timed([*command, "--engine", "online"])  # compiles the bytecode and warms the page cache
    out: dict[str, Any] = {"load_average_1m": round(os.getloadavg()[0], 2)}
    runs = [("auto", []), ("online", ["--engine", "online"])]
    for name, flags in runs:
        python_s, _, _ = timed([sys.executable, "-c", "pass"])
        wall, cpu, stdout = timed([*command, "--engine", "auto", *flags])
        document = json.loads(stdout)
        out[name] = {
            "cost_per_hour": document["cost_per_hour"],
            "effective_cost_per_hour": document["effective_cost_per_hour"],
            "unplaced": len(document["unplaced"]),
            "engine": document["engine"],
            "command_seconds": round(wall, 3),
            "command_cpu_seconds": round(cpu, 3),
            "python_startup_seconds": round(python_s, 3),
            "vs_python_startup": round(wall / python_s, 1),
        }
    out["auto_vs_online_command"] = round(out["auto"]["command_seconds"] / out["online"]["command_seconds"], 3)
    # On a busy machine the command's wall time is its CPU time stretched by the others' load, and the
    # 2 s deadline cuts the solver short. The same command with the deadline stretched alike gets the
    # CPU a quiet machine gives it in 2 s: what `auto` does there.
    stretch = max(1.0, out["online"]["command_seconds"] / out["online"]["command_cpu_seconds"])
    limit = round(AUTO_LIMIT_S * stretch, 2)
    wall, cpu, stdout = timed([*command, "--time-limit", str(limit)])
    document = json.loads(stdout)
    out["auto_at_quiet_budget"] = {
        "effective_cost_per_hour": document["effective_cost_per_hour"],
        "unplaced": len(document["unplaced"]),
        "engine": document["engine"],
        "time_limit_s": limit,
        "command_seconds": round(wall, 3),
        "command_cpu_seconds": round(cpu, 3),
    }
    return out


def one_fleet(rng: random.Random, catalog: Catalog, folder: Path, time_limit: float) -> dict[str, Any]:
    nodes, policy = mixed_fleet(rng, catalog)
    batch = mixed_requests(rng, registry_of(catalog))
    prices = drawn_prices(rng, catalog, (n.model.name for n in build_inventory(nodes, catalog)))
    priced = catalog.priced(prices)
    registry = registry_of(priced)
    inventory = build_inventory(nodes, priced, sharing=SharingPolicy(policy))
    plain = build_inventory(nodes, priced).where(lambda n: not n.mig)
    fp16 = [replace(r, min_quality=1.0) for r in batch]
    naive_state = FleetState.of(plain)
    place_all(naive_state, fp16, registry)  # one greedy pass, largest first
    naive = naive_state.plan()
    greedy = place(batch, registry, inventory)
    began, cpu = time.perf_counter(), time.process_time()
    online = schedule(batch, registry, inventory, engine="online").plan
    online_s, online_cpu = time.perf_counter() - began, time.process_time() - cpu
    began = time.perf_counter()
    exact = schedule(batch, registry, inventory, engine="exact", time_limit_s=time_limit)
    exact_s = time.perf_counter() - began
    command = command_run(folder, nodes, batch, policy, prices)
    bound = exact.lower_bound
    exact_cost = exact.plan.effective_cost_per_hour
    return {
        "gpus": sum(n.physical_gpus for n in inventory),
        "gpu_kinds": len({(n.model.name, n.sharing, tuple(s.profile.name for s in n.mig)) for n in inventory}),
        "tainted_nodes": sum(1 for n in inventory if n.taints),
        "requests": len(batch),
        "replicas": sum(r.replicas for r in batch),
        "prices": prices,
        "naive": summary(naive),
        "greedy": summary(greedy),
        "online": summary(online, online_s) | {"cpu_seconds": round(online_cpu, 3)},
        "auto": command["auto"],
        "exact": summary(exact.plan, exact_s) | {"engine": exact.engine, "optimal": exact.optimal},
        "command": command,
        "lower_bound": bound,
        "online_vs_exact": round(online.effective_cost_per_hour / exact_cost, 4),
        "greedy_vs_exact": round(greedy.effective_cost_per_hour / exact_cost, 4),
        "auto_vs_exact": round(command["auto"]["effective_cost_per_hour"] / exact_cost, 4),
        "auto_at_quiet_budget_vs_exact": round(
            command["auto_at_quiet_budget"]["effective_cost_per_hour"] / exact_cost, 4
        ),
        "exact_vs_lower_bound": round(exact_cost / bound, 4) if bound else None,
    }


def registry_of(catalog: Catalog) -> Registry:
    return Registry.load(MODELS, catalog)


def large(rng: random.Random, catalog: Catalog, registry: Registry, nodes: int, time_limit: float) -> dict[str, Any]:
    """`nodes` nodes (generated fleets put together) and batches until 1,600 replicas: what `auto`
    and `exact` take under a short deadline, in wall time and peak memory."""
    fleet: list[dict[str, Any]] = []
    policy: dict[str, str] = {}
    while len(fleet) < nodes:
        more, sharing = mixed_fleet(rng, catalog)
        if any(policy.get(cls, mechanism) != mechanism for cls, mechanism in sharing.items()):
            continue  # one sharing mechanism per class across the fleet
        policy |= sharing
        for node in more[: nodes - len(fleet)]:
            node["metadata"]["name"] = f"node-{len(fleet)}"
            fleet.append(node)
    batch: list[Request] = []
    while sum(r.replicas for r in batch) < LARGE_REPLICAS:
        batch += [replace(r, name=f"{r.name}-{len(batch) + i}") for i, r in enumerate(mixed_requests(rng, registry))]
    inventory = build_inventory(fleet, catalog, sharing=SharingPolicy(policy))
    out: dict[str, Any] = {
        "nodes": len(inventory),
        "gpus": sum(n.physical_gpus for n in inventory),
        "replicas": sum(r.replicas for r in batch),
        "time_limit_s": time_limit,
    }
    for engine in ("exact", "auto"):
        began = time.perf_counter()
        done = schedule(batch, registry, inventory, engine=engine, time_limit_s=time_limit)
        out[engine] = summary(done.plan, time.perf_counter() - began)
        out[engine] |= {"engine": done.engine, "lower_bound": done.lower_bound}
        print(f"{engine}: {out[engine]}", file=sys.stderr)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fleets", type=int, default=3, help="fleets to generate (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generator (default %(default)s)")
    parser.add_argument(
        "--time-limit", type=float, default=60.0, help="the exact engine's limit, seconds (default %(default)s)"
    )
    parser.add_argument(
        "--large",
        type=int,
        metavar="NODES",
        help="instead: NODES nodes and 1,600 replicas under --time-limit (e.g. --large 5000 --time-limit 2)",
    )
    args = parser.parse_args()
    catalog = Catalog.load()
    rng = random.Random(args.seed)
    if args.large:
        print(json.dumps(large(rng, catalog, registry_of(catalog), args.large, args.time_limit)))
        return 0
    fleets = []
    with tempfile.TemporaryDirectory(prefix="llm-packing-") as folder:
        for i in range(args.fleets):
            result = one_fleet(rng, catalog, Path(folder), args.time_limit)
            fleets.append(result)
            auto = result["auto"]
            print(
                f"fleet {i}: {result['gpus']} GPUs, {result['replicas']} replicas, per unit of throughput:"
                f" naive ${result['naive']['effective_cost_per_hour']} ({result['naive']['unplaced']} unplaced)"
                f" greedy ${result['greedy']['effective_cost_per_hour']}"
                f" online ${result['online']['effective_cost_per_hour']} ({result['online']['seconds']} s,"
                f" {result['online']['cpu_seconds']} s CPU)"
                f" auto ${auto['effective_cost_per_hour']} ({auto['engine']}, command {auto['command_seconds']} s,"
                f" at the quiet budget ${result['command']['auto_at_quiet_budget']['effective_cost_per_hour']},"
                f" python {auto['python_startup_seconds']} s, load {result['command']['load_average_1m']})"
                f" exact ${result['exact']['effective_cost_per_hour']} ({result['exact']['seconds']} s)"
                f" bound ${result['lower_bound']}",
                file=sys.stderr,
            )
    bounded = [f["exact_vs_lower_bound"] for f in fleets if f["exact_vs_lower_bound"] and not f["exact"]["unplaced"]]
    met = {
        # A plan that leaves more replicas unplaced than the exact one misses, whatever it costs.
        "auto_vs_exact": all(
            f["auto_vs_exact"] <= TARGETS["auto_vs_exact"] and f["auto"]["unplaced"] <= f["exact"]["unplaced"]
            for f in fleets
        ),
        "auto_command_seconds": all(f["auto"]["command_seconds"] <= TARGETS["auto_command_seconds"] for f in fleets),
        # What a quiet machine would give: the deadline stretched by this one's load, CPU held to 2 s.
        "auto_at_quiet_budget": all(
            f["auto_at_quiet_budget_vs_exact"] <= TARGETS["auto_vs_exact"]
            and f["command"]["auto_at_quiet_budget"]["command_cpu_seconds"] <= TARGETS["auto_command_seconds"]
            for f in fleets
        ),
        "online_vs_exact": all(
            f["online_vs_exact"] <= TARGETS["online_vs_exact"] and f["online"]["unplaced"] <= f["exact"]["unplaced"]
            for f in fleets
        ),
        "online_seconds": all(f["online"]["seconds"] <= TARGETS["online_seconds"] for f in fleets),
        "exact_vs_lower_bound_mean": bool(bounded) and statistics.mean(bounded) <= TARGETS["exact_vs_lower_bound_mean"],
    }
    result = {
        "seed": args.seed,
        "fleets": fleets,
        "mean": {
            key: round(statistics.mean(f[key] for f in fleets), 4)
            for key in ("greedy_vs_exact", "online_vs_exact", "auto_vs_exact", "auto_at_quiet_budget_vs_exact")
        }
        | {"exact_vs_lower_bound": round(statistics.mean(bounded), 4) if bounded else None},
        "targets": TARGETS,
        "met": met,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
