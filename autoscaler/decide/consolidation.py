"""Consolidation: moving running replicas to a cheaper shape, off a node so that it can go, or off a shared GPU
that a waiting replica needs, as its own, budgeted step (Karpenter's model: cheaper shapes and defragmentation).

The decide step never moves a running replica for another endpoint's sake (its incumbents stay,
`state.incumbents`); this is the one way it moves them on purpose, a waiting replica's sake included, within a
budget. Per loop, after the new replicas are placed, `consolidate` takes at most the budget left for the
interval: GPUs emptied for waiting replicas first, then the moves that save, in the order of the saving. The budget
counts nodes, as Karpenter's NodePool disruption budgets do (`maxNodesPerInterval`: a number, or a share of the
GPU nodes): a node is disrupted when a move takes a replica off it, once however many it takes, so emptying a
node of two endpoints spends one, and moving an endpoint of replicas on three nodes spends three.

- only endpoints that serve fully (every replica ready, at least their minimum), keep no promise, are not
  growing this loop, are not already moving and have not moved within the budget's interval: its status
  records one move, so a second within the interval would overwrite the first there, and a new leader, which
  counts the budget from the statuses, would count the first one's nodes no more (churn seed 2400: team-b/ep-13
  moved twice 7.6 s apart, and the next loop's moves spent a fifth node of four); nor within `consolidateAfter`
  of their last move, where longer, a payback floor: a move costs a model load on doubled capacity and a
  disruption, and the cheapest shape shifts as other endpoints come and go; nor while their replica count
  settles, within the scale-down stabilization window (`scaleDownStabilizationSeconds`) of its last change (a pod
  made or turned Ready, the replica count changed: `last_changes`; Karpenter's counts from a pod added to or
  removed from a node): a count still moving would be placed afresh on a shape it is about to leave, and an
  endpoint that follows demand, its count changing more often than `consolidateAfter`, would never move;
- *a cheaper shape*: the endpoint's replicas placed afresh, beside everything that runs now, cost at least
  `minSavingFraction` less per hour (another variant or class, or within its class a smaller split: an AMD
  partition, a MIG instance or a share of a GPU instead of a whole one);
- *an emptied node*: every replica on a node is of endpoints that may move, within the budget left (the
  nodes those endpoints' replicas leave), and they fit, placed afresh without that node, on nodes that
  already hold something: the node holds nothing once they serve, and the node autoscaler removes it
  (Cluster Autoscaler an empty node after its scale-down delay, Karpenter by its emptiness consolidation).
  The saving is the price of the nodes emptied of the classes the node autoscaler adds and removes
  (`settings.classes`: an emptied static or on-premises node stays, and saves nothing); no replica costs
  more. A move lands on occupied nodes only,
  never on one that a move under way or chosen before it in the loop takes replicas off (`leaving`: the
  node it empties would be occupied again, its saving counted twice), and empties one; a shape move lowers
  the replicas' cost, so (the replicas' cost, the nodes occupied) falls with every move: no move is undone
  by a later one;
- *a GPU emptied for a waiting replica* (`freeing`, first: a customer waits, dollars do not): a replica that
  waits for a node of a class shared by memory (KAI, HAMi) needs one GPU's room that no GPU has left; every
  replica on one GPU of its class is of endpoints that may move, and placed afresh in the shape they run off
  that GPU's node, at no higher cost, they leave it empty for the waiting replica, done before its node likely
  comes (`waiting_for_room`).
  It saves nothing; the waiting replica keeps its pod pending and its node ordered (its promise stands), and
  takes the GPU once it is empty (kube-scheduler binds it there; the next loop places it there);
- make-before-break: the moved endpoints' new replicas (placed as the saving was computed, `Consolidation
  .placements`) go in new workloads, never under a name they replace (`workloads.named`), preferring the
  planned nodes (kube-scheduler's node affinity, as every workload does); the old workloads keep serving and
  holding their GPUs and go once the new ones serve every replica (`workloads.orphans`), so an endpoint never
  has fewer ready replicas than before;
- the move is recorded on the endpoint's status (`status.consolidation`: when, and the workloads it
  replaces, and the nodes it takes replicas off), so that a restart neither forgets it nor counts the old
  replicas as incumbents again, and a new leader counts the budget per interval from the statuses (the leader
  with every move it began besides: an endpoint deleted since took its status with it); the controller writes
  that status before the move's workloads, and them only once it is written.

EGS neither cordons nor taints the node it empties: it owns no Node (other teams' pods may share it, and
the node autoscaler, not EGS, decides what goes), and a node of pods it does not own is never emptied.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from autoscaler.decide.placement import endpoint_cost, gpus_of, place_requests
from autoscaler.decide.settings import ConsolidationSettings, Settings
from autoscaler.decide.state import Move, Owned, workload_of
from autoscaler.decide.waiting import MEMORY_SHARED, endpoint_etas
from autoscaler.endpoint import Endpoint
from autoscaler.events import find_condition
from autoscaler.kubetime import read_time
from autoscaler.orders import OrderBook
from autoscaler.pods import endpoint_of
from scheduler.catalog import Catalog
from scheduler.inventory import Allocation, Inventory, NodeGpus, held_by
from scheduler.manifests import dns_label
from scheduler.plan import Placement, Plan, Request
from scheduler.registry import Registry


@dataclass(frozen=True)
class Consolidation:
    """The endpoints moved this loop (by `namespace/name`) and where their replicas go."""

    moves: Mapping[str, Move] = field(default_factory=dict)
    placements: Mapping[str, tuple[Placement, ...]] = field(default_factory=dict)
    blocked: tuple[Blocked, ...] = ()
    """The move worth making that takes replicas off more nodes than the whole budget allows, when no move
    within it was left: it never happens until the budget is raised, so it is reported (an Event)."""


@dataclass(frozen=True)
class Blocked:
    """A move larger than the whole budget: the endpoints it would move, the nodes it needs, the budget's nodes;
    and what it was found on, the GPU nodes and what they hold (`room`, `Inventory.digest`) and the endpoints' replicas
    (`held`): while they stay, it stays blocked, and a later loop reports it without searching for it again
    (`Observation.blocked`). Other workloads that take the room it needed, or free some, change `room`."""

    keys: tuple[str, ...]
    nodes: int
    allowed: int
    room: int = 0
    held: tuple[tuple[Placement, ...], ...] = ()


@dataclass(frozen=True)
class Option:
    """One move that may be made: the endpoints it moves, their new replicas, and USD per hour before and saved."""

    keys: tuple[str, ...]
    placements: tuple[Placement, ...]
    cost: float
    saving: float


def consolidate(
    endpoints: Sequence[Endpoint],
    staying: Mapping[str, Sequence[Placement]],
    workloads: Mapping[str, Sequence[Owned]],
    recorded: Mapping[str, Move],
    busy: Collection[str],
    inventory: Inventory,
    registry: Registry,
    catalog: Catalog,
    settings: Settings,
    now: float,
    unbound: Sequence[Allocation] = (),
    leaving: Collection[str] = (),
    begun: Iterable[tuple[str, Move]] = (),
    was_blocked: Sequence[Blocked] = (),
    changed: Mapping[str, float] = {},
    waiting: Sequence[Waiting] = (),
) -> Consolidation:
    """The moves to begin this loop, within what the budget leaves.

    `staying`: each endpoint's incumbents; `recorded`: the moves on the statuses; `busy`: the endpoints that
    keep a promise or grow this loop; `inventory`: the GPUs with every running and newly placed replica taken
    (a replacement never takes its predecessor's GPUs); `unbound`: what it holds for replicas whose pods are
    not bound yet, beside which a move's new pods must bind on a HAMi node in whatever order they arrive
    (`place_requests`), as the moves chosen before it; `leaving`: the nodes the replicas of moves and shape
    changes under way still hold (`leaving_nodes`), which no move lands on, nor do those the moves chosen here
    take replicas off: the node a move empties would be occupied again, and its saving counted twice; `begun`: the
    moves this controller began that it remembers (`Observation.moves_begun`, every one: an endpoint's may be
    several, its deleted incarnation's among them), counted with the statuses': the nodes they all took replicas
    off within the interval spend the budget (`maxNodesPerInterval` of the inventory's nodes); `was_blocked`: the
    moves the last loop found larger than the whole budget (`Blocked`), reported again unsearched while they stay
    so; `changed`: when each endpoint's replicas last changed (`last_changes`), within the scale-down stabilization
    window of which it stays put (`consolidateAfter` is a move's own payback floor); `waiting`: the replicas that
    wait for a node, for which a move may empty a shared GPU first (`freeing`)."""
    cfg = settings.consolidation
    if not cfg.enabled:
        return Consolidation()
    since = now - cfg.interval_s
    lately = {key for key, move in recorded.items() if move.at > now - cfg.settled_s}  # moved too lately to again
    lately |= {key for key, at in changed.items() if at > now - settings.scale_down_stabilization_s}  # settling
    run = _Run(
        disrupted_nodes([*begun, *recorded.items()], since), cfg.nodes_allowed(len(inventory)), inventory,
        tuple(unbound), frozenset(leaving), MAX_SEARCHES,
    )  # fmt: skip

    def movable() -> dict[str, Endpoint]:
        return {
            ep.key: ep
            for ep in endpoints
            if ep.key not in run.moves
            and ep.key not in busy
            and ep.key not in lately
            and _movable(ep, staying, workloads, recorded)
        }

    # A waiting replica is served before dollars are saved: its endpoint waits for a node meanwhile.
    by_key, sought = {ep.key: ep for ep in endpoints}, set()
    spots: dict[str, list[Spot]] | None = None  # read again once a move changes what may move and where
    can_move: dict[str, Endpoint] = {}
    for want in wanting(waiting, [*begun, *recorded.items()], since):
        alike = (want.key, want.placement.variant, want.placement.gpu_class)  # its endpoint's others, as found
        if not run.room_left():
            break
        if alike in sought or not in_time(want, 0.0, registry, settings, now):
            continue
        if spots is None:
            can_move = movable()
            spots = emptiable(can_move, staying, run.inventory, run.leaving)
        listed = spots.get(want.placement.gpu_class, ())
        frees = freeing(want, by_key[want.key], can_move, staying, listed, run, registry, catalog, settings, now)
        if frees is None:
            sought.add(alike)
        else:
            run.take(*frees, staying, workloads, now, for_=want.key)
            spots = None
    blocked: tuple[Blocked, ...] = ()
    while run.room_left():
        can_move = movable()
        candidates = cheaper(can_move, staying, run.inventory, registry, catalog, settings, run.unbound, run.leaving)
        candidates += emptying(can_move, staying, run.inventory, registry, catalog, settings, run.unbound, run.leaving)
        within = [c for c in candidates if len(c.nodes | run.disrupted) <= run.allowed]
        chosen, run.searches = _best(within, cfg.min_saving_fraction, run.searches)
        if chosen is None:
            # A move needing more nodes than an interval ever allows waits for no interval: say so, searched
            # once while the room and its endpoints' replicas stay as they were.
            room = run.inventory.digest(run.leaving) if was_blocked or candidates else 0
            blocked = tuple(b for b in was_blocked if _still_blocked(b, can_move, staying, room))[:1]
            larger = [c for c in candidates if len(c.nodes) > run.allowed] if not blocked else []
            found, run.searches = _best(larger, cfg.min_saving_fraction, run.searches)
            if found is not None:
                held = tuple(tuple(staying[key]) for key in found[1].keys)
                blocked = (Blocked(found[1].keys, len(found[0].nodes), run.allowed, room, held),)
            break
        candidate, best = chosen
        run.take(best, candidate.nodes, staying, workloads, now)
    return Consolidation(run.moves, run.placed, blocked)


@dataclass
class _Run:
    """What one loop's moves have spent and taken so far: the budget's nodes (`disrupted` of `allowed`), the
    searches left, the GPUs their new replicas take (`inventory`, `unbound`) and the nodes none lands on."""

    disrupted: frozenset[str]
    allowed: int
    inventory: Inventory
    unbound: tuple[Allocation, ...]
    leaving: frozenset[str]
    searches: int
    moves: dict[str, Move] = field(default_factory=dict)
    placed: dict[str, tuple[Placement, ...]] = field(default_factory=dict)

    def room_left(self) -> bool:
        return len(self.disrupted) < self.allowed and self.searches > 0

    def take(
        self,
        option: Option,
        nodes: frozenset[str],
        staying: Mapping[str, Sequence[Placement]],
        workloads: Mapping[str, Sequence[Owned]],
        now: float,
        for_: str = "",
    ) -> None:
        """Begin the move `option`, which takes replicas off `nodes`: its new replicas take their GPUs, and no
        later move lands on the nodes it leaves (their saving, or the GPU it empties, stays)."""
        for key in option.keys:
            replacing = tuple(sorted(w.name for w in workloads.get(key, ())))
            share = round(option.saving / len(option.keys), 4)
            off = tuple(sorted(_nodes(staying[key])))
            namespace = key.partition("/")[0]
            self.moves[key] = Move(now, namespace, replacing, share, off, for_)
            self.placed[key] = tuple(p for p in option.placements if f"{p.namespace}/{p.request}" == key)
        taken = [a for p in option.placements for a in held_by(p)]
        self.inventory, self.unbound = self.inventory.allocated(taken), (*self.unbound, *taken)
        self.leaving |= nodes
        self.disrupted |= nodes


@dataclass(frozen=True)
class Waiting:
    """A replica that waits for a node to come (`waiting.place_waiting`): its endpoint, the shape it waits in, and
    when its endpoint's waiting replicas likely serve (`waiting_for_room`)."""

    key: str
    placement: Placement
    eta: float


def waiting_for_room(
    waiting: Plan,
    ahead: Mapping[str, tuple[float, ...]],
    orders: OrderBook,
    registry: Registry,
    catalog: Catalog,
    settings: Settings,
    now: float,
) -> list[Waiting]:
    """The replicas of `waiting` (`waiting.place_waiting`) in the classes shared by memory, each with when its
    node more likely than not serves it: the median of what a promise reads its 0.95 point from
    (`waiting.endpoint_etas`). Against the promise, a move was begun for a replica whose node, in flight for
    minutes, bound its pod seconds later (churn seed 3150): the move only disrupted. None with consolidation off."""
    shared = {p.gpu_class for p in waiting.placements if p.sharing in MEMORY_SHARED}
    if not settings.consolidation.enabled or not shared:
        return []
    queued = Plan(tuple(p for p in waiting.placements if p.gpu_class in shared))
    median = replace(settings, eta=replace(settings.eta, quantile=0.5))
    likely = endpoint_etas(queued, ahead, orders, registry, catalog, median, now)
    return [Waiting(f"{p.namespace}/{p.request}", p, likely[f"{p.namespace}/{p.request}"]) for p in queued.placements]


FREEING_LOOPS = 3
"""Loops (`eta.step_s` each) a move that empties a GPU takes beyond the model loads: its workloads written, its
old ones deleted once the new replicas serve, and the old pods gone."""


def wanting(waiting: Sequence[Waiting], moves: Iterable[tuple[str, Move]], since: float) -> list[Waiting]:
    """The replicas of `waiting` that a shared GPU emptied may serve (one GPU of a class shared by memory: KAI,
    HAMi), less as many of each endpoint's as moves begun for it (`Move.for_`) serve: those still replacing, or
    begun within the budget's interval (their GPU may be empty and its pod not bound yet). A GPU emptied and
    taken by another pod is not sought again within the interval: the node the replica waits for still comes."""
    once = {(key, round(m.at, 3)): m for key, m in moves}  # the leader's memory and the status name one move
    under_way = Counter(m.for_ for m in once.values() if m.for_ and (m.replacing or m.at > since))
    wanted = []
    for w in sorted(waiting, key=lambda w: (w.eta, w.key, w.placement.replica)):
        if w.placement.sharing in MEMORY_SHARED and gpus_of(w.placement) == 1:
            if under_way[w.key] > 0:
                under_way[w.key] -= 1
            else:
                wanted.append(w)
    return wanted


@dataclass(frozen=True)
class Spot:
    """A shared GPU every replica on which is of endpoints that may move (`keys`), and the nodes moving them takes
    replicas off (`off`): what emptying it costs of the budget."""

    node: NodeGpus
    index: int
    keys: tuple[str, ...]
    off: frozenset[str]


def emptiable(
    movable: Collection[str],
    staying: Mapping[str, Sequence[Placement]],
    inventory: Inventory,
    leaving: Collection[str],
) -> dict[str, list[Spot]]:
    """Per GPU class, the GPUs shared by memory whose every replica is of a `movable` endpoint (no other team's
    pod, no new replica, no move's holds them too), on nodes that take replicas and no move leaves: read from the
    movable endpoints' replicas, not from every GPU of the fleet; those that move the fewest endpoints, then
    disrupt the fewest nodes, first."""
    on_gpu: dict[tuple[str, int], Counter[str]] = {}
    for key in movable:
        for a in (a for p in staying.get(key, ()) for a in held_by(p) if a.mig is None and a.sharing in MEMORY_SHARED):
            for index in a.gpus:
                on_gpu.setdefault((a.node, index), Counter())[key] += 1
    by_name = {n.node: n for n in inventory}
    spots: dict[str, list[Spot]] = {}
    for (name, index), here in on_gpu.items():
        node = by_name.get(name)
        if node is None or not node.schedulable or name in leaving or sum(here.values()) != node.gpus[index].holders:
            continue
        keys = tuple(sorted(here))
        off = frozenset().union(*(_nodes(staying[key]) for key in keys))
        spots.setdefault(node.model.name, []).append(Spot(node, index, keys, off))
    for listed in spots.values():
        listed.sort(key=lambda s: (len(s.keys), len(s.off), s.node.node, s.index))
    return spots


def freeing(
    want: Waiting,
    endpoint: Endpoint,
    movable: Mapping[str, Endpoint],
    staying: Mapping[str, Sequence[Placement]],
    spots: Sequence[Spot],
    run: _Run,
    registry: Registry,
    catalog: Catalog,
    settings: Settings,
    now: float,
) -> tuple[Option, frozenset[str]] | None:
    """The move that empties a GPU of `want`'s class for it (one of `spots`, as listed), and the nodes it takes
    replicas off: within the budget left, its endpoints, in the shape they run, placed afresh off the GPU's node
    (binpacked, a new pod on that node could take the very GPU it leaves), cost no more; `want` fits the emptied
    GPU; and the move is done, both loads counted, before `want`'s node likely serves it (`in_time`). As far as
    the searches left go. `want` keeps waiting for its node meanwhile, so its promise stands whether or not the GPU
    comes first (kube-scheduler binds its pod where it fits)."""
    request = replace(endpoint.request(1), variants=(want.placement.variant,), gpu_classes=(want.placement.gpu_class,))
    for spot in spots:
        node = spot.node
        if node.gpus[spot.index].vram_mib < want.placement.vram_mib_per_gpu:
            continue
        if len(spot.off | run.disrupted) > run.allowed:
            continue
        if run.searches <= 0:
            break
        run.searches -= 1
        kept = [p for key in spot.keys for p in staying[key]]
        requests = [_as_placed(movable[key].request(len(staying[key])), staying[key]) for key in spot.keys]
        plan = place_requests(requests, registry, run.inventory, settings, run.unbound, run.leaving | {node.node})
        before, after = endpoint_cost(kept, catalog), endpoint_cost(plan.placements, catalog)
        if plan.unplaced or after > before:
            continue
        if not in_time(want, max(_load(p, registry) for p in plan.placements), registry, settings, now):
            continue
        gpus = tuple(replace(g, used_mib=0, holders=0, whole=False) if g.index == spot.index else g for g in node.gpus)
        emptied = Inventory((node.with_gpus(gpus),), (), run.inventory.memo)
        if place_requests([request], registry, emptied, settings).unplaced:
            continue
        return Option(spot.keys, plan.placements, before, round(before - after, 4)), spot.off
    return None


def in_time(want: Waiting, moved_s: float, registry: Registry, settings: Settings, now: float) -> bool:
    """Whether a GPU emptied for `want` serves it before its node likely does: a move whose replicas load in
    `moved_s`, `want`'s own load, and `FREEING_LOOPS` loops."""
    return now + FREEING_LOOPS * settings.eta.step_s + moved_s + _load(want.placement, registry) < want.eta


def _load(p: Placement, registry: Registry) -> float:
    return registry.get(p.model).variant(p.variant).load_seconds


def _as_placed(request: Request, kept: Sequence[Placement]) -> Request:
    """`request` held to the variant and class its replicas run in, where they run in one: a move that empties a
    GPU relocates them, and placed afresh they might take a dearer shape where room allows (bf16 for fp8)."""
    shapes = {(p.variant, p.gpu_class) for p in kept}
    if len(shapes) != 1:
        return request
    [(variant, gpu_class)] = shapes
    return replace(request, variants=(variant,), gpu_classes=(gpu_class,))


CONSOLIDATION_BLOCKED = "ConsolidationBlocked"
"""The reason of the Event on an endpoint whose move is larger than the whole budget (`Blocked`), as
Karpenter's `DisruptionBlocked`: repeated each loop it lasts, the recorder counts it up in one Event."""


def blocked_note(blocked: Blocked, cfg: ConsolidationSettings) -> str:
    """The Event's note: the nodes the move needs against the budget, and what raises it (no saving, which may
    move from loop to loop: the recorder counts one note up, and the controller logs each note once)."""
    return (
        f"a move to a cheaper shape takes replicas off {blocked.nodes} nodes; the budget allows "
        f"{blocked.allowed} per {cfg.interval_s:g} s (consolidation.maxNodesPerInterval: "
        f"{cfg.max_nodes_per_interval}): it waits until the budget is raised"
    )


def last_changes(
    endpoints: Iterable[Endpoint], statuses: Mapping[str, Mapping[str, Any]], pods: Iterable[Mapping[str, Any]]
) -> dict[str, float]:
    """When each endpoint's replicas last changed, as the cluster records it, so that a new leader reads the same:
    a pod of it made (`creationTimestamp`: added, a move's or a new spec's, or made again) or turned Ready or not
    (its `Ready` condition's `lastTransitionTime`), or its replica count changed (`status.lastScaleTime`, which a
    scale-down leaves once its pods are gone). A move's own time is its status's (`Move.at`)."""
    latest: dict[tuple[str, str], float] = {}
    for pod in pods:
        if (owner := endpoint_of(pod)) is not None:
            ready = find_condition((pod.get("status") or {}).get("conditions"), "Ready") or {}
            stamps = ((pod.get("metadata") or {}).get("creationTimestamp"), ready.get("lastTransitionTime"))
            latest[owner] = max(latest.get(owner, 0.0), *(read_time(s) or 0.0 for s in stamps))
    found = {}
    for ep in endpoints:
        at = max(
            latest.get((ep.namespace, dns_label(ep.name)), 0.0),
            read_time(statuses.get(ep.key, {}).get("lastScaleTime")) or 0.0,
        )
        if at > 0:
            found[ep.key] = at
    return found


def disrupted_nodes(moves: Iterable[tuple[str, Move]], since: float) -> frozenset[str]:
    """The nodes the moves (each with its endpoint's key) begun after `since` took replicas off: what they spent
    of the budget, however many of them one endpoint made. A move whose record names none (written before the
    budget counted nodes) counts as one node of its own."""
    return frozenset(node for key, m in moves if m.at > since for node in (m.nodes or (f"{key} (nodes not recorded)",)))


def _still_blocked(
    blocked: Blocked, movable: Mapping[str, Endpoint], staying: Mapping[str, Sequence[Placement]], room: int
) -> bool:
    """Whether a move found blocked still is, as found: its endpoints may move, on the replicas they held then,
    over the same room (`Inventory.digest`)."""
    return (
        blocked.room == room
        and all(key in movable for key in blocked.keys)
        and blocked.held == tuple(tuple(staying[key]) for key in blocked.keys)
    )


def _nodes(placements: Iterable[Placement]) -> frozenset[str]:
    """The nodes `placements` hold something of."""
    return frozenset(a.node for p in placements for a in held_by(p))


@dataclass(frozen=True)
class Candidate:
    """A move not searched yet: the most it can save (`bound`, USD per hour), the endpoints it moves and what
    they cost now, its search (a `place_requests` call: a decide step's dearest part, run only where the
    bound leaves the move a chance, `_best`), and the nodes it takes replicas off (its disruption)."""

    bound: float
    keys: tuple[str, ...]
    cost: float
    search: Callable[[], Option | None]
    nodes: frozenset[str]


MAX_SEARCHES = 8
"""Moves searched a loop, those that could save the most first (a loop's later moves search what its earlier
ones left; those beyond wait for the next loop, within the same interval's budget): a search places the endpoints
afresh over the whole fleet (about 0.1 s of CPU at 10,000 GPUs), and searching every movable endpoint and
node took minutes a loop at 1,000 endpoints (`benchmarks/reconcile.py --consolidation`). Karpenter bounds its
consolidation the same way (candidates by disruption cost, a time limit): a move of a small bound waits
until those above it are made or stop being candidates."""


def _best(
    candidates: Sequence[Candidate], fraction: float, searches: int = MAX_SEARCHES
) -> tuple[tuple[Candidate, Option] | None, int]:
    """The move worth making (saving more than 0 and at least `fraction` of its cost) that saves the most, with
    its candidate (which holds the nodes it takes replicas off), and the searches left; of equal savings the one
    of the largest keys, then the first listed. Searched in the order of what each could save, and no further
    once none left could beat the best found (the move searching all would find), nor beyond `searches`
    searches."""
    rank = {id(c): (c.bound, c.keys, -i) for i, c in enumerate(candidates)}
    best: tuple[tuple[float, tuple[str, ...], int], Candidate, Option] | None = None
    for c in sorted(candidates, key=lambda c: rank[id(c)], reverse=True):
        if c.bound <= 0 or c.bound < c.cost * fraction:
            continue
        if (best is not None and rank[id(c)] < best[0]) or searches == 0:
            break  # it saves at most its bound, or the searches are spent
        searches -= 1
        option = c.search()
        if option is None or option.saving <= 0 or option.saving < option.cost * fraction:
            continue
        found = (option.saving, option.keys, rank[id(c)][2])
        if best is None or found > best[0]:
            best = (found, c, option)
    return (None if best is None else best[1:]), searches


def cheaper(
    movable: Mapping[str, Endpoint],
    staying: Mapping[str, Sequence[Placement]],
    inventory: Inventory,
    registry: Registry,
    catalog: Catalog,
    settings: Settings,
    unbound: Sequence[Allocation],
    leaving: frozenset[str],
) -> list[Candidate]:
    """Each endpoint's replicas placed afresh beside everything that runs, off the nodes `leaving`: any
    shape, its own included (a replica of the same variant and class costs less on a partition, a MIG
    instance or a share). It saves at most what the replicas cost now."""
    candidates = []
    for key, ep in movable.items():
        before = endpoint_cost(staying[key], catalog)
        request = ep.request(len(staying[key]))
        search = partial(_cheaper, key, request, before, registry, inventory, catalog, settings, unbound, leaving)
        candidates.append(Candidate(before, (key,), before, search, _nodes(staying[key])))
    return candidates


def _cheaper(
    key: str,
    request: Request,
    before: float,
    registry: Registry,
    inventory: Inventory,
    catalog: Catalog,
    settings: Settings,
    unbound: Sequence[Allocation],
    leaving: frozenset[str],
) -> Option | None:
    plan = place_requests([request], registry, inventory, settings, unbound, leaving)
    if plan.unplaced:
        return None
    return Option((key,), plan.placements, before, before - endpoint_cost(plan.placements, catalog))


def emptying(
    movable: Mapping[str, Endpoint],
    staying: Mapping[str, Sequence[Placement]],
    inventory: Inventory,
    registry: Registry,
    catalog: Catalog,
    settings: Settings,
    unbound: Sequence[Allocation],
    leaving: frozenset[str],
) -> list[Candidate]:
    """Per node whose every replica is of `movable` endpoints, those endpoints' replicas placed afresh without
    it, where they land on nodes that hold something already and that no other move is emptying (`leaving`),
    and cost no more: the node, and any other left holding nothing, is
    saved. It saves at most the price of the nodes those endpoints alone hold, of the classes the node
    autoscaler removes."""
    holds = {n.node: _holds(n) for n in inventory}
    mine: dict[str, Counter[str]] = {}
    on: dict[str, set[str]] = {}  # the nodes each endpoint holds something of, read once, not once per node
    for key, kept in staying.items():
        for a in (a for p in kept for a in held_by(p)):
            mine.setdefault(a.node, Counter())[key] += a.count if a.mig else len(a.gpus)
            on.setdefault(key, set()).add(a.node)
    occupied = frozenset(name for name, held in holds.items() if held) - leaving
    # Where a moved replica may land: the search per node is skipped where no other such node has room.
    roomy = {n.node for n in inventory if n.node in occupied and n.schedulable and _room(n)}
    by_name = {n.node: n for n in inventory}
    order = {name: i for i, name in enumerate(by_name)}
    candidates = []
    for node in inventory:
        here = mine.get(node.node, Counter())
        keys = tuple(sorted(here))
        if not (node.schedulable and keys and set(keys) <= movable.keys()):
            continue
        if not roomy - {node.node}:
            continue
        if sum(here.values()) != holds[node.node]:
            continue  # a pod EGS does not move holds it
        kept = [p for key in keys for p in staying[key]]
        held = frozenset().union(*(on[key] for key in keys))
        # The nodes they hold, in the inventory's order (the bound adds their prices in it), not the whole
        # inventory read for each of hundreds of nodes.
        theirs = sorted(held & occupied, key=order.__getitem__)
        alone = [by_name[name] for name in theirs if _saves(by_name[name], keys, mine, holds)]
        bound = round(sum(_price(n, catalog) for n in alone if n.model.name in settings.classes), 4)
        requests = [movable[key].request(len(staying[key])) for key in keys]
        search = partial(
            _emptied, node, keys, kept, requests, occupied, mine, holds,
            registry, inventory, catalog, settings, unbound, leaving | {node.node},
        )  # fmt: skip
        candidates.append(Candidate(bound, keys, endpoint_cost(kept, catalog), search, held))
    return candidates


def _emptied(
    node: NodeGpus,
    keys: tuple[str, ...],
    kept: Sequence[Placement],
    requests: Sequence[Request],
    occupied: frozenset[str],
    mine: Mapping[str, Counter[str]],
    holds: Mapping[str, int],
    registry: Registry,
    inventory: Inventory,
    catalog: Catalog,
    settings: Settings,
    unbound: Sequence[Allocation],
    barred: frozenset[str],
) -> Option | None:
    """The move that empties `node`, placed without the nodes `barred` (the node itself, nodes being emptied);
    None where they do not all land on nodes that hold something, at no higher cost."""
    plan = place_requests(requests, registry, inventory, settings, unbound, barred)
    landing = {w.node for p in plan.placements for w in p.workers}
    before, after = endpoint_cost(kept, catalog), endpoint_cost(plan.placements, catalog)
    if plan.unplaced or not landing <= occupied or after > before:
        return None
    left = occupied - landing
    emptied = [n for n in inventory if n.node in left and _saves(n, keys, mine, holds)]
    # What the cluster pays less: the nodes that go, of the classes the node autoscaler adds and removes
    # (an emptied static or on-premises node stays, paid for). The replicas land on GPUs paid for already,
    # so a cheaper shape there saves nothing more (its GPUs, counted in the node, are not counted twice).
    saved = sum(_price(n, catalog) for n in emptied if n.model.name in settings.classes)
    return Option(keys, plan.placements, before, round(saved, 4))


def _saves(node: NodeGpus, keys: Collection[str], mine: Mapping[str, Counter[str]], holds: Mapping[str, int]) -> bool:
    """Whether the endpoints `keys` hold everything held on `node` (`mine`: what each endpoint holds per node)."""
    here = mine.get(node.node)
    return here is not None and sum(here[k] for k in keys) == holds[node.node]


def _price(node: NodeGpus, catalog: Catalog) -> float:
    return catalog.get(node.model.name).price_per_hour * node.physical_gpus


def leaving_nodes(pods: Iterable[Mapping[str, Any]], replaced: Collection[tuple[str, str]]) -> frozenset[str]:
    """The nodes the pods of `replaced` workloads (namespace, name) are bound to: the old replicas of moves
    and shape changes under way, which go once the new ones serve."""
    return frozenset(
        str(node) for pod in pods if (node := (pod.get("spec") or {}).get("nodeName")) and workload_of(pod) in replaced
    )


def _holds(node: NodeGpus) -> int:
    """The replicas and pods holding a GPU, a MIG instance or a partition of `node`, one per thing held."""
    return sum(g.holders for g in node.gpus) + sum(s.used for s in node.mig)


def _room(node: NodeGpus) -> bool:
    """Whether a new replica could take anything of `node`: a GPU with VRAM it may hand out, or a free instance."""
    return any(node.available_mib(g) > 0 for g in node.gpus) or any(s.free > 0 for s in node.mig)


def _movable(
    ep: Endpoint,
    staying: Mapping[str, Sequence[Placement]],
    workloads: Mapping[str, Sequence[Owned]],
    recorded: Mapping[str, Move],
) -> bool:
    """An endpoint that runs, serves fully and is not moving already."""
    kept, move = staying.get(ep.key, ()), recorded.get(ep.key)
    moving = move is not None and bool(move.replacing)
    return bool(kept) and not moving and _serving(workloads.get(ep.key, ()), len(kept), ep.min_replicas)


def _serving(mine: Sequence[Owned], replicas: int, minimum: int) -> bool:
    """Every workload of the endpoint serves all its replicas, and they are at least its minimum."""
    ready = sum(w.ready for w in mine)
    return bool(mine) and all(w.ready >= w.replicas for w in mine) and ready >= max(replicas, minimum, 1)
