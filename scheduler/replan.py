"""The exact re-plan: a cutting-stock model of a batch of requests, solved with HiGHS (`scheduler.solver`).

Where the online policy decides one replica at a time, this engine looks at the whole batch. It is
what an operator runs to re-pack a fleet, what `scheduler.schedule` runs under a deadline, and what
the benchmarks use for the lower bound.

A model over single GPUs (one binary per replica and GPU) is too large to solve or bound at a few
hundred GPUs. This one is over GPU *kinds* (nodes of one class, sharing mechanism and taints,
`scheduler.fleet`) and packing *patterns*, as in cutting stock:

- a shared GPU (time-slicing, KAI, HAMi) is filled by a pattern: a multiset of single-GPU replicas
  whose VRAM fits it (and, under time-slicing, no more replicas than the device plugin admits);
  one integer counts how many GPUs of a kind take each pattern;
- a whole GPU (exclusive), a MIG instance or AMD partition of a profile, and a tensor-parallel group
  of `tp` GPUs (one unit per node of a multi-node replica) are columns of their own;
- every request's replicas must be covered, only on kinds whose taints it tolerates; an unplaceable
  replica pays a penalty instead.

Tensor-parallel groups must each fit in one NVLink/xGMI domain of one node. Group sizes are powers of
two, so one capacity row per kind and size `t` suffices: the GPUs of groups of `t` or more may not
exceed `t` x (the number of `t`-GPU blocks the domains' idle GPUs make). For sizes that divide one
another that is exactly the condition for the groups to fit, largest first, and it keeps the
model's size independent of the number of nodes.

Patterns come from column generation: the LP relaxation is solved, each shared GPU kind prices its
best new pattern with a bounded knapsack over VRAM in MiB (and replica count under time-slicing),
itself a small integer programme for HiGHS, and the loop stops when no pattern has a negative
reduced cost. That LP optimum (or, when time runs out first, its Lagrangian bound) is a proven lower
bound on any plan's cost. The integer programme over the generated columns then gives the plan,
within the time limit; its concrete GPUs are chosen tightest first.

The online engine (`online`) is the same model stopped earlier: its LP relaxation, generated for
at most `ONLINE_LP_S`, rounded to whole columns and realised, what the rounding leaves placed by
the greedy policy (`scheduler.placement`); where the rounding leaves out more than the LP, the
integer programme over the generated columns repairs it when proven in time. The exact engine
computes that plan first, as its fallback, and goes on generating columns from where it stopped.

The deadline holds: the plan to fall back on is in hand first (a batch of more than
`MANY_REPLICAS` gets its greedy pass before anything else); setting up the model stops at the
deadline; every solver call gets what is left of the time limit (HiGHS's own limit counts its
earlier runs of the model, `scheduler.solver`); when HiGHS finds no integer solution in time, the
online plan is returned (`Solution.fell_back`). Matrices are sparse, so memory grows with columns,
not with nodes x columns.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from scheduler.fleet import (
    SHARED,
    TP_DEGREES,
    FleetState,
    GpuState,
    MigState,
    NodeState,
    Option,
    Shape,
    Workers,
    shapes,
    take,
    unplaced_penalty,
)
from scheduler.inventory import Inventory
from scheduler.placement import MANY_REPLICAS, largest_first, place, place_one
from scheduler.plan import Plan, Request
from scheduler.registry import Registry
from scheduler.solver import FloatArray, Model, knapsack

QUALITY_WEIGHT = 1e-3
"""USD/hour one unit of quality is worth: breaks cost ties toward the better variant, nothing more."""
MAX_ROUNDS = 200
REALISE_SHARE = 0.1
"""The share of the online plan's time `solve` keeps for turning the integer solution into GPUs."""
MIN_SOLVER_S = 0.05
"""The least time a solver call is given; below it the engine stops and falls back."""
ONLINE_LP_S = 0.3
"""Wall time the online engine gives the column generation (`online`): it converges in 0.02-0.2 s
of CPU on the packing benchmark's fleets of ~250 GPUs and ~150 replicas (0.6 s at worst), and an
LP stopped short still rounds to a plan."""


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
    """The node kind of a whole GPU or group, `kind|profile` of an instance, the resource row of a pattern."""
    items: tuple[tuple[str, Shape, int], ...] = ()
    """A pattern's (request, shape, replicas)."""

    @property
    def key(self) -> tuple[object, ...]:
        return (self.kind, self.request, self.shape, self.where, self.items)


@dataclass
class Solution:
    """The re-plan's outcome and how good it is proven to be."""

    plan: Plan
    lower_bound: float | None
    """USD/hour no plan of this batch can beat (the LP relaxation over all patterns); None when the
    time ran out before the first LP was solved."""
    optimal: bool
    """Whether the solver proved the plan optimal over the generated patterns."""
    seconds: float
    columns: int
    unplaced_in_bound: float = 0.0
    """Replicas the relaxation could not place either; the bound then excludes their penalty."""
    fell_back: bool = False
    """True when the integer programme found no solution in time and `plan` is the online plan."""
    online: Plan | None = None
    """The online policy's plan of the same batch, computed first as the fallback."""


@dataclass
class _Model:
    requests: dict[str, Request]
    options: dict[str, list[Shape]]
    state: FleetState
    """The fleet as it is: what the model's capacity rows are read from (never changed)."""
    inventory: Inventory
    solver_log: bool = False
    """Let HiGHS print its progress (on stderr, as everything it prints)."""
    capacity: dict[str, float] = field(default_factory=dict)
    columns: list[Column] = field(default_factory=list)
    seen: set[tuple[object, ...]] = field(default_factory=set)
    rows: dict[str, int] = field(default_factory=dict)
    """Row -> its index in `solver`: coverage rows (negated), then capacity rows."""
    solver: Model | None = None
    """The master programme, built once the rows are known and grown column by column."""
    relaxed: FloatArray | None = None
    """The last optimal LP solution of the master programme (column values), None before one."""
    unplaced_lp: float = 0.0
    """The replicas that LP leaves unplaced."""
    items: dict[str, list[tuple[str, Shape]]] = field(default_factory=dict)
    """Per shared GPU kind (its capacity row), what may go in its patterns (`_items`)."""
    built: bool = False
    """Whether every first column is in (`_model`): the deadline may come first."""

    @property
    def left_out_floor(self) -> int:
        """The fewest replicas any plan leaves out, as the last LP says: its unplaced, rounded up."""
        return math.ceil(self.unplaced_lp - 1e-6)

    def master(self) -> Model:
        """The master programme with every column added so far: `A x <= b`, coverage rows negated
        (`-replicas covered <= -replicas`), then capacity rows."""
        if self.solver is None:
            self.solver = self._programme()
        return self._grown(self.solver)

    def copy(self) -> Model:
        """A new programme like the master: made integer, it leaves the master's column generation
        free to go on (the online engine's repair, then the exact engine)."""
        return self._grown(self._programme())

    def _programme(self) -> Model:
        names = [f"cover:{n}" for n in self.requests] + sorted(self.capacity)
        self.rows = {r: i for i, r in enumerate(names)}
        upper = [-float(r.replicas) for r in self.requests.values()]
        upper += [self.capacity[r] for r in names[len(self.requests) :]]
        return Model([-math.inf] * len(names), upper, self.solver_log)

    def _grown(self, solver: Model) -> Model:
        fresh = self.columns[solver.columns :]
        entries = [
            {self.rows[f"cover:{n}"]: -k for n, k in col.cover.items()} | {self.rows[r]: a for r, a in col.uses.items()}
            for col in fresh
        ]
        solver.add_columns([col.cost for col in fresh], entries)
        return solver

    def add(self, column: Column) -> None:
        """Keep a column unless it is known already or uses a resource this fleet lacks."""
        key = column.key
        if key not in self.seen and all(self.capacity.get(row, 0) > 0 for row in column.uses):
            self.seen.add(key)
            self.columns.append(column)


@dataclass(frozen=True)
class _Bin:
    """A kind of shared GPU: node kind, room for replicas, whether it already serves (then it is free)."""

    row: str
    node_kind: str
    gpu_class: str
    room_mib: int
    holders_left: int
    price: float


class _Deadline:
    """What is left of a time limit, on `clock`: wall time (`time.perf_counter`), or the process's
    CPU time (`time.process_time`) for a budget that a busy machine must not shrink."""

    def __init__(
        self,
        seconds: float,
        clock: Callable[[], float] = time.perf_counter,
        wall: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.clock, self.wall = clock, wall
        self.began = (clock(), wall())
        self.end = self.began[0] + seconds

    def left(self) -> float:
        return self.end - self.clock()

    def solver_s(self) -> float:
        """The limit to give a solver call: HiGHS holds its own on the wall clock, so a CPU budget is given as
        the wall time its CPU left is worth at the contention seen since the deadline began (at most
        `MAX_STRETCH` times). Given the CPU left as wall seconds, a solve on a busy machine stopped short and
        the same batch got another plan (a decide test, once at load 16), which a CPU budget is meant to
        prevent."""
        left = max(self.left(), MIN_SOLVER_S)
        used, waited = self.clock() - self.began[0], self.wall() - self.began[1]
        if self.clock is self.wall or used < MIN_USED_S:
            return left
        return left * min(MAX_STRETCH, max(1.0, waited / used))


MAX_STRETCH = 20.0
"""The most a CPU budget's solver limit is stretched by contention (20 runnable processes a core)."""
MIN_USED_S = 0.001
"""CPU a deadline's holder must have used before its contention is read (less says nothing)."""


def solve(
    requests: Sequence[Request],
    registry: Registry,
    inventory: Inventory,
    time_limit_s: float = 10.0,
    solver_log: bool = False,
) -> Solution:
    """The exact plan of `requests`, found within `time_limit_s` seconds (the online plan when the
    solver finds none in time), with a proven lower bound; `solver_log` shows HiGHS's progress on
    stderr.

    The online plan comes first, from the same model (`_online`): its columns are where the
    exact engine's column generation goes on from."""
    started = time.perf_counter()
    deadline = _Deadline(time_limit_s)
    fleet = FleetState.of(inventory)
    greedy = _greedy_first(requests, registry, inventory, fleet)
    model, bins = _model(requests, registry, inventory, deadline, fleet, solver_log)
    online = _online(model, bins, registry, _Deadline(min(ONLINE_LP_S, deadline.left())), greedy)
    online_s = time.perf_counter() - started
    # Turning the integer solution into GPUs is one pass over the chosen columns, and the online
    # policy's placement of what they leave (3-6 ms against the online plan's 100-300 ms on the
    # packing benchmark's fleets): keep a tenth of the online plan's time in hand for it.
    deadline.end -= REALISE_SHARE * online_s + 0.05
    bound = None
    if model.built and deadline.left() > MIN_SOLVER_S:  # building it, or the online plan, may have taken it all
        bound = _generate(model, bins, deadline, _Deadline(deadline.left() / 2))
        for plan in (online, _rounded(model, registry)[0]):
            if plan is not None:
                _plan_patterns(model, bins, plan)
    solved = _integer(model, deadline) if bound is not None else None
    if solved is None:
        plan, optimal = online, False
    else:
        plan, optimal = _realise(model, solved[0], registry), solved[1]
    lower_bound = None
    if bound is not None:
        correction = QUALITY_WEIGHT * sum(
            r.replicas * min((s.variant.quality for s in model.options[r.name]), default=0.0) for r in requests
        )
        lower_bound = round(bound + correction - _unplaced_cost(model), 4)
    return Solution(
        plan=plan,
        lower_bound=lower_bound,
        optimal=optimal,
        seconds=round(time.perf_counter() - started, 3),
        columns=len(model.columns),
        unplaced_in_bound=round(model.unplaced_lp, 4) if bound is not None else 0.0,
        fell_back=solved is None,
        online=online,
    )


def online(
    requests: Sequence[Request], registry: Registry, inventory: Inventory, time_limit_s: float = ONLINE_LP_S
) -> Plan:
    """The online engine's plan of `requests`: the cutting-stock LP relaxation, generated for at most
    `time_limit_s` seconds of CPU and rounded (`_online`), or the greedy passes
    (`scheduler.placement.place`). CPU, not wall time: on a busy machine the same batch gets the
    same plan, as the controller's reconcile loop needs, only later."""
    deadline = _Deadline(time_limit_s, time.process_time)
    fleet = FleetState.of(inventory)
    greedy = _greedy_first(requests, registry, inventory, fleet)
    model, bins = _model(requests, registry, inventory, deadline, fleet)
    return _online(model, bins, registry, deadline, greedy)


def _greedy_first(
    requests: Sequence[Request], registry: Registry, inventory: Inventory, like: FleetState
) -> Plan | None:
    """The greedy plan of a batch of more than `MANY_REPLICAS` (one pass, largest first), computed
    before anything else: setting up its LP takes seconds, and the plan to fall back on must be in
    hand when the deadline comes. None for a smaller batch, whose LP is set up in milliseconds and
    whose greedy passes (tenths of a second) are needed only where the LP is not solved in time.
    `like`: a state of `inventory`, whose nodes and memo the passes share (`FleetState.of`)."""
    if sum(r.replicas for r in requests) <= MANY_REPLICAS:
        return None
    return place(requests, registry, inventory, like=like)


def _model(
    requests: Sequence[Request],
    registry: Registry,
    inventory: Inventory,
    deadline: _Deadline,
    like: FleetState,
    solver_log: bool = False,
) -> tuple[_Model, list[_Bin]]:
    """The cutting-stock model of the batch with its first columns, and the fleet's kinds of shared
    GPU; `model.built` is False when `deadline` came first (a batch of a thousand requests takes
    seconds to set up): the engines then fall back to the greedy passes. `like`: a state of
    `inventory` whose nodes and memo the model's shares."""
    state = FleetState.of(inventory, like=like)
    model = _Model({r.name: r for r in requests}, {}, state, inventory, solver_log)
    for r in requests:
        if deadline.left() < MIN_SOLVER_S:
            return model, []
        model.options[r.name] = shapes(registry.get(r.model), r, state.classes())
    bins = _resources(model)
    if not _fixed_columns(model, deadline):
        return model, bins
    for b in bins:
        if deadline.left() < MIN_SOLVER_S:
            return model, bins
        model.items[b.row] = _items(model, b)
        _seed_patterns(model, b)
    model.built = True
    return model, bins


def _online(
    model: _Model, bins: list[_Bin], registry: Registry, deadline: _Deadline, greedy: Plan | None = None
) -> Plan:
    """The online plan: the LP relaxation of the cutting-stock model (column generation until
    `deadline`) rounded to whole columns, down and to the nearest, each realised on the fleet with
    the greedy policy placing what the rounding left (`_realise`); the better of the two. The
    greedy passes (`scheduler.placement.place`, or `greedy` when given) instead when no LP was
    solved in time, and beside the rounding when the fleet is short of room (the LP leaves replicas
    out; those that hold replicas back only where the rounding leaves out more than the LP) or the
    rounding leaves out more replicas than the LP and the integer programme over the generated
    columns does not repair it in time (`_repaired`).

    Why not the greedy passes alone: one replica at a time, the cost of a GPU shared by several
    replicas is only guessed (its price times the share the replica takes), and which replicas fill
    a cheap class together is decided by the order they come in. The LP prices whole GPUs filled
    by whole patterns, so its solution already says which replicas share what; rounding it keeps
    that: 0.3% above the exact plan in the mean (at worst 1.4%) on the packing benchmark's fleets of
    seeds 20-40, where the greedy passes' best was 2.3% above (at worst 5.4%).

    Two roundings because neither is always better: rounding down leaves the replicas of every
    fractional column to the greedy policy, rounding to the nearest may ask for more of a kind
    than it has."""
    if model.built and deadline.left() > MIN_SOLVER_S:
        _generate(model, bins, deadline, deadline)
    rounded, short = _rounded(model, registry)
    if short:
        rounded, short = _repaired(model, registry, deadline, rounded)
    if rounded is not None and not short and model.unplaced_lp < 1e-6:
        return rounded
    if greedy is None:
        # A converged LP leaves out as few replicas as any plan can, so a rounding that leaves out
        # no more cannot be beaten on that count: the greedy passes that hold replicas back to
        # place more (0.2-0.3 s of CPU on the packing benchmark's fleets short of room, half of
        # `place`) run only where the rounding leaves out more.
        floor = model.left_out_floor
        hold_back = rounded is None or len(rounded.unplaced) > floor
        greedy = place(list(model.requests.values()), registry, model.inventory, hold_back, like=model.state)
    # Short of room the greedy plan is kept unless the rounding's is better: which replicas wait
    # then follows the greedy order (the largest last, names breaking ties), so that an endpoint
    # admitted alone against what the others left finds what deciding them all together gives it.
    return rounded if rounded is not None and rounded.better_than(greedy) else greedy


def _rounded(model: _Model, registry: Registry) -> tuple[Plan | None, bool]:
    """The model's last LP solution rounded (`_online`) and realised, the best plan of the roundings
    (None without an LP solution), and whether one of them left more replicas unplaced than the LP."""
    if model.relaxed is None:
        return None, False
    rounded: Plan | None = None
    short = False
    # Columns priced after the last LP have no value in it: 0.
    values = [*model.relaxed, *[0.0] * (len(model.columns) - len(model.relaxed))]
    realised: list[list[int]] = []
    for rounding in (math.floor, _nearest):
        counts = [0 if c.kind == "unplaced" else rounding(x) for x, c in zip(values, model.columns, strict=True)]
        if counts in realised:
            # An LP solution of whole columns rounds alike both ways (both of a serving loop's two calls at
            # 1,000 endpoints): its plans are those realised already (0.01-0.015 s each there).
            continue
        realised.append(counts)
        plans = [_realise(model, counts, registry)]
        if plans[0].unplaced:  # short of room: more fit when the smallest of what is left go first
            plans.append(_realise(model, counts, registry, smallest_first=True))
        for plan in plans:
            short = short or len(plan.unplaced) > model.left_out_floor
            if rounded is None or plan.better_than(rounded):
                rounded = plan
    return rounded, short


def _repaired(model: _Model, registry: Registry, deadline: _Deadline, rounded: Plan | None) -> tuple[Plan | None, bool]:
    """Where the roundings leave out more replicas than the LP: the integer programme over the
    columns generated so far, within what is left of `deadline`, realised, if it is the better
    plan; and whether the plan kept still leaves out more than the LP.

    Seed 202's fleet 2 of the packing benchmark: both roundings stranded a 32B or 72B replica (the
    LP split it over fractional tensor-parallel groups and patterns), the greedy passes replaced
    them at 6% above the exact plan in 0.4 s more; this programme (0.05 s there) is the exact
    plan. Short of room too: seed 208's fleet 0 (the LP leaves 5 replicas out, whole) lost a 72B
    and a 27B replica to the rounding's leftovers, where the programme trades one 70B replica for
    both, as the exact plan does. Used only when proven optimal over its columns, so that a busy
    machine's clock, which cuts HiGHS short, does not decide the plan."""
    solved = _integer(model, deadline, copy=True) if model.relaxed is not None else None
    if solved is not None and solved[1]:
        plan = _realise(model, solved[0], registry)
        if rounded is None or plan.better_than(rounded):
            rounded = plan
    return rounded, rounded is None or len(rounded.unplaced) > model.left_out_floor


def _unplaced_cost(model: _Model) -> float:
    """The penalties the last LP solution pays for the replicas it leaves out."""
    values = model.relaxed if model.relaxed is not None else ()
    return sum(float(x) * c.cost for x, c in zip(values, model.columns, strict=False) if c.kind == "unplaced")


def _plan_patterns(model: _Model, bins: list[_Bin], plan: Plan) -> None:
    """What `plan` puts on each shared GPU, as pattern columns: the integer programme can then do
    no worse than the plan. Column generation stops when the LP needs no more patterns, but the
    best integer plan may need some the LP did not: rounding the last LP and placing what is left
    greedily finds such (seed 102's fleet 1 of the packing benchmark: the online plan 1% cheaper
    than the exact plan proven optimal over its generated patterns)."""
    nodes = {n.name: n for n in model.state.nodes}
    by_row = {b.row: b for b in bins}
    shape_of = {(name, s.variant.name, s.gpu.name): s for name, options in model.options.items() for s in options}
    on_gpu: dict[tuple[str, int], dict[tuple[str, Shape], int]] = defaultdict(lambda: defaultdict(int))
    for p in plan.placements:
        if nodes[p.node].sharing in SHARED and p.tp == 1 and not p.multi_node and not p.workers[0].mig_profile:
            on_gpu[(p.node, p.gpus[0])][(p.request, shape_of[(p.request, p.variant, p.gpu_class)])] += 1
    for (name, index), counts in on_gpu.items():
        node = nodes[name]
        gpu = next(g for g in node.gpus if g.index == index)
        room, left = node.available(gpu), _holders_left(node, gpu)
        b = by_row.get(f"idle:{node.kind}" if gpu.holders == 0 else f"open:{node.kind}:{room}:{left}")
        if b is not None:
            model.add(_pattern_column(b, dict(counts)))


def _nearest(x: float) -> int:
    return math.floor(x + 0.5)


def _resources(model: _Model) -> list[_Bin]:
    """Capacity rows: idle GPUs per kind, tensor-parallel blocks per kind and size, instances per
    kind and profile, and the kinds of partly used shared GPUs. Counted once per state of node, times
    the nodes in it (`FleetState.alike`: a node without room adds nothing), the shared kinds in the
    order of the first node that has each: at 1,750 nodes, read node by node, it took 6 ms of a 12 ms
    scheduler call."""
    cap = model.capacity
    bins: dict[str, _Bin] = {}
    for node, nodes in model.state.alike():
        kind, name, price = node.kind, node.model.name, node.model.price_per_hour
        idle_per_domain: dict[str, int] = defaultdict(int)
        for gpu in node.gpus:
            if gpu.holders == 0:
                cap[f"idle:{kind}"] = cap.get(f"idle:{kind}", 0) + nodes
                idle_per_domain[gpu.domain] += 1
            if node.sharing in SHARED:
                room, left = node.available(gpu), _holders_left(node, gpu)
                if room <= 0 or left <= 0:
                    continue
                row = f"idle:{kind}" if gpu.holders == 0 else f"open:{kind}:{room}:{left}"
                if gpu.holders:
                    cap[row] = cap.get(row, 0) + nodes
                bins.setdefault(row, _Bin(row, kind, name, room, left, price if gpu.holders == 0 else 0.0))
        for t in TP_DEGREES[1:]:
            blocks = sum(idle // t for idle in idle_per_domain.values())
            if blocks:
                cap[f"tp:{kind}:{t}"] = cap.get(f"tp:{kind}:{t}", 0) + t * blocks * nodes
        for mig in node.mig:
            row = f"mig:{kind}:{mig.profile.name}"
            cap[row] = cap.get(row, 0) + mig.free * nodes
    return list(bins.values())


def _holders_left(node: NodeState, gpu: GpuState) -> int:
    if node.sharing == "timeslice":
        return node.inventory.timeslice_replicas - gpu.holders
    return 1 << 16


def _fixed_columns(model: _Model, deadline: _Deadline) -> bool:
    """Every column that needs no pricing: whole GPUs, tensor-parallel groups, instances, the
    penalty; False when `deadline` came before they were all added."""
    state = model.state
    profiles = {
        (n.kind, m.profile.name): m.profile for kind in state.kinds() for n in state.candidates(kind) for m in n.mig
    }
    for position, (name, options) in enumerate(model.options.items()):
        request = model.requests[name]
        for shape in options:
            quality = QUALITY_WEIGHT * shape.variant.quality
            price = shape.gpu.price_per_hour
            for kind in state.kinds_for(request, shape):
                shared = state.first(kind).sharing in SHARED
                if shape.gpus == 1 and not shared:
                    model.add(Column("whole", price - quality, {name: 1.0}, {f"idle:{kind}": 1.0}, name, shape, kind))
                if shape.gpus > 1:
                    uses = {f"idle:{kind}": float(shape.tp)}
                    uses |= {f"tp:{kind}:{t}": float(shape.tp) for t in TP_DEGREES[1:] if t <= shape.tp}
                    cost = shape.cost(shape.tp * price) - quality / shape.nodes
                    model.add(Column("group", cost, {name: 1 / shape.nodes}, uses, name, shape, kind))
                if shape.gpus == 1:
                    for (mig_kind, profile_name), profile in profiles.items():
                        if mig_kind == kind and profile.memory_mib >= shape.per_gpu_mib:
                            cost = profile.gpu_share * price - quality
                            uses = {f"mig:{kind}:{profile_name}": 1.0}
                            model.add(Column("mig", cost, {name: 1.0}, uses, name, shape, f"{kind}|{profile_name}"))
        model.add(Column("unplaced", unplaced_penalty(position, len(model.options)), {name: 1.0}, {}, name))
        if deadline.left() < MIN_SOLVER_S:
            return False
    return True


def _items(model: _Model, b: _Bin) -> list[tuple[str, Shape]]:
    """(request, shape) of every single-GPU shape that fits an empty `b`, of requests that tolerate it."""
    return [
        (name, shape)
        for name, options in model.options.items()
        for shape in options
        if shape.gpus == 1
        and shape.gpu.name == b.gpu_class
        and shape.per_gpu_mib <= b.room_mib
        and b.node_kind in model.state.kinds_for(model.requests[name], shape)
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
    for name, shape in model.items[b.row]:
        k = min(b.room_mib // shape.per_gpu_mib, b.holders_left, model.requests[name].replicas)
        if k > 0:
            model.add(_pattern_column(b, {(name, shape): k}))


def _generate(model: _Model, bins: list[_Bin], deadline: _Deadline, stop: _Deadline) -> float | None:
    """Column generation until no column pays or `stop` passes (`deadline` bounds each solver call);
    returns a proven lower bound on the LP optimum (None when not even one LP was solved in time).
    The last LP's solution, and the replicas it leaves unplaced, are kept on `model`.

    Each round's bound is the LP objective plus, for every shared GPU kind, its capacity times the
    most negative reduced cost its pricing found (a Lagrangian bound, valid at any round); at
    convergence that is the LP optimum itself. Stopping early on time keeps the bound honest.
    The exact engine stops it at half the time left, keeping the other half for the integer
    programme.
    """
    bound: float | None = None
    for _ in range(MAX_ROUNDS):
        if deadline.left() < MIN_SOLVER_S:
            break
        master = model.master()
        result = master.solve(deadline.solver_s())
        if result is None or not result.optimal:
            break  # out of time: the last bound stands
        model.relaxed = result.x
        model.unplaced_lp = sum(float(x) for x, c in zip(result.x, model.columns, strict=True) if c.kind == "unplaced")
        duals = {row: -float(result.duals[i]) for row, i in model.rows.items()}
        added, shortfall, priced_all = 0, 0.0, True
        for b in bins:
            if deadline.left() < MIN_SOLVER_S:
                priced_all = False
                break
            column, exact = _price(model, b, model.items[b.row], duals, deadline)
            priced_all = priced_all and exact
            if column is None:
                continue
            reduced = column.cost - sum(duals.get(f"cover:{n}", 0.0) * k for n, k in column.cover.items())
            reduced += duals.get(b.row, 0.0)
            if reduced < -1e-7:
                shortfall += model.capacity[b.row] * reduced
                before = len(model.columns)
                model.add(column)
                added += len(model.columns) - before
        if priced_all:
            round_bound = result.objective + shortfall
            bound = round_bound if bound is None else max(bound, round_bound)
        if not added or stop.left() < 0:
            break
    return bound


def _price(
    model: _Model, b: _Bin, candidates: list[tuple[str, Shape]], duals: dict[str, float], deadline: _Deadline
) -> tuple[Column | None, bool]:
    """The pattern of `b` worth most at these duals (None when none is worth anything), and whether
    that is proven: a bounded knapsack over VRAM in MiB (and over replica count under
    time-slicing), solved exactly by HiGHS (`scheduler.solver.knapsack`).

    A pricing problem cut short by the deadline would not be exact and would void the round's
    bound, so it is given the time left and its result used only when it is proven optimal."""
    items = [
        (name, shape, duals.get(f"cover:{name}", 0.0) + QUALITY_WEIGHT * shape.variant.quality)
        for name, shape in candidates
    ]
    items = [item for item in items if item[2] > 1e-12]
    if not items:
        return None, True
    weights = [float(shape.per_gpu_mib) for _, shape, _ in items]
    most = [model.requests[n].replicas for n, _, _ in items]
    at_most = b.holders_left if b.holders_left < sum(most) else None
    found = knapsack([v for _, _, v in items], weights, float(b.room_mib), most, at_most, deadline.solver_s())
    if found is None:
        return None, False
    counts = {(name, shape): k for (name, shape, _), k in zip(items, found[0], strict=True) if k}
    return (_pattern_column(b, counts) if counts else None), found[1]


def _integer(model: _Model, deadline: _Deadline, copy: bool = False) -> tuple[list[int], bool] | None:
    """Column counts of the integer programme and whether they are proven optimal; None when HiGHS
    has no integer solution within the time left. With `copy`, the master stays a linear programme."""
    if deadline.left() < MIN_SOLVER_S:
        return None
    master = model.copy() if copy else model.master()
    master.integer()
    result = master.solve(deadline.solver_s())
    if result is None:
        return None
    return [round(float(x)) for x in result.x], result.optimal


def _realise(model: _Model, chosen: list[int], registry: Registry, smallest_first: bool = False) -> Plan:
    """Turn column counts into concrete GPUs through `scheduler.fleet.take`: tensor-parallel groups
    first (largest first, so that they fit as the capacity rows promise), then instances, whole
    GPUs and shared patterns; whatever the integer solution left unplaced (or a GPU the mapping
    could not find) goes to the online policy, which places it if it can and otherwise records why.
    A rounded LP may ask for more of a kind than it has: those replicas go to the online policy too.
    What is left goes largest first (it packs tightest), or with `smallest_first` smallest first
    (short of room, more replicas fit)."""
    state = FleetState.of(model.inventory, like=model.state)
    left = {name: r.replicas for name, r in model.requests.items()}
    replica = dict.fromkeys(model.requests, 0)

    def put(option: Option, name: str) -> None:
        if left[name] > 0:
            state.placements.append(take(state, option, model.requests[name], replica[name]))
            replica[name] += 1
            left[name] -= 1

    order = {"group": 0, "mig": 1, "whole": 2, "pattern": 3, "unplaced": 4}
    picked = sorted(
        ((c, n) for c, n in zip(model.columns, chosen, strict=True) if n > 0),
        key=lambda p: (order[p[0].kind], -(p[0].shape.tp if p[0].shape else 0)),
    )
    for col, n in picked:
        shape = col.shape
        if col.kind == "group" and shape is not None:
            for _ in range(n // shape.nodes):
                workers = _group_gpus(state, shape, col.where)
                if workers:
                    put(Option((), shape, workers[0][0], workers[0][1], workers=workers), col.request)
        elif col.kind == "mig" and shape is not None:
            kind, profile = col.where.split("|")
            for _ in range(n):
                found = _free_instance(state, kind, profile)
                if found is not None:
                    put(Option((), shape, found[0], mig=found[1]), col.request)
        elif col.kind == "whole" and shape is not None:
            for _ in range(n):
                found_gpu = _idle_gpu(state, col.where)
                if found_gpu is not None:
                    put(Option((), shape, found_gpu[0], (found_gpu[1],)), col.request)
        elif col.kind == "pattern":
            for _ in range(n):
                gpu = _bin_gpu(state, col.where)
                if gpu is not None:
                    for name, item, k in col.items:
                        for _ in range(k):
                            put(Option((), item, gpu[0], (gpu[1],)), name)
    leftovers = largest_first([model.requests[name] for name, n in left.items() if n > 0], model.options, state)
    for request in reversed(leftovers) if smallest_first else leftovers:
        for _ in range(left[request.name]):
            place_one(state, registry.get(request.model), request, replica[request.name], model.options[request.name])
            replica[request.name] += 1
    return state.plan()


def _domains(node: NodeState) -> Iterator[list[GpuState]]:
    """The idle GPUs of each peer-link domain of `node`."""
    by_domain: dict[str, list[GpuState]] = defaultdict(list)
    for g in node.gpus:
        if g.holders == 0:
            by_domain[g.domain].append(g)
    yield from by_domain.values()


def _group_gpus(state: FleetState, shape: Shape, kind: str) -> Workers:
    """Idle GPUs for one tensor-parallel replica on nodes of `kind`: `tp` of one domain, the domain
    that fits them tightest (one node) or one domain on each of `shape.nodes` nodes; empty when
    they are not there."""
    if shape.nodes == 1:
        best: tuple[int, int, NodeState, list[GpuState]] | None = None
        for node in state.candidates(kind):
            for domain in _domains(node):
                if len(domain) >= shape.tp and (best is None or (len(domain), node.order) < best[:2]):
                    best = (len(domain), node.order, node, domain)
        return () if best is None else ((best[2], tuple(best[3][: shape.tp])),)
    workers: list[tuple[NodeState, tuple[GpuState, ...]]] = []
    for members in state.groups(kind):
        for order in members:
            node = state.nodes[order]
            fitting = [d for d in _domains(node) if len(d) >= shape.tp]
            if not fitting:
                break  # the rest of its group is in the same state
            workers.append((node, tuple(min(fitting, key=len)[: shape.tp])))
            if len(workers) == shape.nodes:
                return tuple(workers)
    return ()


def _free_instance(state: FleetState, kind: str, profile: str) -> tuple[NodeState, MigState] | None:
    for node in state.candidates(kind):
        for mig in node.mig:
            if mig.profile.name == profile and mig.free > 0:
                return node, mig
    return None


def _idle_gpu(state: FleetState, kind: str) -> tuple[NodeState, GpuState] | None:
    """An idle GPU of the kind, in the domain with the fewest idle GPUs (keep big domains whole)."""
    best: tuple[int, NodeState, GpuState] | None = None
    for node in state.candidates(kind):
        for domain in _domains(node):
            if best is None or len(domain) < best[0]:
                best = (len(domain), node, domain[0])
    return None if best is None else (best[1], best[2])


def _bin_gpu(state: FleetState, row: str) -> tuple[NodeState, GpuState] | None:
    """A GPU of the kind a pattern's resource row names."""
    what, kind, *rest = row.split(":")
    for node in state.candidates(kind):
        for gpu in node.gpus:
            if what == "idle" and gpu.holders == 0:
                return node, gpu
            if what == "open" and gpu.holders > 0 and rest == [str(node.available(gpu)), str(_holders_left(node, gpu))]:
                return node, gpu
    return None
