"""Promised placements: the GPUs a `201` was answered from, held for it as incumbents are.

The endpoint API places a new endpoint alone, on the capacity the last decide step left
(`autoscaler.admission`), and records where in `status.promise` (`state.Promised`). The controller's
next loop places every new replica together, and the scheduler, given several at once, may pack
them otherwise: a 201 then found no room in its class and was reported Provisioning, its capacity
"gone" although no node went. So until its pods are bound, a 201's replicas take the GPUs it was
answered from, right after the incumbents, before anything new is placed; only those whose node
went (or is not Ready) or whose GPUs a bound pod holds are placed again.
"""

from __future__ import annotations

from autoscaler.decide.state import CREATED, Promise
from autoscaler.endpoint import Endpoint
from common.errors import InputError
from scheduler.inventory import Inventory, held_by
from scheduler.plan import Placement
from scheduler.registry import Registry


def reserved(
    ep: Endpoint, promise: Promise | None, room: int, inventory: Inventory, registry: Registry, first: int = 0
) -> tuple[tuple[Placement, ...], Inventory]:
    """Up to `room` of the replicas `promise` placed (a 201's) that still fit `inventory`, numbered
    from `first`, and the inventory with their GPUs taken."""
    if promise is None or promise.answer != CREATED:
        return (), inventory
    kept: list[Placement] = []
    schedulable = {n.node for n in inventory.schedulable()}
    for p in promise.placements:
        if len(kept) == room:
            break
        if any(w.node not in schedulable for w in p.workers):
            continue  # its node went, is not Ready or is cordoned: that capacity is gone
        try:
            variant = registry.get(ep.model).variant(p.variant)
            placement = Placement(
                ep.name, first + len(kept), ep.model, variant.name, variant.precision, variant.quality,
                p.gpu_class, p.sharing, p.tp, p.vram_mib_per_gpu, p.workers, ep.namespace,
            )  # fmt: skip
            inventory = inventory.allocated(held_by(placement))
        except (InputError, KeyError):
            continue  # the registry no longer has that variant, or a bound pod holds those GPUs now
        kept.append(placement)
    return tuple(kept), inventory
