"""A new leader's first loop against its next ones, in a controller process of its own.

On the Kubernetes stand-in (localplay/kube_standin.py), over HTTP through the official client, with the fleet and
endpoints of benchmarks/reconcile.py (`--endpoints` endpoints on 32 GPUs each of H100, A100, L40S and L4 nodes):
replica `a` leads until a loop writes nothing, then hands the Lease back (a rolling update's SIGTERM); replica `b`,
started as a fresh Python process (nothing imported, nothing remembered), stands by for two loops, takes the Lease
and runs `--loops` loops as leader. The figure is its first loop as leader against the median of the later ones
(the baseline of the same run); the loops write nothing, so only what is cold differs. Each of `--runs` runs
starts a new process `b`; the medians over the runs are reported.

Prints a line per run on stderr and one JSON object on the last line of stdout.

    python benchmarks/new_leader.py [--endpoints 40] [--loops 4] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # benchmarks/ and localplay/, as the other benchmarks do

from autoscaler.controller import Controller  # noqa: E402
from benchmarks.reconcile import Steady, fill, fleet, log, replica  # noqa: E402
from scheduler.catalog import Catalog  # noqa: E402
from scheduler.registry import Registry  # noqa: E402


def timed(ctl: Controller) -> tuple[float, int]:
    started = time.perf_counter()
    outcome = ctl.reconcile()
    return time.perf_counter() - started, outcome.writes


def new_leader(kubeconfig: Path, loops: int) -> None:
    """Replica `b`, in this fresh process: stands by, leads, and prints its loops as JSON."""
    catalog = Catalog.load()
    registry = Registry.load(REPO / "examples" / "models.yaml", catalog)
    b = replica(kubeconfig, "b", Steady(registry, random.Random(1)), catalog, registry)
    standby = [timed(b)[0] for _ in range(2)]
    if not b.elector.step():
        raise SystemExit("replica b did not take the Lease handed back")
    led = [timed(b) for _ in range(loops)]
    print(json.dumps({"standby_s": standby, "loops_s": [s for s, _ in led], "writes": [w for _, w in led]}))


def run(args: argparse.Namespace, catalog: Catalog, registry: Registry, work: Path) -> dict[str, Any]:
    from localplay.kube_standin import KubeCluster

    kube = KubeCluster().start()
    try:
        fill(kube, catalog, registry, args.endpoints, random.Random(1))
        a = replica(kube.api_client(), "a", Steady(registry, random.Random(1)), catalog, registry)
        a.elector.step()
        while a.reconcile().writes:
            pass
        a.elector.release()
        kubeconfig = kube.kubeconfig(work / "kubeconfig")
        command = [sys.executable, __file__, "--as-new-leader", str(kubeconfig), "--loops", str(args.loops)]
        b = subprocess.run(command, check=True, capture_output=True, text=True)
        return dict(json.loads(b.stdout.strip().splitlines()[-1]))
    finally:
        kube.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--endpoints", type=int, default=40, help="endpoints, on 32 GPUs each (default %(default)s)")
    parser.add_argument("--loops", type=int, default=4, help="loops the new leader runs (default %(default)s)")
    parser.add_argument("--runs", type=int, default=3, help="new leaders, a process each (default %(default)s)")
    parser.add_argument("--as-new-leader", type=Path, help=argparse.SUPPRESS)  # replica b's own process
    args = parser.parse_args()
    if args.as_new_leader:
        new_leader(args.as_new_leader, args.loops)
        return 0
    if args.loops < 2:
        parser.error("--loops: at least 2 (the first, and the later ones it is compared with)")
    catalog = Catalog.load()
    registry = Registry.load(REPO / "examples" / "models.yaml", catalog)
    firsts, laters, standbys, writes = [], [], [], 0
    with tempfile.TemporaryDirectory() as work:
        for i in range(args.runs):
            found = run(args, catalog, registry, Path(work))
            first, later = found["loops_s"][0], statistics.median(found["loops_s"][1:])
            firsts.append(first)
            laters.append(later)
            standbys.append(found["standby_s"][-1])
            writes += sum(found["writes"])
            log(f"run {i + 1}: first loop as leader {first:.3f} s, later {later:.3f} s; standby loops "
                f"{', '.join(f'{s:.3f}' for s in found['standby_s'])} s; writes {found['writes']}")  # fmt: skip
    first, later = statistics.median(firsts), statistics.median(laters)
    print(json.dumps({
        "endpoints": args.endpoints,
        "nodes": len(fleet(catalog, 32 * args.endpoints)),
        "runs": args.runs,
        "first_loop_s": round(first, 3),
        "later_loop_s": round(later, 3),
        "ratio_first_vs_later": round(first / later, 2),
        "standby_loop_s": round(statistics.median(standbys), 3),
        "writes": writes,
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
