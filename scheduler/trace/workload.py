"""What the simulator replays: pod types, the FGD target workload, and the seeded arrival order.

Sits between `data` (raw columns) and `simulate` (the loop). The FGD simulator derives three things
from a pod list, and each one changes the published curves if done differently:

- pod types, keyed by (cpu, gpu_milli, num_gpu, gpu_spec); memory is not part of the key;
- the target workload used by the fragmentation metric: the most common types until they cover 95% of
  the pods, CPU-only types included, their shares renormalised to 1;
- the arrival order: pods sorted by name and shuffled with the seed, then copies drawn uniformly from
  the name-sorted list appended until the next copy would pass 130% of cluster GPU capacity.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from scheduler.trace.data import Nodes, Pods

TUNE_RATIO = 1.3
"""Summed GPU request of the replayed pods, as a multiple of cluster GPU capacity."""

POPULARITY = 0.95
"""Share of pods the target workload's types must cover."""

PodKey = tuple[int, int, int, str]
"""(cpu, gpu_milli, num_gpu, gpu_spec) of a pod type."""


def pod_key(pods: Pods, i: int) -> PodKey:
    return (int(pods.cpu[i]), int(pods.gpu_milli[i]), int(pods.num_gpu[i]), pods.gpu_spec[i])


def allowed_models(spec: str, models: tuple[str, ...]) -> NDArray[np.bool_]:
    """Which node models a `gpu_spec` such as 'V100M16|V100M32' admits; an empty spec admits all."""
    wanted = {m for m in spec.split("|") if m}
    if not wanted:
        return np.ones(len(models), dtype=np.bool_)
    return np.array([m in wanted for m in models], dtype=np.bool_)


@dataclass(frozen=True)
class PodTypes:
    """A table of pod types, one row per key."""

    keys: tuple[PodKey, ...]
    cpu: NDArray[np.int64]
    gpu_milli: NDArray[np.int64]
    num_gpu: NDArray[np.int64]
    access: NDArray[np.bool_]
    """(types, models): may this type run on that GPU model."""

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def of(cls, keys: tuple[PodKey, ...], models: tuple[str, ...]) -> PodTypes:
        return cls(
            keys=keys,
            cpu=np.array([k[0] for k in keys], dtype=np.int64),
            gpu_milli=np.array([k[1] for k in keys], dtype=np.int64),
            num_gpu=np.array([k[2] for k in keys], dtype=np.int64),
            access=np.array([allowed_models(k[3], models) for k in keys], dtype=np.bool_).reshape(
                len(keys), len(models)
            ),
        )


@dataclass(frozen=True)
class TargetWorkload:
    """The pod types fragmentation is measured against, with their renormalised shares."""

    types: PodTypes
    count: NDArray[np.int64]
    """Pods of each type in the workload."""
    covered: int
    """Pods of all the chosen types: a type's share is count / covered."""


def target_workload(pods: Pods, models: tuple[str, ...], popularity: float = POPULARITY) -> TargetWorkload:
    """Most common types first (ties: the larger type first), until `popularity` of the pods."""
    counts = Counter(pod_key(pods, i) for i in range(len(pods)))
    ranked = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
    needed = popularity * len(pods)
    chosen: list[tuple[PodKey, int]] = []
    covered = 0
    for key, count in ranked:
        if covered >= needed:
            break
        chosen.append((key, count))
        covered += count
    return TargetWorkload(
        types=PodTypes.of(tuple(k for k, _ in chosen), models),
        count=np.array([c for _, c in chosen], dtype=np.int64),
        covered=covered,
    )


@dataclass(frozen=True)
class Arrivals:
    """The replayed pod sequence: each entry is a row of the workload's pod table."""

    rows: NDArray[np.intp]
    tuned: int
    """How many of the rows are tuning copies (negative: pods removed to get down to the target)."""


def arrival_order(pods: Pods, nodes: Nodes, rng: np.random.Generator, ratio: float = TUNE_RATIO) -> Arrivals:
    """Shuffle the name-sorted list, then tune it to `ratio` x cluster GPU capacity.

    Tuning up appends copies drawn uniformly from the name-sorted list and stops at the first copy
    whose per-GPU request would take the sum past the target (the simulator compares the per-GPU
    milli, not the pod's total). Tuning down drops random pods until the sum is within the target.
    """
    by_name = np.array(sorted(range(len(pods)), key=lambda i: pods.names[i]), dtype=np.intp)
    rows = rng.permutation(by_name)
    target = ratio * float((nodes.gpus * 1000).sum())
    total = int(pods.total_milli.sum())
    if total > target:
        kept = list(rows)
        while total > target:
            total -= int(pods.total_milli[kept.pop(int(rng.integers(len(kept))))])
        return Arrivals(rows=np.array(kept, dtype=np.intp), tuned=len(kept) - len(rows))
    copies: list[int] = []
    while True:
        row = int(by_name[rng.integers(len(by_name))])
        if total + int(pods.gpu_milli[row]) > target:
            break
        total += int(pods.total_milli[row])
        copies.append(row)
    return Arrivals(rows=np.concatenate([rows, np.array(copies, dtype=np.intp)]), tuned=len(copies))
