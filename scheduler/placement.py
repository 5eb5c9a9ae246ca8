"""The online placement policy: place replicas one at a time, cheapest first, without fragmenting.

Pure: functions of a `Registry`, an `Inventory` and `Request`s, returning a `Plan`. The fleet state,
shapes and taking GPUs live in `scheduler.fleet`, shared with the exact re-plan (`scheduler.replan`);
`scheduler.schedule` is the one entry point that chooses between them.

A replica's *shapes* are the ways it can run: a variant (at or above the quality floor, runnable on
the class) on a GPU class, on the fewest tensor-parallel GPUs that hold it, or across several nodes
when one node is too small. For each replica the policy takes, in order:

1. the lowest marginal cost: room on a GPU that already serves something costs nothing more; a new
   GPU costs its price, amortised by the share a replica takes when the class is shared (MIG
   instances, AMD partitions, time-slicing, KAI, HAMi) because the rest stays usable;
2. the higher quality at equal cost (an FP16 replica where an INT4 one would cost the same);
3. the tightest fit: the GPU (or MIG instance) with the least VRAM left over, and for whole GPUs the
   NVLink domain and node with the fewest idle GPUs, so that whole domains and nodes stay free for
   tensor-parallel and multi-node replicas. That is FGD's lesson for LLM serving: do not spend a
   large contiguous block on a small request while a sliver elsewhere fits it.

Only nodes whose `NoSchedule`/`NoExecute` taints the request tolerates are considered; a replica
kept off the only nodes where it fits by a taint says so.

Replicas of a batch are placed largest first (by their smallest footprint), as first-fit-decreasing.
A tensor-parallel replica lands on all its GPUs or on none: GPUs are chosen before anything is taken,
and it holds them whole, whatever the class's sharing mechanism: its GPUs synchronise every layer, so
a neighbour's load on one of them stalls all of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from scheduler.fleet import (
    MIB_PER_GIB,
    SHARED,
    FleetState,
    GpuState,
    NodeState,
    Option,
    Shape,
    fitting_gpus,
    multi_node,
    room,
    shapes,
    smallest_instance,
    take,
    untolerated,
)
from scheduler.inventory import Inventory
from scheduler.plan import Placement, Plan, Request, Unplaced
from scheduler.registry import Model, Registry, per_gpu_need_mib


def place(requests: Sequence[Request], registry: Registry, inventory: Inventory) -> Plan:
    """Place every replica of `requests` with the online policy (`scheduler.schedule` chooses the engine)."""
    state = FleetState.of(inventory)
    place_all(state, requests, registry)
    return state.plan()


def place_all(state: FleetState, requests: Sequence[Request], registry: Registry) -> None:
    """Place every replica of `requests` on `state`, largest first."""
    options = {r.name: shapes(registry.get(r.model), r, state.classes()) for r in requests}
    for request, replica in largest_first(requests, options):
        place_one(state, registry.get(request.model), request, replica, options[request.name])


def largest_first(requests: Sequence[Request], options: dict[str, list[Shape]]) -> list[tuple[Request, int]]:
    """Every replica of every request, those with the largest smallest-footprint first."""
    footprint = {r.name: min((s.per_gpu_mib * s.gpus for s in options[r.name]), default=math.inf) for r in requests}
    order = sorted(requests, key=lambda r: (-footprint[r.name], r.name))
    return [(r, i) for r in order for i in range(r.replicas)]


def place_one(
    state: FleetState, model: Model, request: Request, replica: int, options: Sequence[Shape] | None = None
) -> Placement | None:
    """Place one replica on the best option now, or record why it cannot be placed."""
    if options is None:
        options = shapes(model, request, state.classes())
    best: Option | None = None
    for shape in options:
        for option in _options(state, shape, state.kinds_for(request, shape.gpu.name)):
            if best is None or option.key < best.key:
                best = option
    if best is None:
        state.unplaced.append(Unplaced(request.name, replica, _why_not(state, model, request, options)))
        return None
    placement = take(state, best, request, replica)
    state.placements.append(placement)
    return placement


def _options(state: FleetState, shape: Shape, kinds: Sequence[str]) -> Iterable[Option]:
    if shape.nodes > 1:
        workers = multi_node(state, kinds, shape)
        if workers:
            cost = sum(_marginal_cost(n, g, shape) for n, gs in workers for g in gs)
            first = workers[0]
            yield Option(_key(cost, shape, 0, first[0]), shape, first[0], first[1], workers=workers)
        return
    for kind in kinds:
        for node in state.candidates(kind):
            if shape.tp == 1 and node.mig:
                mig = smallest_instance(node, shape.per_gpu_mib)
                if mig is not None:
                    cost = mig.profile.gpu_share * shape.gpu.price_per_hour
                    leftover = mig.profile.memory_mib - shape.per_gpu_mib
                    yield Option(_key(cost, shape, leftover, node), shape, node, mig=mig)
            gpus = fitting_gpus(node, shape)
            if gpus is not None:
                cost = sum(_marginal_cost(node, g, shape) for g in gpus)
                leftover = min(room(node, g, shape) for g in gpus) - shape.per_gpu_mib
                yield Option(_key(cost, shape, leftover, node, gpus), shape, node, gpus)


def _key(
    cost: float, shape: Shape, leftover_mib: int, node: NodeState, gpus: Sequence[GpuState] = ()
) -> tuple[float, ...]:
    domain_idle = sum(1 for g in node.gpus if g.holders == 0 and gpus and g.domain == gpus[0].domain)
    quality = -shape.variant.quality
    return (round(cost, 6), quality, leftover_mib, domain_idle, node.idle(), shape.gpu.price_per_hour, node.order)


def _marginal_cost(node: NodeState, gpu: GpuState, shape: Shape) -> float:
    """What taking room on `gpu` adds to the bill: nothing if it already serves something."""
    if gpu.holders > 0:
        return 0.0
    if node.sharing in SHARED and shape.gpus == 1:
        return shape.gpu.price_per_hour * shape.per_gpu_mib / gpu.vram_mib
    return shape.gpu.price_per_hour


def _why_not(state: FleetState, model: Model, request: Request, options: Sequence[Shape]) -> str:
    """What the replica needs at its smallest and the nearest fit (the most VRAM one GPU has free
    where the request may go), or the taint that keeps it off the nodes where it would fit."""
    for shape in options:
        barred = [k for k in state.kinds() if state.first(k).model.name == shape.gpu.name]
        barred = [k for k in barred if k not in state.kinds_for(request, shape.gpu.name)]
        option = next(iter(_options(state, shape, barred)), None)
        if option is not None:
            taint = untolerated(option.node, request)
            assert taint is not None
            named = f"{taint.key}={taint.value}:{taint.effect}" if taint.value else f"{taint.key}:{taint.effect}"
            return (
                f"fits only on nodes tainted {named} (such as {option.node.name}), which the request does not "
                f"tolerate: add a toleration for {taint.key} to the request"
            )
    tolerated = {k for shape in options for k in state.kinds_for(request, shape.gpu.name)} or set(state.kinds())
    room_left = [
        (n.model.name, max([n.available(g) for g in n.gpus] + [m.profile.memory_mib for m in n.mig if m.free] + [0]))
        for kind in tolerated
        for n in state.candidates(kind)
    ]
    best = max(room_left, key=lambda item: item[1], default=None)
    free = f"largest free: {best[0]}, {best[1] / MIB_PER_GIB:.0f} GiB" if best and best[1] else "no GPU is free"
    if options:
        smallest = min(options, key=lambda s: (s.per_gpu_mib * s.gpus, s.gpus))
        variant, need, gpus, nodes = smallest.variant, smallest.per_gpu_mib, smallest.gpus, smallest.nodes
    else:
        allowed = [v for v in model.variants if v.quality >= request.min_quality]
        if not allowed:
            return f"no variant of {model.name} reaches quality {request.min_quality:g} ({free})"
        variant = min(allowed, key=lambda v: per_gpu_need_mib(model, v, 1, request.context, request.concurrency))
        need, gpus, nodes = per_gpu_need_mib(model, variant, 1, request.context, request.concurrency), 1, 1
    needs = f"needs {need / MIB_PER_GIB:.0f} GiB"
    if gpus > 1:
        needs += f" on each of {gpus} GPUs" + (f" over {nodes} nodes" if nodes > 1 else " of one NVLink/xGMI domain")
    if variant.min_compute_capability:
        needs += f" and compute capability >= {variant.min_compute_capability}"
    if variant.min_gfx:
        needs += f" (AMD: {variant.min_gfx} or newer)"
    return f"{needs} ({variant.name}); {free}"
