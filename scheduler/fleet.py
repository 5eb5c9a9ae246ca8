"""The fleet while a plan is being built: the ways a replica can run, what each GPU has left, and taking it.

Both engines (the online policy in `scheduler.placement`, the exact re-plan in `scheduler.replan`)
read and change the fleet only through this module, so that they agree on what fits where:

- `shapes()`: the ways one replica of a request can run (variant x GPU class x tensor-parallel GPUs
  x nodes), quality floors and compute-capability / gfx minima already applied, each with the
  throughput its interconnect leaves it (`scheduler.interconnect`) and so its cost per unit of
  throughput (`Shape.cost`), which is what the engines compare;
- `FleetState`: mutable copies of the inventory's schedulable GPUs, MIG instances and AMD partitions,
  grouped so that nodes in the same state are looked at once (a fleet of 5,000 mostly idle nodes
  has a handful of distinct states, not 5,000);
- `take()`: hold the GPUs (or the instance) of one chosen `Option` and return its `Placement`;
- `untolerated()`: the taint of a node that a request's pods do not tolerate, if any.

Taints: a replica goes only where its pod tolerates every `NoSchedule` and `NoExecute` taint. Its
tolerations are the request's own plus `GPU_TOLERATIONS`, which every manifest EGS writes carries
(`scheduler.manifests`): the taints GPU node pools usually get (`nvidia.com/gpu`, `amd.com/gpu`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from scheduler.catalog import GpuModel, MigProfile
from scheduler.interconnect import tensor_parallel_throughput
from scheduler.inventory import Inventory, NodeGpus, Taint
from scheduler.plan import Placement, Plan, Request, Toleration, Unplaced, Worker
from scheduler.registry import Model, Variant, per_gpu_need_mib

MIB_PER_GIB = 1024
TP_DEGREES = (1, 2, 4, 8)
MAX_NODES_PER_REPLICA = 8
UNPLACED_PENALTY = 1e4
"""USD/hour the exact engine and the shadow-price LP charge per replica left out: more than any real
GPU, so that they leave out only what cannot be placed."""
ORDER_TIE_USD = 1e-4
"""USD/hour more per replica left out for each place a request stands earlier in its batch: where
leaving out one request's replicas or another's costs the same, the later one waits, as it would had
they been placed one after another (the API answers an endpoint on what those before it left)."""


def unplaced_penalty(position: int, count: int) -> float:
    """USD/hour charged per replica left out of the request at `position` of a batch of `count`."""
    return UNPLACED_PENALTY + ORDER_TIE_USD * (count - position)


SHARED = frozenset({"timeslice", "kai", "hami"})
"""Mechanisms under which several replicas hold one GPU's VRAM side by side."""
SCHEDULING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})
"""Taint effects that keep a pod off a node; `PreferNoSchedule` only discourages it."""
GPU_TOLERATIONS = (Toleration("nvidia.com/gpu", "Exists"), Toleration("amd.com/gpu", "Exists"))
"""What every EGS server pod tolerates: the usual taints of GPU node pools, whatever their effect."""


@dataclass(frozen=True)
class Shape:
    """One way to run a replica: `variant` on `tp` GPUs of `gpu` per node, over `nodes` nodes."""

    variant: Variant
    gpu: GpuModel
    tp: int
    nodes: int
    per_gpu_mib: int
    throughput: float = 1.0
    """The share of its undivided throughput the replica keeps over its interconnect (1.0 on one GPU)."""

    @property
    def gpus(self) -> int:
        return self.tp * self.nodes

    def cost(self, price: float) -> float:
        """`price` (USD/hour of what the replica holds) per unit of throughput: what the engines compare."""
        return price / self.throughput

    @property
    def link(self) -> str:
        """What its tensor-parallel GPUs talk over: `nvlink`, `xgmi`, `pcie`, or `none` on one GPU."""
        return self.gpu.interconnect if self.tp > 1 else "none"


def shapes(model: Model, request: Request, classes: Iterable[tuple[GpuModel, int]]) -> list[Shape]:
    """Every way one replica of `request` can run on the given (class, GPUs per node) pairs.

    Per variant and class, the fewest GPUs of one tensor-parallel domain (NVLink/xGMI, or PCIe
    root) that hold it: more GPUs only cost more and lose more throughput to the all-reduce. A
    replica larger than a node's domain spans nodes, which only nodes with RDMA take
    (`FleetState.kinds_for`).
    """
    found = []
    for variant in model.variants:
        if variant.quality < request.min_quality or (request.variants and variant.name not in request.variants):
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


def _smallest_shape(model: Model, variant: Variant, request: Request, gpu: GpuModel, per_domain: int) -> Shape | None:
    degrees = [d for d in TP_DEGREES if d <= per_domain] or [1]
    context, concurrency = request.context, request.concurrency
    for tp in degrees:
        need = per_gpu_need_mib(model, variant, tp, context, concurrency)
        if need <= gpu.vram_mib:
            throughput = tensor_parallel_throughput(model, variant, gpu, tp, context, concurrency)
            return Shape(variant, gpu, tp, 1, need, throughput)
    tp = degrees[-1]
    for nodes in range(2, MAX_NODES_PER_REPLICA + 1):
        need = per_gpu_need_mib(model, variant, tp * nodes, context, concurrency)
        if need <= gpu.vram_mib:
            throughput = tensor_parallel_throughput(model, variant, gpu, tp, context, concurrency)
            return Shape(variant, gpu, tp, nodes, need, throughput)
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
    """The free instances of one profile on one node: NVIDIA MIG instances or AMD partitions."""

    node: str
    profile: MigProfile
    free: int
    resource: str
    """The extended resource a pod requests for one instance (`nvidia.com/mig-3g.40gb`, `amd.com/gpu`)."""
    taken: int = 0


@dataclass
class NodeState:
    inventory: NodeGpus
    gpus: list[GpuState]
    mig: list[MigState]
    order: int = 0
    """Position in the fleet: ties between equally good nodes go to the first."""
    kind: str = ""
    """Nodes of one class, sharing mechanism and taints: interchangeable for the exact engine."""

    @property
    def name(self) -> str:
        return self.inventory.node

    @property
    def sharing(self) -> str:
        return self.inventory.sharing

    @property
    def model(self) -> GpuModel:
        return self.inventory.model

    def available(self, gpu: GpuState) -> int:
        """VRAM a new replica may take on `gpu` under this node's mechanism (never over-committed)."""
        return self.inventory.available_mib(gpu)

    def idle(self) -> int:
        return sum(1 for g in self.gpus if g.holders == 0)

    def signature(self) -> tuple[object, ...]:
        """What a placement decision reads of this node; two nodes with one signature are interchangeable."""
        domains: dict[str, int] = {}
        gpus = tuple((g.free_mib, g.holders, domains.setdefault(g.domain, len(domains))) for g in self.gpus)
        return (gpus, tuple((m.profile.name, m.free) for m in self.mig))

    def has_room(self) -> bool:
        return any(self.available(g) > 0 for g in self.gpus) or any(m.free > 0 for m in self.mig)


@dataclass(frozen=True)
class _Pristine:
    """An inventory's nodes as a plan starts from them, never changed: the states of one inventory
    (a call's several passes) share it and copy a node only when they look at it (`_Nodes`)."""

    inventory: Inventory
    nodes: list[NodeState]
    groups: dict[str, dict[tuple[object, ...], list[int]]]
    """As `FleetState._groups`, before anything is placed."""
    signatures: list[tuple[object, ...]]
    """The nodes' distinct signatures, in the order of their first node."""
    first: dict[str, int]
    """kind -> the `order` of its first node."""
    classes: list[tuple[GpuModel, int]]

    @classmethod
    def of(cls, inventory: Inventory) -> _Pristine:
        nodes: list[NodeState] = []
        kinds: dict[tuple[object, ...], str] = {}
        groups: dict[str, dict[tuple[object, ...], list[int]]] = {}
        signatures: dict[tuple[object, ...], None] = {}
        first: dict[str, int] = {}
        per_domain: dict[str, tuple[GpuModel, int]] = {}
        for n in inventory.nodes:
            if not n.schedulable:
                continue
            seed = _seed(n, inventory.memo)
            if seed.identity not in kinds:
                same_class = sum(1 for other in kinds if other[0] == n.model.name)
                kinds[seed.identity] = f"{n.model.name}~{same_class}" if same_class else n.model.name
            kind, order = kinds[seed.identity], len(nodes)
            nodes.append(NodeState(n, seed.gpus, seed.mig, order, kind))
            first.setdefault(kind, order)
            _file(groups, kind, order, seed.signature)
            if seed.signature is not None:
                signatures.setdefault(seed.signature)
            if n.model.name not in per_domain or per_domain[n.model.name][1] < seed.per_domain:
                per_domain[n.model.name] = (n.model, seed.per_domain)
        return cls(inventory, nodes, groups, list(signatures), first, list(per_domain.values()))


@dataclass(frozen=True)
class _Seed:
    """What a plan starts from on one node, read once per node object (`Inventory.memo`) and shared by the
    pristine nodes of every inventory it is in: never changed, as they are not."""

    gpus: list[GpuState]
    mig: list[MigState]
    """Its instances of a profile with one free, at least."""
    identity: tuple[object, ...]
    """Its class, sharing, time-slicing replicas, blocking taints and RDMA: nodes of one are of one kind."""
    signature: tuple[object, ...] | None
    """What it is filed by (`_filed_as`): `NodeState.signature`, None where it has no room."""
    per_domain: int
    """The most GPUs it has in one tensor-parallel domain (1 for a node of instances alone)."""


def _seed(n: NodeGpus, memo: dict[int, tuple[NodeGpus, object]]) -> _Seed:
    """`n`'s seed, from `memo` where it was read before (held with its node, so its id names no other)."""
    held = memo.get(id(n))
    if held is not None and held[0] is n and isinstance(held[1], _Seed):
        return held[1]
    gpus = [GpuState(n.node, g.index, g.vram_mib, g.free_mib, g.holders, g.domain) for g in n.gpus]
    mig = [MigState(n.node, s.profile, s.free, s.resource) for s in n.mig if s.free > 0]
    blocking = tuple(sorted((t.key, t.value, t.effect) for t in n.taints if t.effect in SCHEDULING_EFFECTS))
    state = NodeState(n, gpus, mig)
    domains: dict[str, int] = {}
    for gpu in gpus:
        domains[gpu.domain] = domains.get(gpu.domain, 0) + 1
    seed = _Seed(
        gpus,
        mig,
        (n.model.name, n.sharing, n.timeslice_replicas, blocking, n.rdma),
        _filed_as(state),
        max(domains.values(), default=1 if mig else 0),
    )
    memo[id(n)] = (n, seed)
    return seed


class _Nodes:
    """A state's nodes by `order`: a pristine node is copied the first time it is indexed, so that
    a pass over a fleet of thousands of mostly idle nodes copies the few it places on or looks at.
    Iterating reads the nodes as they are now, copying none: callers that iterate only read."""

    def __init__(self, pristine: list[NodeState]) -> None:
        self._pristine = pristine
        self._own: list[NodeState | None] = [None] * len(pristine)

    def __len__(self) -> int:
        return len(self._pristine)

    def __getitem__(self, order: int) -> NodeState:
        node = self._own[order]
        if node is None:
            node = self._own[order] = _copied(self._pristine[order])
        return node

    def __iter__(self) -> Iterator[NodeState]:
        return (own or pristine for own, pristine in zip(self._own, self._pristine, strict=True))

    def read(self, order: int) -> NodeState:
        """The node at `order` as it is now, copied not (for a caller that only reads it)."""
        return self._own[order] or self._pristine[order]


def _copied(node: NodeState) -> NodeState:
    gpus = [GpuState(g.node, g.index, g.vram_mib, g.free_mib, g.holders, g.domain) for g in node.gpus]
    mig = [MigState(m.node, m.profile, m.free, m.resource, m.taken) for m in node.mig]
    return NodeState(node.inventory, gpus, mig, node.order, node.kind)


@dataclass
class FleetState:
    """The schedulable GPUs of an inventory, mutable while a plan is built; `plan()` freezes it."""

    nodes: _Nodes
    _pristine: _Pristine
    """The inventory's nodes untouched, which `of(like=self)` lends to a state of the same inventory."""
    placements: list[Placement] = field(default_factory=list)
    unplaced: list[Unplaced] = field(default_factory=list)
    paid: dict[str, float] = field(default_factory=dict)
    """Request -> what its replicas added to the bill as the online policy placed them (USD/hour)."""
    occupied: dict[str, tuple[float, float]] = field(default_factory=dict)
    _groups: dict[str, dict[tuple[object, ...], list[int]]] = field(default_factory=dict)
    """kind -> node signature -> the `order` of the nodes in that state with room left, sorted."""
    _first: dict[str, NodeState] = field(default_factory=dict)
    """kind -> its first node, which stands for the kind's class and taints."""
    _classes: list[tuple[GpuModel, int]] = field(default_factory=list)
    _tolerated: dict[tuple[object, str, bool, bool], list[str]] = field(default_factory=dict)
    _ids: dict[tuple[object, ...], int] = field(default_factory=dict)
    _states: dict[str, list[tuple[int, NodeState]]] = field(default_factory=dict)
    memo: dict[tuple[object, ...], list[Option]] = field(default_factory=dict)
    """What the engines computed for a node kind and signature: valid for every node in that state."""
    shadow: dict[tuple[str, str], float] = field(default_factory=dict)
    """(kind, instance profile or "") -> USD/hour the online policy adds to an option per unit it takes
    of that capacity (`scheduler.shadow`); empty: options are compared at their real prices."""
    surcharges: dict[tuple[object, ...], float] = field(default_factory=dict)
    """What `shadow` adds to an option, by what it depends on (the option's node kinds, instance
    profile, VRAM per GPU and GPUs): worked out once per state."""

    @classmethod
    def of(
        cls, inventory: Inventory, like: FleetState | None = None, shadow: dict[tuple[str, str], float] | None = None
    ) -> FleetState:
        """The fleet of `inventory`, nothing placed yet; `like`, a state of the same inventory,
        lends its memo, so that a second pass over the fleet does not work out again what the
        first one did (the memo holds real prices, so `shadow` may differ), and its untouched
        nodes (`_Pristine`), so that a pass copies only the nodes it looks at."""
        ids = like._ids if like is not None else {}
        if like is not None and like._pristine.inventory is inventory:
            pristine = like._pristine
        else:
            pristine = _Pristine.of(inventory)
        nodes = _Nodes(pristine.nodes)
        state = cls(nodes, pristine, shadow=shadow or {})
        if like is not None:
            state.memo = like.memo
        state._ids = ids
        for signature in pristine.signatures:
            ids.setdefault(signature, len(ids))
        state._groups = {k: {s: list(g) for s, g in by.items()} for k, by in pristine.groups.items()}
        state._first = {kind: nodes[order] for kind, order in pristine.first.items()}
        state._classes = list(pristine.classes)
        return state

    def classes(self) -> list[tuple[GpuModel, int]]:
        """Each GPU class present, with the most GPUs one node has in one tensor-parallel domain."""
        return self._classes

    def kinds(self) -> list[str]:
        return list(self._first)

    def groups(self, kind: str) -> list[list[int]]:
        """The nodes of `kind` with room left, by state: each list holds the `order` of
        interchangeable nodes, first node first; lists in the order of their first node."""
        return sorted((g for g in self._groups.get(kind, {}).values() if g), key=lambda g: g[0])

    def candidates(self, kind: str) -> list[NodeState]:
        """One node of `kind` per distinct state, with room left: the first node of each group
        (in no particular order; `order` breaks ties)."""
        return [self.nodes[g[0]] for g in self._groups.get(kind, {}).values()]

    def alike(self) -> list[tuple[NodeState, int]]:
        """One node of each state with room left (the first), and how many nodes are in that state, in the order of
        their first nodes, whatever their kind: what the fleet's capacity is counted from (no node copied)."""
        groups = sorted((g for by_state in self._groups.values() for g in by_state.values() if g), key=lambda g: g[0])
        return [(self.nodes.read(g[0]), len(g)) for g in groups]

    def states(self, kind: str) -> list[tuple[int, NodeState]]:
        """`candidates`, each with a number standing for its signature (the same for nodes in the
        same state, for as long as the state lives)."""
        if kind not in self._states:
            by_state = self._groups.get(kind, {})
            self._states[kind] = [(self._ids[signature], self.nodes[g[0]]) for signature, g in by_state.items()]
        return self._states[kind]

    def kinds_for(self, request: Request, shape: Shape) -> list[str]:
        """The kinds of `shape`'s class whose taints `request` tolerates and, for a replica over
        several nodes, whose network does RDMA; time-sliced ones only where `slices_serve(shape.tp)`."""
        key = (request.tolerations, shape.gpu.name, shape.nodes > 1, slices_serve(shape.tp))
        if key not in self._tolerated:
            self._tolerated[key] = [
                k
                for k, n in self._first.items()
                if n.model.name == shape.gpu.name
                and untolerated(n, request) is None
                and (shape.nodes == 1 or n.inventory.rdma)
                and (slices_serve(shape.tp) or not time_sliced(n))
            ]
        return self._tolerated[key]

    def first(self, kind: str) -> NodeState:
        """A node of `kind` (the first), standing for its class, sharing and taints."""
        return self._first[kind]

    def changed(self, node: NodeState, before: tuple[object, ...]) -> None:
        """Re-file `node` after its GPUs changed; `before` is its signature before the change."""
        by_state = self._groups[node.kind]
        group = by_state.get(before)
        if group is not None:
            i = bisect.bisect_left(group, node.order)
            if i < len(group) and group[i] == node.order:
                del group[i]
            if not group:
                del by_state[before]
        self._insert(node)

    def _insert(self, node: NodeState) -> None:
        self._states.pop(node.kind, None)
        signature = _filed_as(node)
        _file(self._groups, node.kind, node.order, signature)
        if signature is not None:
            self._ids.setdefault(signature, len(self._ids))

    def plan(self) -> Plan:
        return Plan(tuple(self.placements), tuple(self.unplaced), dict(self.occupied))


def _filed_as(node: NodeState) -> tuple[object, ...] | None:
    """The signature `node` is filed by in its kind's groups: None where it has no room (it is in none)."""
    return node.signature() if node.has_room() else None


def _file(
    groups: dict[str, dict[tuple[object, ...], list[int]]], kind: str, order: int, signature: tuple[object, ...] | None
) -> None:
    """File the node at `order` in its kind's groups by its signature (`_filed_as`), in node order: the one rule a
    fleet's first groups and every change after them keep."""
    by_state = groups.setdefault(kind, {})
    if signature is not None:
        bisect.insort(by_state.setdefault(signature, []), order)


def time_sliced(node: NodeState) -> bool:
    """Whether `node`'s GPUs are time-sliced: as configured for its class, or as its device plugin advertises
    them (several `nvidia.com/gpu` replicas each) whatever the class is configured to do."""
    return node.sharing == "timeslice" or node.inventory.timeslice_replicas > 1


def slices_serve(tp: int) -> bool:
    """Whether a pod asking for `tp` `nvidia.com/gpu` may go to a time-sliced node. The device plugin hands
    slices out per pod: a pod of several may get slices of one GPU (or, under `failRequestsGreaterThanOne`,
    be refused), while each one-GPU pod of a replica over several nodes gets a GPU of its own node's."""
    return tp == 1


def untolerated(node: NodeState | NodeGpus, request: Request) -> Taint | None:
    """The first `NoSchedule`/`NoExecute` taint of `node` that `request`'s pods do not tolerate."""
    inventory = node.inventory if isinstance(node, NodeState) else node
    tolerations = (*request.tolerations, *GPU_TOLERATIONS)
    for taint in inventory.taints:
        if taint.effect in SCHEDULING_EFFECTS and not any(t.tolerates(taint) for t in tolerations):
            return taint
    return None


Workers = tuple[tuple[NodeState, tuple[GpuState, ...]], ...]
"""The GPUs a replica holds, node by node (the leader first)."""


@dataclass(frozen=True)
class Option:
    """A way to place one replica now; `key` orders options best first (the online policy's)."""

    key: tuple[float, ...]
    shape: Shape
    node: NodeState
    gpus: tuple[GpuState, ...] = ()
    mig: MigState | None = None
    workers: Workers = ()


def take(state: FleetState, option: Option, request: Request, replica: int) -> Placement:
    """Hold what `option` names for one replica of `request` and record it in `state`."""
    shape = option.shape
    price = shape.gpu.price_per_hour
    touched = [(option.node, option.node.signature())]
    if option.mig is not None:
        mig = option.mig
        mig.free -= 1
        mig.taken += 1
        share = mig.profile.gpu_share
        state.occupied[f"{mig.node}/{mig.profile.kind}-{mig.profile.name}#{mig.taken}"] = (share, share * price)
        workers: tuple[Worker, ...] = (Worker(option.node.name, (), mig.profile.name, mig.resource),)
        sharing = "mig" if mig.profile.kind == "mig" else "partition"
    else:
        shared = option.node.sharing in SHARED and shape.gpus == 1
        groups = option.workers or ((option.node, option.gpus),)
        touched = [(node, node.signature()) for node, _ in groups]
        for _, gpus in groups:
            for gpu in gpus:
                gpu.free_mib -= shape.per_gpu_mib if shared else gpu.free_mib
                gpu.holders += 1
                state.occupied[gpu.key] = (1.0, price)
        workers = tuple(Worker(node.name, tuple(g.index for g in gpus)) for node, gpus in groups)
        sharing = option.node.sharing if shared else "exclusive"
    for node, before in touched:
        state.changed(node, before)
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
        throughput=shape.throughput,
        interconnect=shape.link,
    )


def fitting_gpus(node: NodeState, shape: Shape) -> tuple[GpuState, ...] | None:
    """`tp` GPUs of one tensor-parallel domain with room for the shape, tightest first; None if none."""
    by_domain: dict[str, list[GpuState]] = {}
    for gpu in node.gpus:
        if room(node, gpu, shape) >= shape.per_gpu_mib:
            by_domain.setdefault(gpu.domain, []).append(gpu)
    best: tuple[GpuState, ...] | None = None
    best_key: tuple[int, int] | None = None
    for fitting in by_domain.values():
        if len(fitting) < shape.tp:
            continue
        fitting.sort(key=lambda g: (room(node, g, shape), g.index))
        chosen = tuple(fitting[: shape.tp])
        key = (sum(room(node, g, shape) for g in chosen), len(fitting))
        if best_key is None or key < best_key:
            best, best_key = chosen, key
    return best


def room(node: NodeState, gpu: GpuState, shape: Shape) -> int:
    """VRAM the shape may take on `gpu`: a multi-GPU replica takes idle GPUs only, and whole."""
    if shape.gpus > 1:
        return gpu.vram_mib if gpu.holders == 0 else 0
    return node.available(gpu)


def smallest_instance(node: NodeState, need_mib: int) -> MigState | None:
    """The free MIG instance (or AMD partition) with the least memory that holds `need_mib`."""
    fitting = [m for m in node.mig if m.free > 0 and m.profile.memory_mib >= need_mib]
    return min(fitting, key=lambda m: (m.profile.memory_mib, m.profile.name), default=None)


def multi_node(state: FleetState, kinds: Sequence[str], shape: Shape) -> Workers:
    """`shape.nodes` nodes of `kinds`, each with a whole idle domain of `tp` GPUs, fullest nodes
    first; empty when there are not enough."""
    groups = [(state.nodes[g[0]], g) for kind in kinds for g in state.groups(kind)]
    chosen: list[tuple[NodeState, tuple[GpuState, ...]]] = []
    for first, members in sorted(groups, key=lambda item: (item[0].idle(), item[0].order)):
        if fitting_gpus(first, shape) is None:
            continue
        for order in members:
            node = state.nodes[order]
            gpus = fitting_gpus(node, shape)
            if gpus is not None:
                chosen.append((node, gpus))
            if len(chosen) == shape.nodes:
                return tuple(chosen)
    return ()
