"""The FGD simulator's protocol: replay one workload with one policy and one seed.

Top of `scheduler.trace`: builds the arrival order and node order from the seed, places the pods one
by one (a pod that fits nowhere fails; nothing ever leaves), and turns the per-pod record into the
published allocation curve: the value at k% is the mean GPU allocation over all pods whose arrived GPU
request, as a share of capacity, rounds to k% (the neighbours k +- 1 when none does).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from scheduler.trace.cluster import Cluster, Request
from scheduler.trace.data import MILLI, Nodes, Pods
from scheduler.trace.policies import POLICIES, Context
from scheduler.trace.workload import PodTypes, arrival_order, pod_key, target_workload

CURVE_POINTS = 131
"""k = 0..130 % of cluster GPU capacity arrived."""


@dataclass(frozen=True)
class Run:
    curve: NDArray[np.float64]
    """Allocated GPU milli as % of capacity, at k = 0..130 % arrived (NaN where no pod fell)."""
    pods: int
    failed: int
    seconds: float
    """Wall time of the placement loop alone."""

    @property
    def pods_per_second(self) -> float:
        return self.pods / self.seconds if self.seconds > 0 else float("inf")


def requests(pods: Pods, models: tuple[str, ...]) -> list[Request]:
    """One request per pod row; rows of the same type share a `kind` (the policies' cache key)."""
    keys = [pod_key(pods, i) for i in range(len(pods))]
    kinds = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    table = PodTypes.of(tuple(kinds), models)
    return [
        Request(
            kind=kinds[k],
            cpu=k[0],
            memory=int(pods.memory[i]),
            gpu_milli=k[1],
            num_gpu=k[2],
            access=table.access[kinds[k]],
        )
        for i, k in enumerate(keys)
    ]


def allocation_curve(arrived: NDArray[np.int64], used: NDArray[np.int64], gpus: int) -> NDArray[np.float64]:
    """The published discretisation: shares rounded half-to-even to whole %, allocation to 0.01 %."""
    arrived_pct = np.round(arrived / gpus / 10)
    used_pct = np.round(used / gpus / 10, 2)
    curve = np.full(CURVE_POINTS, np.nan)
    for k in range(CURVE_POINTS):
        hit = arrived_pct == k
        if not hit.any():
            hit = (arrived_pct >= k - 1) & (arrived_pct <= k + 1)
        if hit.any():
            curve[k] = round(float(used_pct[hit].mean()), 2)
    return curve


def simulate(nodes: Nodes, pods: Pods, policy: str, seed: int) -> Run:
    """Replay `pods` on `nodes`; the seed draws the arrival order, the node order for ties and the
    policy's own random choices, in that order, from one generator."""
    rng = np.random.default_rng(seed)
    order = arrival_order(pods, nodes, rng).rows
    ctx = Context(
        cluster=Cluster.empty(nodes),
        target=target_workload(pods, nodes.models),
        rng=rng,
        rank=rng.permutation(len(nodes)).astype(np.int64),
    )
    choose = POLICIES[policy]
    reqs = requests(pods, nodes.models)
    arrived = np.cumsum(pods.total_milli[order])
    used = np.empty(len(order), dtype=np.int64)
    failed = 0
    start = time.perf_counter()
    for i, row in enumerate(order):
        pod = reqs[row]
        feasible = ctx.cluster.feasible(pod)
        if len(feasible):
            node, gpus = choose(ctx, pod, feasible)
            ctx.cluster.place(node, gpus, pod)
        else:
            failed += 1
        used[i] = ctx.cluster.used_milli
    seconds = time.perf_counter() - start
    gpus_total = ctx.cluster.capacity_milli // MILLI
    return Run(allocation_curve(arrived, used, gpus_total), len(order), failed, seconds)
