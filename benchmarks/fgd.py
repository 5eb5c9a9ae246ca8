"""Placement benchmark on the Alibaba GPU trace under the FGD paper's simulator protocol.

Replays one workload (or all 17) with each policy and seed, and compares the mean GPU allocation at
100% and 130% of capacity arrived with the paper's published means (fgd-simulator-expected-results).
Progress goes to stderr; the last line of stdout is one JSON object.

    python benchmarks/fgd.py --workload default --seeds 42-51 --policies random,bestfit,fgd,egs
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from scheduler.trace.data import WORKLOADS, Nodes, Pods, load_nodes, load_pods, pod_file
from scheduler.trace.policies import POLICIES
from scheduler.trace.simulate import Run, simulate

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "alibaba-gpu-v2023"
EXPECTED = "fgd-simulator-expected-results/analysis_allo_discrete.csv"
PUBLISHED_NAMES = {"random": "01-Random", "bestfit": "05-BestFit", "fgd": "06-FGD"}


def parse_seeds(text: str) -> list[int]:
    """'42-51' or '42,45,47' (or a mix) to a list of seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds.extend(range(int(lo), int(hi or lo) + 1))
    return seeds


def published(data_dir: Path, workload: str) -> dict[str, tuple[float, float]]:
    """Mean published allocation at 100% and 130% per policy name of ours, where the paper has it."""
    path = data_dir.parent / EXPECTED
    if not path.is_file():
        return {}
    rows: dict[str, list[tuple[float, float]]] = {}
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            if r["workload"] == f"openb_pod_list_{workload}":
                rows.setdefault(r["sc_policy"], []).append((float(r["100"]), float(r["130"])))
    out = {}
    for ours, theirs in PUBLISHED_NAMES.items():
        if theirs in rows:
            values = np.array(rows[theirs])
            out[ours] = (float(values[:, 0].mean()), float(values[:, 1].mean()))
    return out


@cache
def _inputs(data_dir: Path, workload: str) -> tuple[Nodes, Pods]:
    """Read once per worker process and workload."""
    return load_nodes(data_dir), load_pods(data_dir, workload)


def _run(job: tuple[Path, str, str, int]) -> tuple[str, str, int, Run]:
    data_dir, workload, policy, seed = job
    nodes, pods = _inputs(data_dir, workload)
    return workload, policy, seed, simulate(nodes, pods, policy, seed)


def summarise(workload: str, runs: dict[str, list[Run]], expected: dict[str, tuple[float, float]]) -> dict[str, Any]:
    policies: dict[str, dict[str, float | None]] = {}
    for name, rs in runs.items():
        pub = expected.get(name)
        policies[name] = {
            "alloc_100": round(float(np.mean([r.curve[100] for r in rs])), 2),
            "alloc_130": round(float(np.mean([r.curve[130] for r in rs])), 2),
            "published_100": None if pub is None else round(pub[0], 2),
            "published_130": None if pub is None else round(pub[1], 2),
        }
    egs = runs.get("egs")
    pps = None if egs is None else round(sum(r.pods for r in egs) / sum(r.seconds for r in egs))
    return {"workload": workload, "policies": policies, "pods_per_second": pps}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="default", help="a workload name, or 'all' for the 17")
    ap.add_argument("--seeds", default="42-51", help="the protocol's seeds, FIRST-LAST or a,b,c (default %(default)s)")
    ap.add_argument(
        "--policies", default="random,bestfit,fgd,egs", help="comma-separated policies (default %(default)s)"
    )
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the alibaba-gpu-v2023 folder")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="processes (default %(default)s)")
    args = ap.parse_args(argv)

    data_dir: Path = args.data.resolve()
    workloads = list(WORKLOADS) if args.workload == "all" else [args.workload]
    policies = args.policies.split(",")
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        ap.error(f"unknown policies {unknown}; known: {sorted(POLICIES)}")
    missing = [w for w in workloads if not pod_file(data_dir, w).is_file()]
    if missing:
        sys.exit(f"error: no pod list for {missing} under {data_dir / 'csv'} (pass --data DIR)")

    jobs = [(data_dir, w, p, s) for w in workloads for p in policies for s in parse_seeds(args.seeds)]
    runs: dict[str, dict[str, list[Run]]] = {w: {p: [] for p in policies} for w in workloads}
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for done, (w, p, s, run) in enumerate(pool.map(_run, jobs), 1):
            runs[w][p].append(run)
            print(
                f"[{done}/{len(jobs)}] {w} {p} seed {s}: alloc@100 {run.curve[100]:.2f} "
                f"alloc@130 {run.curve[130]:.2f} ({run.pods_per_second:.0f} pods/s, "
                f"{time.perf_counter() - start:.0f}s)",
                file=sys.stderr,
            )
    results = [summarise(w, runs[w], published(data_dir, w)) for w in workloads]
    for r in results:
        for name, v in r["policies"].items():
            pub = "" if v["published_130"] is None else f" (published {v['published_100']}, {v['published_130']})"
            print(f"{r['workload']:12s} {name:8s} {v['alloc_100']:6.2f} {v['alloc_130']:6.2f}{pub}", file=sys.stderr)
    out: dict[str, Any] | list[dict[str, Any]] = results[0] if len(results) == 1 else results
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
