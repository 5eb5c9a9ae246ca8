"""How many GPUs, and what cost per hour, a batch of LLM endpoints takes on a mixed fleet.

A fleet of 216 GPUs of seven kinds and both vendors (H100 under KAI, A100 of which half the nodes are
split into MIG 3g.40gb instances, L4 time-sliced, L40S under HAMi, MI300X, A10G and T4 whole), and 48
requests drawn (seeded) from examples/models.yaml with quality floors. Compared in one run, on the
same nodes:

- naive: one FP16/BF16 replica per whole GPU (tensor-parallel where one GPU is too small), no
  sharing, no quantisation, no MIG instances, the cheapest class that fits: what a cluster without
  EGS does;
- online: the EGS online policy (scheduler.placement), and its time;
- exact: the cutting-stock re-plan (scheduler.replan) under a solver time limit, with the proven
  lower bound from its LP relaxation.

Progress on stderr; the last line of stdout is one JSON object.

    python benchmarks/llm_packing.py [--seed 7] [--requests 48] [--time-limit 20]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

from scheduler.catalog import Catalog
from scheduler.inventory import SharingPolicy, build_inventory
from scheduler.placement import place
from scheduler.plan import Plan, Request
from scheduler.registry import Registry
from scheduler.replan import solve
from scheduler.synthetic import gpu_node

REPO = Path(__file__).resolve().parent.parent
FLEET = (
    # class, nodes, GPUs per node, sharing, MIG layout per node, time-slice replicas
    ("H100-80GB", 4, 8, "kai", None, 1),
    ("A100-80GB", 2, 8, "mig", {"3g.40gb": 16}, 1),
    ("A100-80GB", 2, 8, "mig", None, 1),
    ("L4", 8, 4, "timeslice", None, 4),
    ("L40S", 4, 8, "hami", None, 1),
    ("MI300X", 6, 8, "exclusive", None, 1),
    ("A10G", 4, 8, "exclusive", None, 1),
    ("T4", 8, 1, "exclusive", None, 1),
)
TARGETS = {"online_vs_lower_bound": 1.05, "online_seconds": 1.0}


def fleet(catalog: Catalog) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    for cls, count, per_node, _, mig, replicas in FLEET:
        gpu = catalog.get(cls)
        for _ in range(count):
            nodes.append(gpu_node(f"{cls.lower()}-{len(nodes)}", gpu, per_node, mig, replicas))
    return nodes


def requests(registry: Registry, n: int, seed: int) -> list[Request]:
    rng = random.Random(seed)
    models = [m.name for m in registry if "405b" not in m.name]
    drawn = []
    for i in range(n):
        model = rng.choice(models)
        floor = rng.choice([0.0, 0.0, 0.95, 0.98, 1.0])
        drawn.append(Request(f"r{i:02d}-{model}", model, replicas=rng.choice([1, 1, 2, 3, 4]), min_quality=floor))
    return drawn


def summary(plan: Plan) -> dict[str, Any]:
    return {
        "gpus_used": plan.gpus_used,
        "cost_per_hour": plan.cost_per_hour,
        "replicas": len(plan.placements),
        "unplaced": len(plan.unplaced),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument(
        "--time-limit", type=float, default=20.0, help="solver time limit, seconds (default %(default)s)"
    )
    args = parser.parse_args()
    catalog = Catalog.load()
    registry = Registry.load(REPO / "examples" / "models.yaml", catalog)
    batch = requests(registry, args.requests, args.seed)
    nodes = fleet(catalog)
    sharing = SharingPolicy({cls: mech for cls, _, _, mech, _, _ in FLEET if mech != "mig"})
    inventory = build_inventory(nodes, catalog, sharing=sharing)
    plain = build_inventory(nodes, catalog).where(lambda n: not n.mig)
    gpus = sum(n.physical_gpus for n in inventory)
    print(f"{gpus} GPUs, {len(batch)} requests, {sum(r.replicas for r in batch)} replicas", file=sys.stderr)

    fp16 = [Request(r.name, r.model, r.replicas, min_quality=1.0) for r in batch]
    naive = place(fp16, registry, plain)
    print("naive placed", file=sys.stderr)
    began = time.perf_counter()
    online = place(batch, registry, inventory)
    online_s = time.perf_counter() - began
    print(f"online placed in {online_s:.3f} s; solving the exact re-plan", file=sys.stderr)
    exact = solve(batch, registry, inventory, time_limit_s=args.time_limit)
    result = {
        "fleet_gpus": gpus,
        "gpu_kinds": len({cls for cls, *_ in FLEET}),
        "requests": len(batch),
        "replicas": sum(r.replicas for r in batch),
        "naive": summary(naive),
        "online": summary(online) | {"seconds": round(online_s, 4)},
        "exact": summary(exact.plan)
        | {
            "lower_bound": exact.lower_bound,
            "optimal": exact.optimal,
            "seconds": exact.seconds,
            "time_limit_s": args.time_limit,
            "columns": exact.columns,
        },
        "online_vs_lower_bound": round(online.cost_per_hour / exact.lower_bound, 4) if exact.lower_bound else None,
        "naive_vs_online": round(naive.cost_per_hour / online.cost_per_hour, 3) if online.cost_per_hour else None,
        "targets": TARGETS,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
