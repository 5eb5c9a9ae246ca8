"""The greedy placement policy: place replicas one at a time, cheapest first, without fragmenting.

Pure: functions of a `Registry`, an `Inventory` and `Request`s, returning a `Plan`. The fleet state,
shapes and taking GPUs live in `scheduler.fleet`, shared with the exact re-plan (`scheduler.replan`);
`scheduler.schedule` is the one entry point that chooses between them. The online engine
(`scheduler.replan.online`) rounds an LP relaxation and places with `place_one` what the rounding
leaves; `place`, all the passes below, is its fallback where no LP is solved in time or the
rounding leaves out more replicas than the LP and the integer programme over its columns (the
repair) is not proven in time, and the exact engine's where HiGHS finds no integer solution.

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

Marginal cost is blind to what a cheap GPU is worth to the replicas still to come: a small model
takes the last cheap 48 GB GPU that a larger one needed, and the larger one goes to a GPU that
costs ten times as much. So some passes add to each option's cost what it takes of the fleet's
capacity at *shadow prices*: the duals of a fluid LP relaxation of the batch (`scheduler.shadow`),
which are 0 for capacity nobody is short of and, for a class in demand, what its marginal user
would pay more elsewhere. The plan's cost is still the real one.

Which replica goes first decides what the later ones find, so a batch is placed several times and
the best plan kept (`place`): largest first (by smallest footprint, as first-fit-decreasing), most
regret first, priciest first, and regret insertion, which re-ranks after every replica, at real
prices and at shadow prices; squeaky-wheel passes, which put first the requests whose replicas paid
most above their cheapest option in the pass before; when room is short, also with the largest
replicas held back to the end, or those the relaxation cannot place either. The passes are
deterministic, and a batch of more than `MANY_REPLICAS` gets only the first.

A tensor-parallel replica lands on all its GPUs or on none: GPUs are chosen before anything is
taken, and it holds them whole, whatever the class's sharing mechanism: its GPUs synchronise every
layer, so a neighbour's load on one of them stalls all of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

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
    slices_serve,
    smallest_instance,
    take,
    time_sliced,
    untolerated,
)
from scheduler.inventory import PCIE_DOMAINS_LABEL, RDMA_LABELS, Inventory
from scheduler.plan import Placement, Plan, Request, Unplaced
from scheduler.registry import Model, Registry, per_gpu_need_mib
from scheduler.shadow import Row, Shadow, Way, shadow, surcharge

Order = Callable[[Sequence[Request], dict[str, list[Shape]], FleetState], list[Request]]
"""Which request's replicas go first: a function of the batch, its shapes and the fleet."""


def place(
    requests: Sequence[Request],
    registry: Registry,
    inventory: Inventory,
    hold_back: bool = True,
    like: FleetState | None = None,
) -> Plan:
    """Place every replica of `requests` with the greedy policy (`scheduler.schedule` chooses the
    engine), keeping the best of a few greedy passes: one per order of `ORDERS`, and regret
    insertion, which always places next the replica with the most to lose (`_regret_pass`), at
    real prices and with the fleet's shadow prices added at each of `SHADOW_SHARES`;
    `SQUEAKY_PASSES` more that move the requests that overpaid forward (`_squeaky_wheel`); when the
    best leaves replicas unplaced, a few more (`_short_of_room`), unless `hold_back` is False (the
    caller has a plan that leaves out no more than the LP relaxation does: those passes, which are
    there to place more, cost as much as all the others). A batch of more than `MANY_REPLICAS` gets
    the first pass only, so that its time stays in proportion to its size. `like`: a state of
    `inventory` whose nodes and memo the passes share (`FleetState.of`)."""
    fresh = FleetState.of(inventory, like=like)
    options = {r.name: shapes(registry.get(r.model), r, fresh.classes()) for r in requests}
    if sum(r.replicas for r in requests) > MANY_REPLICAS:
        _place_in(fresh, largest_first(requests, options, fresh), registry, options)
        return fresh.plan()
    passes: list[list[Request] | dict[Row, float]] = [order(requests, options, fresh) for order in ORDERS]
    relaxed = shadow(fresh, requests, options)
    prices = relaxed.prices
    passes += [{}, *({row: share * p for row, p in prices.items()} for share in SHADOW_SHARES if prices)]
    best: Plan | None = None
    best_state = fresh
    for order in passes:
        if isinstance(order, dict):  # regret insertion, at real prices or with shadow prices added
            state = FleetState.of(inventory, like=fresh, shadow=order)
            _regret_pass(state, requests, registry, options)
        else:
            state = FleetState.of(inventory, like=fresh)
            _place_in(state, order, registry, options)
        plan = state.plan()
        if best is None or plan.better_than(best):
            best, best_state = plan, state
    assert best is not None
    if relaxed.split:
        state = FleetState.of(inventory, like=fresh)
        _guided_pass(state, requests, registry, options, relaxed.split)
        plan = state.plan()
        if plan.better_than(best):
            best, best_state = plan, state
    if not relaxed.left_out:  # short of room, the passes that hold replicas back decide
        best = _squeaky_wheel(inventory, fresh, requests, registry, options, best, best_state)
    if best.unplaced and hold_back:
        best = _short_of_room(inventory, fresh, requests, registry, options, relaxed, best)
    return best


def _short_of_room(
    inventory: Inventory,
    fresh: FleetState,
    requests: Sequence[Request],
    registry: Registry,
    options: dict[str, list[Shape]],
    relaxed: Shadow,
    best: Plan,
) -> Plan:
    """More passes for a batch the best plan leaves replicas of. When the fluid relaxation cannot
    place them all either, the replicas it leaves out are held back to the end and the others
    placed at shares of the shadow prices of the batch without them (the largest of
    `SHADOW_SHARES`, the full price and `SHORT_SHARE`). Otherwise regret insertion at `SHORT_SHARE`
    of the shadow prices, and the `held` replicas of largest footprint held back, for each `held`
    up to `MAX_HELD_BACK` (one replica fewer of 4 GPUs can make room for several of one). Returns
    the best plan of these and `best`."""
    tries: list[tuple[dict[str, int], dict[Row, float]]] = []
    if relaxed.left_out:
        rest = [replace(r, replicas=r.replicas - relaxed.left_out.get(r.name, 0)) for r in requests]
        prices = shadow(fresh, [r for r in rest if r.replicas], options).prices
        for share in (max(SHADOW_SHARES), 1.0, SHORT_SHARE):
            tries.append((relaxed.left_out, {row: share * p for row, p in prices.items()}))
    else:
        if relaxed.prices:
            tries.append(({}, {row: SHORT_SHARE * p for row, p in relaxed.prices.items()}))
        for held in range(1, min(len(best.unplaced), MAX_HELD_BACK) + 1):
            tries.append((_largest(requests, options, fresh, held), {}))
    for back, prices in tries:
        state = FleetState.of(inventory, like=fresh, shadow=prices)
        _holding_back(state, requests, registry, options, back)
        plan = state.plan()
        if plan.better_than(best):
            best = plan
    return best


def _guided_pass(
    state: FleetState,
    requests: Sequence[Request],
    registry: Registry,
    options: dict[str, list[Shape]],
    split: dict[str, list[tuple[Way, float]]],
) -> None:
    """Each request's replicas where the fluid relaxation puts them (its split rounded to whole
    replicas), the requests of largest footprint first; then each replica whose way had no room
    left (the relaxation packs shared GPUs as if VRAM were fluid) at its best option.

    Greedy passes decide one replica at a time and see what the batch needs of a class only through
    prices; the relaxation decides the whole batch at once, and where it is tight (a fleet whose
    cheap classes every request wants) rounding its answer lands closer to the optimum than any
    order of the greedy passes."""
    missed: list[tuple[Request, int]] = []
    for request in largest_first(requests, options, state):
        ways = _rounded(split.get(request.name, []), request.replicas)
        for replica in range(request.replicas):
            found = _on_way(state, ways[replica]) if replica < len(ways) else None
            if found is None:
                missed.append((request, replica))  # after the others: it must not take their ways
                continue
            option = found.build()
            state.placements.append(take(state, option, request, replica))
            state.paid[request.name] = state.paid.get(request.name, 0.0) + option.key[0]
    for request, replica in missed:
        place_one(state, registry.get(request.model), request, replica, options[request.name])


def _rounded(split: list[tuple[Way, float]], replicas: int) -> list[Way]:
    """`replicas` ways (at most) from a fractional split: the whole parts, then the largest remainders."""
    ways = [way for way, x in split for _ in range(int(x + 1e-6))]
    rest = sorted(split, key=lambda item: -((item[1] + 1e-6) % 1))
    ways += [way for way, _ in rest[: max(0, replicas - len(ways))]]
    return ways[:replicas]


def _on_way(state: FleetState, way: Way) -> _Found | None:
    """The best option of `way`'s shape on its node kind, in its kind of room (an instance of its
    profile, or GPUs); None when there is none now."""
    if way.shape.nodes > 1:
        return _best_found(state, way.shape, [way.kind])
    best: _Found | None = None
    for node, found in _memoised(state, way.shape, [way.kind]):
        for option in found:
            if (option.mig.profile.name if option.mig is not None else "") != way.profile:
                continue
            key = (*option.key[:-1], node.order)
            if best is None or key < best.key:
                best = _Found(key, option, node, way.shape)
    return best


SHADOW_SHARES = (0.5, 0.8)
"""Regret-insertion passes the online policy adds with the fleet's shadow prices (`scheduler.shadow`)
added to every option's cost, each at this share of them. At the full price every option the LP
relaxation would use costs a request the same, and tie-breaks decide; a share of it keeps the real
prices in the lead while steering replicas with a good alternative off the classes that are short."""
SQUEAKY_PASSES = 2
"""Squeaky-wheel passes the online policy adds: regret insertion, the requests that overpaid in the
passes before first."""


def _squeaky_wheel(
    inventory: Inventory,
    fresh: FleetState,
    requests: Sequence[Request],
    registry: Registry,
    options: dict[str, list[Shape]],
    best: Plan,
    last: FleetState,
) -> Plan:
    """Squeaky-wheel passes, starting from the best pass so far (`last`): a request whose replicas
    paid more than their cheapest option on the empty fleet did so because others took that option
    first, so the next pass places it earlier. Each request's priority adds up, pass after pass,
    what its replicas overpaid per replica (an unplaced one counts as twice its dearest option), and
    each pass is regret insertion with the priority added to the regret; the best plan is kept.
    Regret alone looks one replica ahead; this sees what an early choice cost the rest of the batch
    (a cheap tensor-parallel pair that leaves three single-GPU replicas without their class)."""
    cheapest = {r.name: _cheapest(fresh, r, options[r.name]) for r in requests}
    dearest = {
        r.name: max((s.cost(s.gpu.price_per_hour * s.gpus) for s in options[r.name]), default=0.0) for r in requests
    }
    priority = dict.fromkeys(cheapest, 0.0)
    for _ in range(SQUEAKY_PASSES):
        missing: dict[str, int] = {}
        for u in last.unplaced:
            missing[u.request] = missing.get(u.request, 0) + 1
        for r in requests:
            placed = r.replicas - missing.get(r.name, 0)
            over = last.paid.get(r.name, 0.0) - placed * cheapest[r.name] if placed else 0.0
            priority[r.name] += (over + 2 * dearest[r.name] * missing.get(r.name, 0)) / r.replicas
        last = FleetState.of(inventory, like=fresh)
        _regret_pass(last, requests, registry, options, priority)
        plan = last.plan()
        if plan.better_than(best):
            best = plan
    return best


SHORT_SHARE = 1.5
"""The share of the shadow prices in the passes for a fleet short of room: above the full price, so
that what a replica takes of the classes in demand counts for more than what it costs."""
MAX_HELD_BACK = 2
"""The most replicas of largest footprint the online policy tries placing last when a plan leaves
some unplaced."""


def _largest(
    requests: Sequence[Request], options: dict[str, list[Shape]], state: FleetState, held: int
) -> dict[str, int]:
    """Request -> how many of its replicas are among the `held` of largest footprint."""
    back: dict[str, int] = {}
    for r in largest_first(requests, options, state):
        if sum(back.values()) < held:
            back[r.name] = min(r.replicas, held - sum(back.values()))
    return back


def _holding_back(
    state: FleetState,
    requests: Sequence[Request],
    registry: Registry,
    options: dict[str, list[Shape]],
    back: dict[str, int],
) -> None:
    """The regret pass over all but `back` (request -> replicas held back), then those, each where
    it still fits (or recorded as unplaced)."""
    first = [replace(r, replicas=r.replicas - back.get(r.name, 0)) for r in requests]
    _regret_pass(state, [r for r in first if r.replicas], registry, options)
    for r in requests:
        for replica in range(r.replicas - back.get(r.name, 0), r.replicas):
            place_one(state, registry.get(r.model), r, replica, options[r.name])


MANY_REPLICAS = 400
"""Above this many replicas in a batch, the online policy makes one pass (largest first)."""


def _place_in(state: FleetState, order: Sequence[Request], registry: Registry, options: dict[str, list[Shape]]) -> None:
    for request in order:
        for replica in range(request.replicas):
            place_one(state, registry.get(request.model), request, replica, options[request.name])


def _regret_pass(
    state: FleetState,
    requests: Sequence[Request],
    registry: Registry,
    options: dict[str, list[Shape]],
    extra: dict[str, float] | None = None,
) -> None:
    """Regret insertion: place next a replica of the request that loses most if its cheapest GPU
    class is taken (its second-best class's cost minus its best, on the fleet as it is now), and
    recompute, after each replica, only the options on the node kind it took. `extra` is added to
    each request's regret (USD/hour, 0 when not given); costs include `state.shadow` prices."""
    left = {r.name: r.replicas for r in requests}
    by_name = {r.name: r for r in requests}
    footprint = {r.name: _footprint(options[r.name]) for r in requests}
    best_on: dict[str, dict[str, _Found]] = {r.name: {} for r in requests}
    """Per request, its best option on each node kind it may use."""

    def refresh(request: Request, kind: str) -> None:
        found: _Found | None = None
        cls = state.first(kind).model.name
        for shape in options[request.name]:
            if shape.gpu.name == cls and kind in state.kinds_for(request, shape):
                option = _best_found(state, shape, [kind])
                if option is not None and (found is None or option.key < found.key):
                    found = option
        if found is None:
            best_on[request.name].pop(kind, None)
        else:
            best_on[request.name][kind] = found

    users: dict[str, list[Request]] = {}
    for r in requests:
        for cls in {s.gpu.name for s in options[r.name]}:
            for kind in {k for s in options[r.name] if s.gpu.name == cls for k in state.kinds_for(r, s)}:
                users.setdefault(kind, []).append(r)
    ranked: dict[str, tuple[tuple[float, float], _Found | None]] = {}

    def rank(name: str) -> None:
        """The request's best option now, and its place in the queue: the most regret first."""
        by_class: dict[str, _Found] = {}
        for o in best_on[name].values():
            cls = o.shape.gpu.name
            if cls not in by_class or o.key < by_class[cls].key:
                by_class[cls] = o
        first = min(by_class.values(), key=lambda o: o.key, default=None)
        if first is None:
            ranked[name] = ((-math.inf, -footprint[name]), None)  # no room anywhere: say so first
            return
        second = min((o.key[0] for o in by_class.values() if o is not first), default=math.inf)
        regret = second - first.key[0] + (extra or {}).get(name, 0.0)
        ranked[name] = ((-regret, -footprint[name]), first)

    for kind, wanting in users.items():
        for r in wanting:
            refresh(r, kind)
    for r in requests:
        rank(r.name)
    while ranked:
        name = min(ranked, key=lambda n: ranked[n][0])
        found = ranked[name][1]
        request = by_name[name]
        replica = request.replicas - left[name]
        left[name] -= 1
        if not left[name]:
            del ranked[name]
        if found is None:
            place_one(state, registry.get(request.model), request, replica, options[name])  # records why not
            continue
        option = found.build()
        state.placements.append(take(state, option, request, replica))
        state.paid[name] = state.paid.get(name, 0.0) + option.key[0]
        for kind in {node.kind for node, _ in option.workers} | {option.node.kind}:
            for r in users[kind]:
                if left[r.name]:
                    refresh(r, kind)
                    rank(r.name)


def place_all(state: FleetState, requests: Sequence[Request], registry: Registry) -> None:
    """Place every replica of `requests` on `state` in one greedy pass, largest first."""
    options = {r.name: shapes(registry.get(r.model), r, state.classes()) for r in requests}
    _place_in(state, largest_first(requests, options, state), registry, options)


def _cheapest(state: FleetState, request: Request, options: Sequence[Shape]) -> float:
    """What one replica of `request` costs at least on `state` (its cheapest option now)."""
    costs = (o.key[0] for s in options for o in _options(state, s, state.kinds_for(request, s)))
    return min(costs, default=math.inf)


def _footprint(shapes_of: Sequence[Shape]) -> float:
    return min((s.per_gpu_mib * s.gpus for s in shapes_of), default=math.inf)


def largest_first(requests: Sequence[Request], options: dict[str, list[Shape]], state: FleetState) -> list[Request]:
    """The requests whose smallest way to run takes the most VRAM first (first-fit decreasing)."""
    return sorted(requests, key=lambda r: (-_footprint(options[r.name]), r.name))


def most_regret_first(requests: Sequence[Request], options: dict[str, list[Shape]], state: FleetState) -> list[Request]:
    """The requests that lose most when their cheapest GPU class is gone first: what a replica costs
    on its second-best class minus its best, on the fleet as it is (no alternative: first of all).
    A request with a good second choice leaves the scarce cheap class to one without."""
    regret: dict[str, float] = {}
    for r in requests:
        by_class: dict[str, float] = {}
        for shape in options[r.name]:
            for option in _options(state, shape, state.kinds_for(r, shape)):
                by_class[shape.gpu.name] = min(by_class.get(shape.gpu.name, math.inf), option.key[0])
        costs = sorted(by_class.values())
        regret[r.name] = math.inf if len(costs) < 2 else costs[1] - costs[0]
    return sorted(requests, key=lambda r: (-regret[r.name], -_footprint(options[r.name]), r.name))


def priciest_first(requests: Sequence[Request], options: dict[str, list[Shape]], state: FleetState) -> list[Request]:
    """The requests whose replicas cost most at their cheapest first: big spenders get first pick."""
    cheapest = {r.name: _cheapest(state, r, options[r.name]) for r in requests}
    return sorted(requests, key=lambda r: (-cheapest[r.name], -_footprint(options[r.name]), r.name))


ORDERS: tuple[Order, ...] = (largest_first, most_regret_first, priciest_first)
"""The orders the online policy tries; each is one greedy pass, milliseconds on hundreds of GPUs."""


def place_one(
    state: FleetState, model: Model, request: Request, replica: int, options: Sequence[Shape] | None = None
) -> Placement | None:
    """Place one replica on the best option now, or record why it cannot be placed."""
    if options is None:
        options = shapes(model, request, state.classes())
    found: _Found | None = None
    for shape in options:
        candidate = _best_found(state, shape, state.kinds_for(request, shape))
        if candidate is not None and (found is None or candidate.key < found.key):
            found = candidate
    if found is None:
        state.unplaced.append(
            Unplaced(request.name, replica, _why_not(state, model, request, options), request.namespace)
        )
        return None
    best = found.build()
    placement = take(state, best, request, replica)
    state.placements.append(placement)
    state.paid[request.name] = state.paid.get(request.name, 0.0) + best.key[0]
    return placement


def _options(state: FleetState, shape: Shape, kinds: Sequence[str]) -> Iterable[Option]:
    """Every option of one replica of `shape` on nodes of `kinds` now."""
    if shape.nodes > 1:
        workers = multi_node(state, kinds, shape)
        if workers:
            cost = sum(_marginal_cost(n, g, shape) for n, gs in workers for g in gs)
            first = workers[0]
            yield Option(_key(cost, shape, 0, first[0]), shape, first[0], first[1], workers=workers)
        return
    for node, found in _memoised(state, shape, kinds):
        for option in found:
            yield _on(option, node, shape)


@dataclass(frozen=True)
class _Found:
    """The best option of a shape, not built yet: its key (the memoised option's, for `node`, with
    the state's shadow prices added to the cost), the memoised option, the node it is for."""

    key: tuple[float, ...]
    option: Option
    node: NodeState
    shape: Shape

    def build(self) -> Option:
        return _on(self.option, self.node, self.shape)


def _best_found(state: FleetState, shape: Shape, kinds: Sequence[str]) -> _Found | None:
    """The best of `_options` by `_priced` key, building none of them."""
    if shape.nodes > 1:
        option = next(iter(_options(state, shape, kinds)), None)
        return None if option is None else _Found(_priced(state, option, option.key), option, option.node, shape)
    best: tuple[tuple[float, ...], Option, NodeState] | None = None
    for node, found in _memoised(state, shape, kinds):
        for option in found:
            key = _priced(state, option, (*option.key[:-1], node.order))
            if best is None or key < best[0]:
                best = (key, option, node)
    return None if best is None else _Found(best[0], best[1], best[2], shape)


def _priced(state: FleetState, option: Option, key: tuple[float, ...]) -> tuple[float, ...]:
    """`key` (the real cost first) with what `option` takes of capacity at `state.shadow` prices
    added to the cost; `key` itself when the state has no shadow prices."""
    if not state.shadow:
        return key
    profile = option.mig.profile.name if option.mig is not None else ""
    shape = option.shape
    what = (option.node.kind, profile, shape.per_gpu_mib, shape.gpus, *(node.kind for node, _ in option.workers))
    extra = state.surcharges.get(what)
    if extra is None:
        workers = [node for node, _ in option.workers] or [option.node]
        extra = sum(surcharge(state.shadow, node, shape, profile) for node in workers) / len(workers)
        state.surcharges[what] = extra
    return (round(key[0] + extra, 6), *key[1:])


def _memoised(state: FleetState, shape: Shape, kinds: Sequence[str]) -> Iterable[tuple[NodeState, list[Option]]]:
    """Per distinct node state of `kinds`, a node in it and the options found on one like it."""
    # What an option is depends on the node's state and on these of the shape, nothing else.
    what = (shape.gpu.name, shape.tp, shape.per_gpu_mib, shape.variant.quality)
    for kind in kinds:
        for signature, node in state.states(kind):
            memo_key = (kind, signature, *what)
            found = state.memo.get(memo_key)
            if found is None:
                found = state.memo[memo_key] = list(_node_options(node, shape))
            yield node, found


def _node_options(node: NodeState, shape: Shape) -> Iterable[Option]:
    """The options of one replica of `shape` on `node`: its tightest MIG instance or partition, and
    its tightest GPUs."""
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


def _on(option: Option, node: NodeState, shape: Shape) -> Option:
    """`option`, found on a node in the same state as `node` for a shape like `shape`, on `node`
    itself for `shape`."""
    if option.node is node and option.shape is shape:
        return option
    position = {id(g): i for i, g in enumerate(option.node.gpus)}
    mig = option.mig
    if mig is not None:
        mig = next(m for m in node.mig if m.profile.name == mig.profile.name)
    return Option(
        (*option.key[:-1], node.order),
        shape,
        node,
        tuple(node.gpus[position[id(g)]] for g in option.gpus),
        mig,
    )


def _key(
    cost: float, shape: Shape, leftover_mib: int, node: NodeState, gpus: Sequence[GpuState] = ()
) -> tuple[float, ...]:
    domain_idle = sum(1 for g in node.gpus if g.holders == 0 and gpus and g.domain == gpus[0].domain)
    quality = -shape.variant.quality
    return (round(cost, 6), quality, leftover_mib, domain_idle, node.idle(), shape.gpu.price_per_hour, node.order)


def _marginal_cost(node: NodeState, gpu: GpuState, shape: Shape) -> float:
    """What taking room on `gpu` adds to the bill, per unit of the replica's throughput: nothing if
    it already serves something."""
    if gpu.holders > 0:
        return 0.0
    if node.sharing in SHARED and shape.gpus == 1:
        return shape.gpu.price_per_hour * shape.per_gpu_mib / gpu.vram_mib
    return shape.cost(shape.gpu.price_per_hour)


def _why_not(state: FleetState, model: Model, request: Request, options: Sequence[Shape]) -> str:
    """What the replica needs at its smallest and the nearest fit (the most VRAM one GPU has free
    where the request may go), or what keeps it off the nodes where it would fit: a taint, a
    network without RDMA for a replica over several nodes, or GPUs idle but not in one domain of
    the interconnect, or nodes whose GPUs are time-sliced for a pod of several GPUs."""
    for shape in options:
        of_class = [k for k in state.kinds() if state.first(k).model.name == shape.gpu.name]
        barred = [k for k in of_class if untolerated(state.first(k), request) is not None]
        option = next(iter(_options(state, shape, barred)), None)
        if option is not None:
            taint = untolerated(option.node, request)
            assert taint is not None
            named = f"{taint.key}={taint.value}:{taint.effect}" if taint.value else f"{taint.key}:{taint.effect}"
            return (
                f"fits only on nodes tainted {named} (such as {option.node.name}), which the request does not "
                f"tolerate: add a toleration for {taint.key} to the request"
            )
        without_rdma = [k for k in of_class if k not in barred and not state.first(k).inventory.rdma]
        if shape.nodes > 1 and next(iter(_options(state, shape, without_rdma)), None) is not None:
            return (
                f"needs {shape.per_gpu_mib / MIB_PER_GIB:.0f} GiB on each of {shape.tp} GPUs of {shape.nodes} "
                f"{shape.gpu.name} nodes ({shape.variant.name}, pipeline parallel), which only nodes with "
                f"RDMA/InfiniBand between them take; no such node is labelled {RDMA_LABELS[0]}=true "
                f"(or {RDMA_LABELS[1]}=true)"
            )
        sliced = [k for k in of_class if k not in barred and time_sliced(state.first(k))]
        if not slices_serve(shape.tp) and next(iter(_options(state, shape, sliced)), None) is not None:
            return (
                f"its pods each need {shape.tp} whole {shape.gpu.name} GPUs ({shape.variant.name}, tensor parallel), "
                f"and time-sliced nodes take pods of one GPU only: the device plugin may hand a pod asking for "
                f"{shape.tp} nvidia.com/gpu slices of one GPU"
            )
    tolerated = {k for shape in options for k in state.kinds_for(request, shape)} or set(state.kinds())
    room_left = [
        (n.model.name, max([n.available(g) for g in n.gpus] + [m.profile.memory_mib for m in n.mig if m.free] + [0]))
        for kind in tolerated
        for n in state.candidates(kind)
    ]
    best = max(room_left, key=lambda item: item[1], default=None)
    free = f"largest free: {best[0]}, {best[1] / MIB_PER_GIB:.0f} GiB" if best and best[1] else "no GPU is free"
    if options:
        smallest = min(options, key=lambda s: (s.per_gpu_mib * s.gpus, s.gpus))
        split = _split_domains(state, smallest, tolerated)
        if split:
            return split
        variant, need, gpus, nodes = smallest.variant, smallest.per_gpu_mib, smallest.gpus, smallest.nodes
    else:
        allowed = [v for v in model.variants if v.quality >= request.min_quality]
        if not allowed:
            return f"no variant of {model.name} reaches quality {request.min_quality:g} ({free})"
        variant = min(allowed, key=lambda v: per_gpu_need_mib(model, v, 1, request.context, request.concurrency))
        need, gpus, nodes = per_gpu_need_mib(model, variant, 1, request.context, request.concurrency), 1, 1
    needs = f"needs {need / MIB_PER_GIB:.0f} GiB"
    if gpus > 1:
        needs += f" on each of {gpus} GPUs"
        per_node = f"{gpus // nodes} per node in {_domain_words(smallest)}"
        needs += (
            f" over {nodes} nodes with RDMA/InfiniBand between them, {per_node}"
            if nodes > 1
            else f" of {_domain_words(smallest)}"
        )
    if variant.min_compute_capability:
        needs += f" and compute capability >= {variant.min_compute_capability}"
    if variant.min_gfx:
        needs += f" (AMD: {variant.min_gfx} or newer)"
    return f"{needs} ({variant.name}); {free}"


def _domain_words(shape: Shape) -> str:
    """The domain a tensor-parallel group of `shape` keeps to, in words."""
    if shape.gpu.peer_links:
        return f"one {'NVLink' if shape.gpu.interconnect == 'nvlink' else 'xGMI'} domain"
    return f"one PCIe root (PCIe tensor parallel keeps {shape.throughput:.0%} of the throughput)"


def _split_domains(state: FleetState, shape: Shape, kinds: Iterable[str]) -> str:
    """Why a single-node tensor-parallel `shape` does not fit when a node has enough idle GPUs but
    not in one domain of its interconnect (PCIe roots as labelled, NVLink pairs), or ""."""
    if shape.nodes > 1 or shape.tp == 1:
        return ""
    for kind in kinds:
        for node in state.candidates(kind):
            if node.model.name != shape.gpu.name or fitting_gpus(node, shape) is not None:
                continue
            idle = [g for g in node.gpus if room(node, g, shape) >= shape.per_gpu_mib]
            if len(idle) >= shape.tp:
                most = max(sum(1 for g in idle if g.domain == d.domain) for d in idle)
                labelled = f"{PCIE_DOMAINS_LABEL}={node.inventory.pcie_domains}"
                where = "its links" if shape.gpu.peer_links else labelled
                return (
                    f"needs {shape.per_gpu_mib / MIB_PER_GIB:.0f} GiB on each of {shape.tp} GPUs of "
                    f"{_domain_words(shape)} ({shape.variant.name}); {node.name} has {len(idle)} idle "
                    f"{shape.gpu.name} GPUs but at most {most} in one domain ({where})"
                )
    return ""
