"""The online placement policy: place replicas one at a time, cheapest first, without fragmenting.

Pure: functions of a `Registry`, an `Inventory` and `Request`s, returning a `Plan`. The exact re-plan
(`scheduler.replan`) shares `shapes()` and `FleetState` with this module, so both engines agree on
what fits where.

A replica's *shapes* are the ways it can run: a variant (at or above the quality floor, runnable on
the class) on a GPU class, on the fewest tensor-parallel GPUs that hold it, or across several nodes
when one node is too small. For each replica the policy takes, in order:

1. the lowest marginal cost: room on a GPU that already serves something costs nothing more; a new
   GPU costs its price, amortised by the share a replica takes when the class is shared (MIG
   instances, time-slicing, KAI, HAMi) because the rest stays usable;
2. the higher quality at equal cost (an FP16 replica where an INT4 one would cost the same);
3. the tightest fit: the GPU (or MIG instance) with the least VRAM left over, and for whole GPUs the
   NVLink domain and node with the fewest idle GPUs, so that whole domains and nodes stay free for
   tensor-parallel and multi-node replicas. That is FGD's lesson for LLM serving: do not spend a
   large contiguous block on a small request while a sliver elsewhere fits it.

Replicas of a batch are placed largest first (by their smallest footprint), as first-fit-decreasing.
A tensor-parallel replica lands on all its GPUs or on none: GPUs are chosen before anything is taken,
and it holds them whole, whatever the class's sharing mechanism: its GPUs synchronise every layer, so
a neighbour's load on one of them stalls all of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from scheduler.catalog import GpuModel, MigProfile
from scheduler.inventory import Inventory, NodeGpus
from scheduler.plan import Placement, Plan, Request, Unplaced, Worker
from scheduler.registry import Model, Registry, Variant, per_gpu_need_mib

MIB_PER_GIB = 1024
TP_DEGREES = (1, 2, 4, 8)
MAX_NODES_PER_REPLICA = 8
MIG_SLICES = 7
"""Compute slices of a whole MIG-capable GPU: a MIG instance costs its slices' share of the GPU."""
SHARED = frozenset({"timeslice", "kai", "hami"})
"""Mechanisms under which several replicas hold one GPU's VRAM side by side."""


@dataclass(frozen=True)
class Shape:
    """One way to run a replica: `variant` on `tp` GPUs of `gpu` per node, over `nodes` nodes."""

    variant: Variant
    gpu: GpuModel
    tp: int
    nodes: int
    per_gpu_mib: int

    @property
    def gpus(self) -> int:
        return self.tp * self.nodes


def shapes(model: Model, request: Request, classes: Iterable[tuple[GpuModel, int]]) -> list[Shape]:
    """Every way one replica of `request` can run on the given (class, GPUs per node) pairs.

    Per variant and class, the fewest GPUs that hold it: more tensor-parallel GPUs only cost more.
    """
    found = []
    for variant in model.variants:
        if variant.quality < request.min_quality:
            continue
        for gpu, per_node in classes:
            if request.gpu_classes and gpu.name not in request.gpu_classes:
                continue
            if not variant.runs_on(gpu):
                continue
            shape = _smallest_shape(model, variant, request, gpu, per_node)
            if shape is not None:
                found.append(shape)
    return found


def _smallest_shape(model: Model, variant: Variant, request: Request, gpu: GpuModel, per_node: int) -> Shape | None:
    degrees = [d for d in TP_DEGREES if d <= per_node] or [1]
    if gpu.peer_links is False:
        degrees = [1]  # tensor parallelism over PCIe only: keep such replicas to one GPU
    for tp in degrees:
        need = per_gpu_need_mib(model, variant, tp, request.context, request.concurrency)
        if need <= gpu.vram_mib:
            return Shape(variant, gpu, tp, 1, need)
    if not gpu.peer_links:
        return None
    tp = degrees[-1]
    for nodes in range(2, MAX_NODES_PER_REPLICA + 1):
        need = per_gpu_need_mib(model, variant, tp * nodes, request.context, request.concurrency)
        if need <= gpu.vram_mib:
            return Shape(variant, gpu, tp, nodes, need)
    return None


@dataclass
class GpuState:
    """What is left of one whole GPU while a plan is being built."""

    node: str
    index: int
    vram_mib: int
    free_mib: int
    holders: int
    domain: str

    @property
    def key(self) -> str:
        return f"{self.node}/gpu{self.index}"


@dataclass
class MigState:
    """The free MIG instances of one profile on one node."""

    node: str
    profile: MigProfile
    free: int
    taken: int = 0


@dataclass
class NodeState:
    inventory: NodeGpus
    gpus: list[GpuState]
    mig: list[MigState]

    @property
    def name(self) -> str:
        return self.inventory.node

    @property
    def sharing(self) -> str:
        return self.inventory.sharing

    def available(self, gpu: GpuState) -> int:
        """VRAM a new replica may take on `gpu` under this node's mechanism (never over-committed)."""
        return self.inventory.available_mib(gpu)

    def idle(self) -> int:
        return sum(1 for g in self.gpus if g.holders == 0)


@dataclass
class FleetState:
    """The schedulable GPUs of an inventory, mutable while a plan is built; `plan()` freezes it."""

    nodes: list[NodeState]
    placements: list[Placement] = field(default_factory=list)
    unplaced: list[Unplaced] = field(default_factory=list)
    occupied: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def of(cls, inventory: Inventory) -> FleetState:
        nodes = []
        for n in inventory.schedulable():
            gpus = [GpuState(n.node, g.index, g.vram_mib, g.free_mib, g.holders, g.domain) for g in n.gpus]
            mig = [MigState(n.node, s.profile, s.free) for s in n.mig if s.free > 0]
            nodes.append(NodeState(n, gpus, mig))
        return cls(nodes)

    def classes(self) -> list[tuple[GpuModel, int]]:
        """Each GPU class present, with the most GPUs one of its nodes has."""
        per_node: dict[str, tuple[GpuModel, int]] = {}
        for node in self.nodes:
            model, count = node.inventory.model, max(len(node.gpus), 1 if node.mig else 0)
            if model.name not in per_node or per_node[model.name][1] < count:
                per_node[model.name] = (model, count)
        return list(per_node.values())

    def plan(self) -> Plan:
        return Plan(tuple(self.placements), tuple(self.unplaced), dict(self.occupied))


@dataclass(frozen=True)
class _Option:
    """A way to place one replica now; `key` orders options best first."""

    key: tuple[float, ...]
    shape: Shape
    node: NodeState
    gpus: tuple[GpuState, ...] = ()
    mig: MigState | None = None
    workers: tuple[tuple[NodeState, tuple[GpuState, ...]], ...] = ()


def place(
    requests: Sequence[Request],
    registry: Registry,
    inventory: Inventory,
    engine: str = "online",
    time_limit_s: float = 10.0,
) -> Plan:
    """Place every replica of `requests`; `engine` is `online` (this module) or `exact`."""
    if engine == "exact":
        from scheduler.replan import replan

        return replan(requests, registry, inventory, time_limit_s=time_limit_s)
    if engine != "online":
        raise ValueError(f"unknown engine {engine!r}: online or exact")
    state = FleetState.of(inventory)
    for request, replica in largest_first(requests, registry, state):
        place_one(state, registry.get(request.model), request, replica)
    return state.plan()


def largest_first(requests: Sequence[Request], registry: Registry, state: FleetState) -> list[tuple[Request, int]]:
    """Every replica of every request, those with the largest smallest-footprint first."""
    classes = state.classes()
    footprint: dict[str, float] = {}
    for r in requests:
        options = shapes(registry.get(r.model), r, classes)
        footprint[r.name] = min((s.per_gpu_mib * s.gpus for s in options), default=math.inf)
    order = sorted(requests, key=lambda r: (-footprint[r.name], r.name))
    return [(r, i) for r in order for i in range(r.replicas)]


def place_one(state: FleetState, model: Model, request: Request, replica: int) -> Placement | None:
    """Place one replica on the best option now, or record why it cannot be placed."""
    options = shapes(model, request, state.classes())
    best: _Option | None = None
    for shape in options:
        for option in _options(state, shape):
            if best is None or option.key < best.key:
                best = option
    if best is None:
        state.unplaced.append(Unplaced(request.name, replica, _why_not(state, model, request, options)))
        return None
    placement = _take(state, best, request, replica)
    state.placements.append(placement)
    return placement


def _options(state: FleetState, shape: Shape) -> Iterable[_Option]:
    nodes = [n for n in state.nodes if n.inventory.model.name == shape.gpu.name]
    if shape.nodes > 1:
        option = _multi_node(nodes, shape)
        if option is not None:
            yield option
        return
    for node in nodes:
        if shape.tp == 1 and node.mig:
            mig = _smallest_mig(node, shape.per_gpu_mib)
            if mig is not None:
                share = mig.profile.compute_slices / MIG_SLICES
                cost = share * shape.gpu.price_per_hour
                yield _Option(_key(cost, shape, mig.profile.memory_mib - shape.per_gpu_mib, node), shape, node, mig=mig)
        gpus = _fitting_gpus(node, shape)
        if gpus is not None:
            cost = sum(_marginal_cost(node, g, shape) for g in gpus)
            leftover = min(_room(node, g, shape) for g in gpus) - shape.per_gpu_mib
            yield _Option(_key(cost, shape, leftover, node, gpus), shape, node, gpus)


def _key(
    cost: float, shape: Shape, leftover_mib: int, node: NodeState, gpus: Sequence[GpuState] = ()
) -> tuple[float, ...]:
    domain_idle = sum(1 for g in node.gpus if g.holders == 0 and gpus and g.domain == gpus[0].domain)
    return (round(cost, 6), -shape.variant.quality, leftover_mib, domain_idle, node.idle(), shape.gpu.price_per_hour)


def _marginal_cost(node: NodeState, gpu: GpuState, shape: Shape) -> float:
    """What taking room on `gpu` adds to the bill: nothing if it already serves something."""
    if gpu.holders > 0:
        return 0.0
    if node.sharing in SHARED and shape.gpus == 1:
        return shape.gpu.price_per_hour * shape.per_gpu_mib / gpu.vram_mib
    return shape.gpu.price_per_hour


def _room(node: NodeState, gpu: GpuState, shape: Shape) -> int:
    """VRAM the shape may take on `gpu`: a multi-GPU replica takes idle GPUs only, and whole."""
    if shape.gpus > 1:
        return gpu.vram_mib if gpu.holders == 0 else 0
    return node.available(gpu)


def _fitting_gpus(node: NodeState, shape: Shape) -> tuple[GpuState, ...] | None:
    """`tp` GPUs of one peer-link domain with room for the shape, tightest first; None if none."""
    by_domain: dict[str, list[GpuState]] = {}
    for gpu in node.gpus:
        if _room(node, gpu, shape) >= shape.per_gpu_mib:
            by_domain.setdefault(gpu.domain, []).append(gpu)
    best: tuple[GpuState, ...] | None = None
    best_key: tuple[int, int] | None = None
    for fitting in by_domain.values():
        if len(fitting) < shape.tp:
            continue
        fitting.sort(key=lambda g: (_room(node, g, shape), g.index))
        chosen = tuple(fitting[: shape.tp])
        key = (sum(_room(node, g, shape) for g in chosen), len(fitting))
        if best_key is None or key < best_key:
            best, best_key = chosen, key
    return best


def _smallest_mig(node: NodeState, need_mib: int) -> MigState | None:
    fitting = [m for m in node.mig if m.free > 0 and m.profile.memory_mib >= need_mib]
    return min(fitting, key=lambda m: (m.profile.memory_mib, m.profile.name), default=None)


def _multi_node(nodes: list[NodeState], shape: Shape) -> _Option | None:
    """`shape.nodes` nodes, each with a whole idle domain of `tp` GPUs: fullest nodes first."""
    chosen: list[tuple[NodeState, tuple[GpuState, ...]]] = []
    for node in sorted(nodes, key=lambda n: (n.idle(), n.name)):
        gpus = _fitting_gpus(node, shape)
        if gpus is not None:
            chosen.append((node, gpus))
        if len(chosen) == shape.nodes:
            cost = sum(_marginal_cost(n, g, shape) for n, gs in chosen for g in gs)
            return _Option(_key(cost, shape, 0, chosen[0][0]), shape, chosen[0][0], chosen[0][1], workers=tuple(chosen))
    return None


def _take(state: FleetState, option: _Option, request: Request, replica: int) -> Placement:
    shape = option.shape
    price = shape.gpu.price_per_hour
    if option.mig is not None:
        mig = option.mig
        mig.free -= 1
        mig.taken += 1
        share = mig.profile.compute_slices / MIG_SLICES
        state.occupied[f"{mig.node}/mig-{mig.profile.name}#{mig.taken}"] = (share, share * price)
        workers: tuple[Worker, ...] = (Worker(option.node.name, (), mig.profile.name),)
        sharing = "mig"
    else:
        shared = option.node.sharing in SHARED and shape.gpus == 1
        groups = option.workers or ((option.node, option.gpus),)
        for _, gpus in groups:
            for gpu in gpus:
                gpu.free_mib -= shape.per_gpu_mib if shared else gpu.free_mib
                gpu.holders += 1
                state.occupied[gpu.key] = (1.0, price)
        workers = tuple(Worker(node.name, tuple(g.index for g in gpus)) for node, gpus in groups)
        sharing = option.node.sharing if shared else "exclusive"
    return Placement(
        request=request.name,
        replica=replica,
        model=request.model,
        variant=shape.variant.name,
        precision=shape.variant.precision,
        quality=shape.variant.quality,
        gpu_class=shape.gpu.name,
        sharing=sharing,
        tp=shape.tp,
        vram_mib_per_gpu=shape.per_gpu_mib,
        workers=workers,
        namespace=request.namespace,
    )


def _why_not(state: FleetState, model: Model, request: Request, options: Sequence[Shape]) -> str:
    """What the replica needs at its smallest and the nearest fit: the most VRAM one GPU has free."""
    room = max(
        (
            (
                n.inventory.model.name,
                max([n.available(g) for g in n.gpus] + [m.profile.memory_mib for m in n.mig if m.free] + [0]),
            )
            for n in state.nodes
        ),
        key=lambda item: item[1],
        default=None,
    )
    free = f"largest free: {room[0]}, {room[1] / MIB_PER_GIB:.0f} GiB" if room and room[1] else "no GPU is free"
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
