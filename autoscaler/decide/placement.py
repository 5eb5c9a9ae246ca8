"""Placement: the scheduler's one entry point as the decide step calls it, and placements grouped.

Every replica the decide step places, on nodes that exist or on nodes being provisioned, goes through
`place_requests`, so the controller and the API (`autoscaler.admission`) choose alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from autoscaler.decide.settings import Settings
from scheduler.inventory import Inventory
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
