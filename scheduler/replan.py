"""The exact re-plan: a cutting-stock model of a batch of requests, solved with `scipy.optimize.milp`.

Where the online policy decides one replica at a time, this engine looks at the whole batch. It is
what an operator runs to re-pack a fleet, and what the benchmarks use for the lower bound.

A model over single GPUs (one binary per replica and GPU) is too large to solve or bound at a few
hundred GPUs. This one is over GPU *kinds* and packing *patterns*, as in cutting stock:

- a shared GPU (time-slicing, KAI, HAMi) is filled by a pattern: a multiset of single-GPU replicas
  whose VRAM fits it (and, under time-slicing, no more replicas than the device plugin admits);
  one integer counts how many GPUs of a kind take each pattern;
- a whole GPU (exclusive), a MIG instance of a profile, and a tensor-parallel group of `tp` GPUs of
  one NVLink/xGMI domain (one unit per node of a multi-node replica) are columns of their own;
- every request's replicas must be covered; an unplaceable replica pays a penalty instead.

Patterns come from column generation: the LP relaxation is solved, each shared GPU kind prices its
best new pattern with a bounded knapsack over VRAM in MiB (and replica count under time-slicing),
itself a small integer programme for HiGHS, and the loop stops when no pattern has a negative
reduced cost.
That LP optimum is a proven lower bound on any plan's cost. The integer programme over the generated
columns then gives the plan, within the time limit; its concrete GPUs are chosen tightest first.

Documented limits: up to about 100 requests and 1,000 GPUs (the benchmark's size solves in seconds);
tensor-parallel replicas on shared classes take idle GPUs only.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from scheduler.inventory import Inventory
from scheduler.placement import (
    MIG_SLICES,
    SHARED,
    FleetState,
    GpuState,
    MigState,
    NodeState,
    Shape,
    _Option,
    _take,
    place_one,
    shapes,
)
from scheduler.plan import Plan, Request
from scheduler.registry import Registry

QUALITY_WEIGHT = 1e-3
"""USD/hour one unit of quality is worth: breaks cost ties toward the better variant, nothing more."""
UNPLACED_PENALTY = 1e4
"""USD/hour charged per replica left unplaced: more than any real GPU, so only the impossible is."""
MAX_ROUNDS = 200
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Column:
    """One integer variable of the model: what it costs, whom it serves, what it uses."""

    kind: str
    """`pattern` (a shared GPU), `whole` (an exclusive GPU), `group` (one node's tensor-parallel GPUs),
    `mig` (an instance) or `unplaced` (the penalty)."""
    cost: float
    cover: dict[str, float]
    """Request name -> replicas this column serves (a fraction for one node of a multi-node replica)."""
    uses: dict[str, float]
    """Resource row -> amount used."""
    request: str = ""
    shape: Shape | None = None
    where: str = ""
    """The domain of a group, the profile of a MIG instance, the resource row of a pattern."""
    items: tuple[tuple[str, Shape, int], ...] = ()
    """A pattern's (request, shape, replicas)."""

    @property
    def key(self) -> tuple[object, ...]:
        return (self.kind, self.request, self.shape, self.where, self.items)


@dataclass
class Solution:
    """The re-plan's outcome and how good it is proven to be."""

    plan: Plan
    lower_bound: float
    """USD/hour no plan of this batch can beat (the LP relaxation over all patterns)."""
    optimal: bool
    """Whether the solver proved the plan optimal over the generated patterns."""
    seconds: float
    columns: int
    unplaced_in_bound: float = 0.0
    """Replicas the relaxation could not place either; the bound then excludes their penalty."""


@dataclass
class _Model:
    requests: dict[str, Request]
    options: dict[str, list[Shape]]
    state: FleetState
    capacity: dict[str, float] = field(default_factory=dict)
    columns: list[Column] = field(default_factory=list)
    seen: set[tuple[object, ...]] = field(default_factory=set)

    def add(self, column: Column) -> None:
        """Keep a column unless it is known already or uses a resource this fleet lacks."""
        key = column.key
        if key not in self.seen and all(row in self.capacity for row in column.uses):
            self.seen.add(key)
            self.columns.append(column)


@dataclass(frozen=True)
class _Bin:
    """A kind of shared GPU: class, room for replicas, whether it already serves (then it is free)."""

    row: str
    gpu_class: str
    room_mib: int
    holders_left: int
    price: float


def replan(requests: Sequence[Request], registry: Registry, inventory: Inventory, time_limit_s: float = 10.0) -> Plan:
    return solve(requests, registry, inventory, time_limit_s).plan


def solve(
    requests: Sequence[Request], registry: Registry, inventory: Inventory, time_limit_s: float = 10.0
) -> Solution:
    started = time.perf_counter()
    state = FleetState.of(inventory)
    classes = state.classes()
    model = _Model(
        requests={r.name: r for r in requests},
        options={r.name: shapes(registry.get(r.model), r, classes) for r in requests},
        state=state,
    )
    bins = _resources(model)
    _fixed_columns(model)
    for b in bins:
        _seed_patterns(model, b)
    bound, unplaced_lp = _generate(model, bins, started, time_limit_s)
    chosen, optimal = _integer(model, max(1.0, time_limit_s - (time.perf_counter() - started)))
    plan = _realise(model, chosen, registry)
    correction = QUALITY_WEIGHT * sum(
        r.replicas * min((s.variant.quality for s in model.options[r.name]), default=0.0) for r in requests
    )
    return Solution(
        plan=plan,
        lower_bound=round(bound + correction - UNPLACED_PENALTY * unplaced_lp, 4),
        optimal=optimal,
        seconds=round(time.perf_counter() - started, 3),
        columns=len(model.columns),
        unplaced_in_bound=round(unplaced_lp, 4),
    )


def _resources(model: _Model) -> list[_Bin]:
    """Capacity rows: idle GPUs per class and per domain, MIG instances per class and profile, and
    the kinds of partly used shared GPUs."""
    cap = model.capacity
    bins: dict[str, _Bin] = {}
    for node in model.state.nodes:
        price = node.inventory.model.price_per_hour
        name = node.inventory.model.name
        for gpu in node.gpus:
            if gpu.holders == 0:
                cap[f"idle:{name}"] = cap.get(f"idle:{name}", 0) + 1
                cap[f"domain:{gpu.domain}"] = cap.get(f"domain:{gpu.domain}", 0) + 1
            if node.sharing in SHARED:
                room, left = node.available(gpu), _holders_left(node, gpu)
                if room <= 0 or left <= 0:
                    continue
                row = f"idle:{name}" if gpu.holders == 0 else f"open:{name}:{room}:{left}"
                if gpu.holders:
                    cap[row] = cap.get(row, 0) + 1
                bins.setdefault(row, _Bin(row, name, room, left, price if gpu.holders == 0 else 0.0))
        for mig in node.mig:
            row = f"mig:{name}:{mig.profile.name}"
            cap[row] = cap.get(row, 0) + mig.free
    return list(bins.values())


def _holders_left(node: NodeState, gpu: GpuState) -> int:
    if node.sharing == "timeslice":
        return node.inventory.timeslice_replicas - gpu.holders
    return 1 << 16


def _fixed_columns(model: _Model) -> None:
    """Every column that needs no pricing: whole GPUs, tensor-parallel groups, MIG instances, the penalty."""
    shared_classes = {n.inventory.model.name for n in model.state.nodes if n.sharing in SHARED}
    domains: dict[str, list[str]] = defaultdict(list)
    for node in model.state.nodes:
        for gpu in node.gpus:
            if gpu.domain not in domains[node.inventory.model.name]:
                domains[node.inventory.model.name].append(gpu.domain)
    mig_profiles = {(n.inventory.model.name, m.profile.name): m.profile for n in model.state.nodes for m in n.mig}
    for name, options in model.options.items():
        for shape in options:
            quality = QUALITY_WEIGHT * shape.variant.quality
            cls, price = shape.gpu.name, shape.gpu.price_per_hour
            if shape.gpus == 1 and cls not in shared_classes:
                model.add(Column("whole", price - quality, {name: 1.0}, {f"idle:{cls}": 1.0}, name, shape))
            if shape.gpus > 1:
                for domain in domains[cls]:
                    uses = {f"idle:{cls}": float(shape.tp), f"domain:{domain}": float(shape.tp)}
                    cost = shape.tp * price - quality / shape.nodes
                    model.add(Column("group", cost, {name: 1 / shape.nodes}, uses, name, shape, domain))
            if shape.gpus == 1:
                for (mig_cls, _), profile in mig_profiles.items():
                    if mig_cls == cls and profile.memory_mib >= shape.per_gpu_mib:
                        cost = profile.compute_slices / MIG_SLICES * price - quality
                        row = f"mig:{cls}:{profile.name}"
                        model.add(Column("mig", cost, {name: 1.0}, {row: 1.0}, name, shape, profile.name))
        model.add(Column("unplaced", UNPLACED_PENALTY, {name: 1.0}, {}, name))


def _items(model: _Model, b: _Bin) -> list[tuple[str, Shape]]:
    """(request, shape) of every single-GPU shape that fits an empty `b`."""
    return [
        (name, shape)
        for name, options in model.options.items()
        for shape in options
        if shape.gpus == 1 and shape.gpu.name == b.gpu_class and shape.per_gpu_mib <= b.room_mib
    ]


def _pattern_column(b: _Bin, counts: dict[tuple[str, Shape], int]) -> Column:
    cover: dict[str, float] = defaultdict(float)
    for (name, _), k in counts.items():
        cover[name] += k
    quality = sum(k * shape.variant.quality for (_, shape), k in counts.items())
    items = tuple(sorted(((n, s, k) for (n, s), k in counts.items()), key=lambda i: (i[0], i[1].variant.name)))
    return Column("pattern", b.price - QUALITY_WEIGHT * quality, dict(cover), {b.row: 1.0}, where=b.row, items=items)


def _seed_patterns(model: _Model, b: _Bin) -> None:
    """One pattern per item, as many copies as fit: enough for a first feasible LP."""
    for name, shape in _items(model, b):
        k = min(b.room_mib // shape.per_gpu_mib, b.holders_left, model.requests[name].replicas)
        if k > 0:
            model.add(_pattern_column(b, {(name, shape): k}))


def _generate(model: _Model, bins: list[_Bin], started: float, time_limit_s: float) -> tuple[float, float]:
    """Column generation; returns a proven lower bound on the LP optimum and the replicas the last
    LP leaves unplaced.

    Each round's bound is the LP objective plus, for every shared GPU kind, its capacity times the
    most negative reduced cost its pricing found (a Lagrangian bound, valid at any round); at
    convergence that is the LP optimum itself. Stopping early on time keeps the bound honest.
    """
    bound, unplaced = -math.inf, 0.0
    for _ in range(MAX_ROUNDS):
        c, a_ub, b_ub, rows = _matrix(model)
        result = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=(0, None), method="highs")
        if result.status != 0 or result.x is None or result.fun is None:
            raise RuntimeError(f"the LP relaxation failed: {result.message}")
        unplaced = sum(float(x) for x, col in zip(result.x, model.columns, strict=True) if col.kind == "unplaced")
        duals = dict(zip(rows, (-float(m) for m in result.ineqlin.marginals), strict=True))
        added, shortfall = 0, 0.0
        for b in bins:
            column = _price(model, b, duals)
            if column is None:
                continue
            reduced = column.cost - sum(duals.get(f"cover:{n}", 0.0) * k for n, k in column.cover.items())
            reduced += duals.get(b.row, 0.0)
            if reduced < -1e-7:
                shortfall += model.capacity[b.row] * reduced
                before = len(model.columns)
                model.add(column)
                added += len(model.columns) - before
        bound = max(bound, float(result.fun) + shortfall)
        if not added or time.perf_counter() - started > time_limit_s / 2:
            break
    return bound, unplaced


def _price(model: _Model, b: _Bin, duals: dict[str, float]) -> Column | None:
    """The pattern of `b` worth most at these duals: a bounded knapsack over VRAM in MiB (and over
    replica count under time-slicing), solved exactly by HiGHS through `milp`."""
    items = [
        (name, shape, duals.get(f"cover:{name}", 0.0) + QUALITY_WEIGHT * shape.variant.quality)
        for name, shape in _items(model, b)
    ]
    items = [item for item in items if item[2] > 1e-12]
    if not items:
        return None
    values = np.array([-v for _, _, v in items])
    rows = [[shape.per_gpu_mib for _, shape, _ in items]]
    upper = [b.room_mib]
    if b.holders_left < len(items) * max(model.requests[n].replicas for n, _, _ in items):
        rows.append([1] * len(items))
        upper.append(b.holders_left)
    result = milp(
        values,
        constraints=LinearConstraint(np.array(rows, dtype=float), -np.inf, np.array(upper, dtype=float)),
        integrality=np.ones(len(items), dtype=np.int64),
        bounds=Bounds(0, np.array([model.requests[n].replicas for n, _, _ in items], dtype=float)),
    )
    if result.x is None or -result.fun <= 0:
        return None
    counts = {
        (name, shape): round(float(k)) for (name, shape, _), k in zip(items, result.x, strict=True) if round(float(k))
    }
    return _pattern_column(b, counts) if counts else None


def _matrix(model: _Model) -> tuple[FloatArray, FloatArray, FloatArray, list[str]]:
    """The model as `A_ub x <= b_ub`: coverage rows negated, then capacity rows."""
    rows = [f"cover:{n}" for n in model.requests] + sorted(model.capacity)
    index = {r: i for i, r in enumerate(rows)}
    a = np.zeros((len(rows), len(model.columns)))
    for j, col in enumerate(model.columns):
        for name, k in col.cover.items():
            a[index[f"cover:{name}"], j] = -k
        for row, amount in col.uses.items():
            a[index[row], j] = amount
    b = np.array(
        [
            -model.requests[r.removeprefix("cover:")].replicas if r.startswith("cover:") else model.capacity[r]
            for r in rows
        ]
    )
    return np.array([col.cost for col in model.columns]), a, b, rows


def _integer(model: _Model, time_limit_s: float) -> tuple[list[int], bool]:
    c, a, b, _ = _matrix(model)
    result = milp(
        c,
        constraints=LinearConstraint(a, -np.inf, b),
        integrality=np.ones(len(c), dtype=np.int64),
        bounds=Bounds(0, np.inf),
        options={"time_limit": time_limit_s},
    )
    if result.x is None:
        raise RuntimeError(f"the integer re-plan found no solution: {result.message}")
    return [round(float(x)) for x in result.x], result.status == 0


def _realise(model: _Model, chosen: list[int], registry: Registry) -> Plan:
    """Turn column counts into concrete GPUs through the online policy's `_take`: tensor-parallel
    groups first, then MIG instances, whole GPUs and shared patterns; whatever the integer solution
    left unplaced (or a GPU the mapping could not find) goes to the online policy, which places it
    if it can and otherwise records why not."""
    state = model.state
    left = {name: r.replicas for name, r in model.requests.items()}
    replica = dict.fromkeys(model.requests, 0)

    def take(option: _Option, name: str) -> None:
        if left[name] > 0:
            state.placements.append(_take(state, option, model.requests[name], replica[name]))
            replica[name] += 1
            left[name] -= 1

    order = {"group": 0, "mig": 1, "whole": 2, "pattern": 3, "unplaced": 4}
    picked = sorted(
        ((c, n) for c, n in zip(model.columns, chosen, strict=True) if n > 0), key=lambda p: order[p[0].kind]
    )
    for col, n in picked:
        shape = col.shape
        if col.kind == "group" and shape is not None:
            for _ in range(n // shape.nodes):
                workers = _group_gpus(state, shape, col.where)
                if workers:
                    take(_Option((), shape, workers[0][0], workers[0][1], workers=workers), col.request)
        elif col.kind == "mig" and shape is not None:
            for _ in range(n):
                mig = _free_mig(state, shape.gpu.name, col.where)
                if mig is not None:
                    take(_Option((), shape, _node(state, mig.node), mig=mig), col.request)
        elif col.kind == "whole" and shape is not None:
            for _ in range(n):
                found = _idle_gpu(state, shape.gpu.name)
                if found is not None:
                    take(_Option((), shape, found[0], (found[1],)), col.request)
        elif col.kind == "pattern":
            for _ in range(n):
                gpu = _bin_gpu(state, col.where)
                if gpu is not None:
                    for name, item, k in col.items:
                        for _ in range(k):
                            take(_Option((), item, gpu[0], (gpu[1],)), name)
    for name, n in left.items():
        for _ in range(n):
            place_one(state, registry.get(model.requests[name].model), model.requests[name], replica[name])
            replica[name] += 1
    return state.plan()


def _group_gpus(state: FleetState, shape: Shape, domain: str) -> tuple[tuple[NodeState, tuple[GpuState, ...]], ...]:
    """Idle GPUs for one tensor-parallel replica: `tp` of `domain` (or of one domain per node for a
    multi-node replica, fullest nodes first); empty when they are not there."""
    workers = []
    for node in sorted(state.nodes, key=lambda n: (n.idle(), n.name)):
        if node.inventory.model.name != shape.gpu.name:
            continue
        by_domain: dict[str, list[GpuState]] = defaultdict(list)
        for g in node.gpus:
            if g.holders == 0 and (shape.nodes > 1 or g.domain == domain):
                by_domain[g.domain].append(g)
        group = next((gs[: shape.tp] for gs in by_domain.values() if len(gs) >= shape.tp), None)
        if group is not None:
            workers.append((node, tuple(group)))
        if len(workers) == shape.nodes:
            return tuple(workers)
    return ()


def _node(state: FleetState, name: str) -> NodeState:
    return next(n for n in state.nodes if n.name == name)


def _free_mig(state: FleetState, gpu_class: str, profile: str) -> MigState | None:
    for node in state.nodes:
        if node.inventory.model.name == gpu_class:
            for mig in node.mig:
                if mig.profile.name == profile and mig.free > 0:
                    return mig
    return None


def _idle_gpu(state: FleetState, gpu_class: str) -> tuple[NodeState, GpuState] | None:
    """An idle GPU of the class, in the domain with the fewest idle GPUs (keep big domains whole)."""
    best: tuple[int, NodeState, GpuState] | None = None
    for node in state.nodes:
        if node.inventory.model.name != gpu_class:
            continue
        for gpu in node.gpus:
            if gpu.holders == 0:
                idle_in_domain = sum(1 for g in node.gpus if g.holders == 0 and g.domain == gpu.domain)
                if best is None or idle_in_domain < best[0]:
                    best = (idle_in_domain, node, gpu)
    return None if best is None else (best[1], best[2])


def _bin_gpu(state: FleetState, row: str) -> tuple[NodeState, GpuState] | None:
    """A GPU of the kind a pattern's resource row names."""
    kind, cls, *rest = row.split(":")
    for node in state.nodes:
        if node.inventory.model.name != cls or node.sharing not in SHARED:
            continue
        for gpu in node.gpus:
            if kind == "idle" and gpu.holders == 0:
                return node, gpu
            if kind == "open" and gpu.holders > 0 and rest == [str(node.available(gpu)), str(_holders_left(node, gpu))]:
                return node, gpu
    return None
