"""Placement: the scheduler's one entry point as the decide step calls it, and placements grouped.

Every replica the decide step places, on nodes that exist or on nodes being provisioned, goes through
`place_requests`, so the controller and the API (`autoscaler.admission`) choose alike.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from itertools import accumulate

from autoscaler.decide.settings import Settings
from autoscaler.decide.state import ACCEPTED, CREATED, Owned, Promise, pinned
from common.errors import InputError
from scheduler.binpack import Pending, binds_in_every_order
from scheduler.catalog import Catalog
from scheduler.fleet import SHARED
from scheduler.inventory import Allocation, Inventory, NodeGpus, held_by, partitions_per_gpu
from scheduler.plan import Placement, Plan, Request, Unplaced, Worker
from scheduler.registry import Registry
from scheduler.schedule import schedule


def place_requests(
    requests: Sequence[Request],
    registry: Registry,
    inventory: Inventory,
    settings: Settings,
    unbound: Sequence[Allocation] = (),
    barred: frozenset[str] = frozenset(),
) -> Plan:
    """The scheduler's one entry point, with the configured engine. The scheduler tells requests apart
    by name, and endpoints of one name in two namespaces are two: each goes in as `namespace/name`
    and its replicas come back under its own name and namespace.

    A HAMi node keeps only the new replicas (shares, or whole GPUs) whose pods bind there in every order
    they may arrive, counting the pods `unbound` holds on it (taken from `inventory`, not bound yet:
    `scheduler.binpack`); the others are placed again without that node (`barred`), elsewhere or not at all."""
    keyed = [replace(r, name=f"{r.namespace}/{r.name}") for r in requests]
    allowed = inventory.where(lambda n: n.node not in barred) if barred else inventory
    plan = schedule(keyed, registry, allowed, engine=settings.engine, time_limit_s=settings.time_limit_s).plan
    placements = tuple(replace(p, request=p.request.partition("/")[2]) for p in plan.placements)
    unplaced = tuple(
        replace(u, namespace=u.request.partition("/")[0], request=u.request.partition("/")[2]) for u in plan.unplaced
    )
    kept, stranded = _bindable(placements, inventory, unbound)
    if not stranded:
        return Plan(placements, unplaced, plan.occupied)
    count = Counter((p.namespace, p.request) for p in stranded)
    again = [replace(r, replicas=count[(r.namespace, r.name)]) for r in requests if count[(r.namespace, r.name)]]
    taken = [a for p in kept for a in held_by(p)]
    hami = {n.node for n in inventory.nodes if n.sharing == "hami"}
    left = frozenset(w.node for p in stranded for w in p.workers if w.node in hami)
    more = place_requests(again, registry, inventory.allocated(taken), settings, (*unbound, *taken), barred | left)
    # The GPUs of the nodes left that no kept replica holds are not the plan's to pay for.
    held = {f"{w.node}/gpu{i}" for p in kept for w in p.workers for i in w.gpus}
    occupied = {k: v for k, v in plan.occupied.items() if k.partition("/")[0] not in left or k in held}
    return Plan(kept + more.placements, unplaced + more.unplaced, occupied | more.occupied)


def _bindable(
    placements: Sequence[Placement], inventory: Inventory, unbound: Sequence[Allocation]
) -> tuple[tuple[Placement, ...], tuple[Placement, ...]]:
    """`placements` split into those kept and those on a HAMi node that some arrival order would strand
    there, taken in plan order: a replica is kept where, on each HAMi node it has a pod on, that pod binds
    in every order with those kept before it (shares and whole GPUs alike: `scheduler.binpack`)."""
    hami = {n.node: n for n in inventory.nodes if n.sharing == "hami"}
    # The GPUs' room counting bound pods only: where a pending pod lands is HAMi's choice, not ours.
    free = {name: [g.free_mib for g in n.gpus] for name, n in hami.items()}
    pending: dict[str, list[Pending]] = {}
    for a in unbound:
        if a.node in hami and a.mig is None:
            gpus = hami[a.node].gpus
            pending.setdefault(a.node, []).append(_pending(hami[a.node], a.sharing, a.vram_mib, len(a.gpus)))
            for index in a.gpus:
                free[a.node][index] += a.vram_mib if a.sharing == "hami" else gpus[index].vram_mib
    kept: list[Placement] = []
    stranded: list[Placement] = []
    for p in placements:
        pods = {w.node: _pending(hami[w.node], p.sharing, p.vram_mib_per_gpu, len(w.gpus)) for w in p.workers
                if w.node in hami and not w.mig_profile}  # fmt: skip
        if all(binds_in_every_order(free[node], [*pending.get(node, ()), pod]) for node, pod in pods.items()):
            for node, pod in pods.items():
                pending.setdefault(node, []).append(pod)
            kept.append(p)
        else:
            stranded.append(p)
    return tuple(kept), tuple(stranded)


def _pending(node: NodeGpus, sharing: str, mib: int, devices: int) -> Pending:
    """What a pod of `devices` GPUs asks HAMi for: a share of each, or (whole GPUs) all of each."""
    return Pending(mib if sharing == "hami" else node.gpus[0].vram_mib, devices)


def by_endpoint(placements: Sequence[Placement]) -> dict[str, list[Placement]]:
    grouped: dict[str, list[Placement]] = {}
    for p in placements:
        grouped.setdefault(f"{p.namespace}/{p.request}", []).append(p)
    return grouped


def renumbered(placements: Sequence[Placement]) -> list[Placement]:
    """Numbered 0, 1, ... in order; most are already (a copy of each cost a serving loop 0.02 s at 1,000 endpoints)."""
    return [p if p.replica == i else replace(p, replica=i) for i, p in enumerate(placements)]


def gpus_of(p: Placement) -> int:
    return p.tp * len(p.workers)


def by_class(placements: Sequence[Placement]) -> dict[str, list[Placement]]:
    grouped: dict[str, list[Placement]] = {}
    for p in placements:
        grouped.setdefault(p.gpu_class, []).append(p)
    return grouped


def replica_cost(p: Placement, catalog: Catalog) -> float:
    """USD per hour of what one replica holds, at the catalogue's prices (the configured `prices:`): its
    whole GPUs, its MIG instance's or AMD partition's share of one, or its share of a shared GPU's VRAM."""
    gpu = catalog.get(p.gpu_class)
    share = 1.0
    if p.sharing == "mig":
        profile = gpu.mig_profile(p.workers[0].mig_profile or "")
        share = profile.gpu_share if profile is not None else 1.0
    elif p.sharing == "partition":
        parts = partitions_per_gpu(gpu, p.workers[0].mig_profile or "")
        share = 1.0 / parts if isinstance(parts, int) else 1.0
    elif p.sharing in SHARED:
        share = min(1.0, p.vram_mib_per_gpu / gpu.vram_mib)
    return share * gpus_of(p) * gpu.price_per_hour


def endpoint_cost(placements: Sequence[Placement], catalog: Catalog) -> float:
    """USD per hour of an endpoint's replicas, rounded so that the status it is written to is stable."""
    return round(sum(replica_cost(p, catalog) for p in placements), 4)


def serving_cost(workloads: Iterable[Owned], catalog: Catalog) -> float:
    """USD per hour of `workloads`' replicas at the shapes they record, rounded as `endpoint_cost` (one that
    records none, written before shapes were, is not counted): what an endpoint whose spec is not applied
    runs, whatever its last status said."""
    cost = 0.0
    for w in workloads:
        if w.shape is not None:
            s = w.shape
            workers = tuple(Worker("", (), s.mig_profile) for _ in range(s.nodes))
            one = Placement("", 0, s.model, s.variant, s.precision, 0.0, s.gpu_class, s.sharing, s.tp,
                            s.vram_mib_per_gpu, workers)  # fmt: skip
            cost += w.replicas * replica_cost(one, catalog)
    return round(cost, 4)


def not_bound(placed: Mapping[str, Sequence[Placement]], bound: Mapping[str, int]) -> dict[str, Sequence[Placement]]:
    """Each endpoint's replicas whose pods are not bound yet, where it has any: `placed` lists its
    `bound` ones (incumbents) first."""
    return {k: ps[bound.get(k, 0) :] for k, ps in placed.items() if len(ps) > bound.get(k, 0)}


def unbound(placing: Mapping[str, Sequence[Placement]], new: Collection[str]) -> dict[str, frozenset[str]]:
    """GPU class -> the `new` endpoints with a replica placed on a node there whose pod is not bound yet
    (`placing`: `not_bound`'s)."""
    found: dict[str, set[str]] = {}
    for key in new:
        for p in placing.get(key, ()):
            found.setdefault(p.gpu_class, set()).add(key)
    return {c: frozenset(keys) for c, keys in found.items()}


def place_new(
    requests: Sequence[Request],
    promises: Mapping[str, Promise],
    registry: Registry,
    inventory: Inventory,
    settings: Settings,
    keeps: Mapping[str, Promise] | None = None,
    unbound: Sequence[Allocation] = (),
) -> Plan:
    """The replicas beyond the incumbents, placed on what the incumbents leave: first those of endpoints
    answered 201, then 202 (`promises`, by `namespace/name`: nothing of theirs runs yet; room too small for
    every 202 goes to those whose promised nodes are due first, `_earliest_first`), in the variant
    and class promised, so that what the API answered is what the controller does; then more replicas
    of endpoints that run (`keeps`: their incumbents' shape) in that shape; then the others. A 201's
    replicas that no longer fit in their promised shape (its capacity is gone), and an endpoint's that
    do not fit in its incumbents' shape, are placed with the others; a 202's wait for the class
    promised (`waiting.place_waiting` with the same pins). `unbound`: what `inventory` holds for
    replicas whose pods are not bound yet (`place_requests`)."""
    placements: tuple[Placement, ...] = ()
    unplaced: tuple[Unplaced, ...] = ()
    occupied: dict[str, tuple[float, float]] = {}
    gone: Counter[str] = Counter()
    pinned_by = {**(keeps or {}), **promises}
    tiers = ((promises, CREATED), (promises, ACCEPTED), (keeps or {}, CREATED))
    for told, answer in tiers:
        batch = [pinned(r, told[_key(r)]) for r in requests if _key(r) in told and told[_key(r)].answer == answer]
        batch = [r for r in batch if r.replicas > 0 and pinned_by[_key(r)] is told[_key(r)]]
        if not batch:
            placed = Plan()
        elif answer == ACCEPTED:
            placed = _earliest_first(batch, told, registry, inventory, settings, unbound)
        else:
            placed = place_requests(batch, registry, inventory, settings, unbound)
        for u in placed.unplaced:
            if answer == CREATED:
                gone[f"{u.namespace}/{u.request}"] += 1
            else:
                unplaced += (u,)
        taken = [a for p in placed.placements for a in held_by(p)]
        inventory, unbound = inventory.allocated(taken), (*unbound, *taken)
        placements, occupied = placements + placed.placements, occupied | placed.occupied
    rest = [r for r in requests if _key(r) not in pinned_by]
    rest += [replace(r, replicas=gone[_key(r)]) for r in requests if gone[_key(r)]]
    others = place_requests(rest, registry, inventory, settings, unbound) if rest else Plan()
    return Plan(placements + others.placements, unplaced + others.unplaced, occupied | others.occupied)


def _earliest_first(
    batch: Sequence[Request],
    promises: Mapping[str, Promise],
    registry: Registry,
    inventory: Inventory,
    settings: Settings,
    unbound: Sequence[Allocation],
) -> Plan:
    """The 202s of `batch` placed so that room for some of them goes to those whose nodes are due first: placed
    together, the scheduler packs whichever it likes, and in churn seed 4 an L40S node that came for six 202s
    took the two promised 650-660 s (a node ordered anew) while two promised 103-107 s, on that node, waited
    and were late by 290 s. One scheduler call where all or none are placed; else, per set of classes, the
    longest run of promises in the order their nodes are due that places whole (`_deadline_prefix`), of at
    most as many replicas as that call placed."""
    together = place_requests(batch, registry, inventory, settings, unbound)
    if not together.placements or not together.unplaced:
        return together
    groups: dict[tuple[str, ...], list[Request]] = {}
    for r in sorted(batch, key=lambda r: node_due(r.model, promises[_key(r)], registry)):
        groups.setdefault(r.gpu_classes, []).append(r)
    plan = Plan()
    for order in groups.values():
        placed = _deadline_prefix(order, len(together.placements), registry, inventory, settings, unbound)
        taken = [a for p in placed.placements for a in held_by(p)]
        inventory, unbound = inventory.allocated(taken), (*unbound, *taken)
        plan = _joined(plan, placed)
    return plan


def _deadline_prefix(
    order: Sequence[Request],
    room: int,
    registry: Registry,
    inventory: Inventory,
    settings: Settings,
    unbound: Sequence[Allocation],
) -> Plan:
    """The longest prefix of `order` (the node promised earliest first) whose replicas all place, then the rest
    on what it leaves. Found by halving (a prefix of one that places whole places whole, near enough) from the
    longest of at most `room` replicas, what the whole batch placed: a prefix of more would not place whole
    either, and a call that leaves replicas out is the costly one (the online engine's LP placed 56 of 159
    replicas in 0.45 s, and 56 of 56 in 0.005 s), so the first call tried usually places whole and ends it."""
    replicas = list(accumulate(r.replicas for r in order))
    whole, low, high = Plan(), 0, bisect_right(replicas, room)
    mid = high
    while low < high:
        plan = place_requests(order[:mid], registry, inventory, settings, unbound)
        if plan.unplaced:
            high = mid - 1
        else:
            whole, low = plan, mid
        mid = (low + high + 1) // 2
    if low == len(order):
        return whole
    taken = [a for p in whole.placements for a in held_by(p)]
    rest = place_requests(order[low:], registry, inventory.allocated(taken), settings, (*unbound, *taken))
    return _joined(whole, rest)


def node_due(model: str, promise: Promise, registry: Registry) -> float:
    """When `promise` (a 202's) counted on its node: its ETA less the load of its variant of `model`. The API
    queues each 202 behind those answered before it, so one answered later may be promised earlier for a
    shorter load, on a later node: ordered by its ETA, it would take the node an earlier answer was promised."""
    if promise.eta is None:
        return math.inf
    try:
        return promise.eta - registry.get(model).variant(promise.variant or "").load_seconds
    except InputError:  # the registry no longer has it
        return promise.eta


def _joined(a: Plan, b: Plan) -> Plan:
    return Plan(a.placements + b.placements, a.unplaced + b.unplaced, a.occupied | b.occupied)


def _key(r: Request) -> str:
    return f"{r.namespace}/{r.name}"
