"""Placement: the scheduler's one entry point as the decide step calls it, and placements grouped.

Every replica the decide step places, on nodes that exist or on nodes being provisioned, goes through
`place_requests`, so the controller and the API (`autoscaler.admission`) choose alike.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace

from autoscaler.decide.settings import Settings
from autoscaler.decide.state import CREATED, Promise, pinned
from scheduler.catalog import Catalog
from scheduler.fleet import SHARED
from scheduler.inventory import Inventory, held_by, partitions_per_gpu
from scheduler.plan import Placement, Plan, Request
from scheduler.registry import Registry
from scheduler.schedule import schedule


def place_requests(requests: Sequence[Request], registry: Registry, inventory: Inventory, settings: Settings) -> Plan:
    """The scheduler's one entry point, with the configured engine. The scheduler tells requests apart
    by name, and endpoints of one name in two namespaces are two: each goes in as `namespace/name`
    and its replicas come back under its own name and namespace."""
    keyed = [replace(r, name=f"{r.namespace}/{r.name}") for r in requests]
    plan = schedule(keyed, registry, inventory, engine=settings.engine, time_limit_s=settings.time_limit_s).plan
    placements = tuple(replace(p, request=p.request.partition("/")[2]) for p in plan.placements)
    unplaced = tuple(
        replace(u, namespace=u.request.partition("/")[0], request=u.request.partition("/")[2]) for u in plan.unplaced
    )
    return Plan(placements, unplaced, plan.occupied)


def by_endpoint(placements: Sequence[Placement]) -> dict[str, list[Placement]]:
    grouped: dict[str, list[Placement]] = {}
    for p in placements:
        grouped.setdefault(f"{p.namespace}/{p.request}", []).append(p)
    return grouped


def renumbered(placements: Sequence[Placement]) -> list[Placement]:
    return [replace(p, replica=i) for i, p in enumerate(placements)]


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


def place_new(
    requests: Sequence[Request],
    promises: Mapping[str, Promise],
    registry: Registry,
    inventory: Inventory,
    settings: Settings,
) -> Plan:
    """The replicas beyond the incumbents, placed on what the incumbents leave: first those of endpoints
    with a promise (`promises`, by `namespace/name`: nothing of theirs runs yet), in the variant and
    class promised, so that what the API answered is what the controller does; then the others. A
    201's replicas that no longer fit in their promised shape (its capacity is gone) are placed with
    the others; a 202's wait for the class promised (`waiting.place_waiting` with the same pins)."""
    first = [pinned(r, promises[f"{r.namespace}/{r.name}"]) for r in requests if f"{r.namespace}/{r.name}" in promises]
    promised = place_requests(first, registry, inventory, settings) if first else Plan()
    gone = Counter(
        f"{u.namespace}/{u.request}"
        for u in promised.unplaced
        if promises[f"{u.namespace}/{u.request}"].answer == CREATED
    )
    rest = [r for r in requests if f"{r.namespace}/{r.name}" not in promises]
    rest += [replace(r, replicas=gone[f"{r.namespace}/{r.name}"]) for r in requests if gone[f"{r.namespace}/{r.name}"]]
    left = inventory.allocated(a for p in promised.placements for a in held_by(p))
    others = place_requests(rest, registry, left, settings) if rest else Plan()
    unplaced = tuple(u for u in promised.unplaced if f"{u.namespace}/{u.request}" not in gone) + others.unplaced
    return Plan(promised.placements + others.placements, unplaced, {**promised.occupied, **others.occupied})
