"""Promised placements: the GPUs a `201` (or a `202`'s replicas placed warm) was answered from, held for it
as incumbents are.

The endpoint API places a new endpoint alone, on the capacity the last decide step left
(`autoscaler.admission`), and records where in `status.promise` (`state.Promised`). The controller's
next loop places every new replica together, and the scheduler, given several at once, may pack
them otherwise: a 201 then found no room in its class and was reported Provisioning, its capacity
"gone" although no node went. So until its pods are bound, a 201's replicas take the GPUs it was
answered from, right after the incumbents, before anything new is placed; only those whose node
went (or is not Ready) or whose GPUs a bound pod holds are placed again, but a share of a GPU's memory
(KAI, HAMi) whose answered GPU a bound pod filled keeps its node on another of its GPUs that holds it.
"""

from __future__ import annotations

from dataclasses import replace

from autoscaler.decide.state import Promise, Promised
from autoscaler.decide.waiting import MEMORY_SHARED
from autoscaler.endpoint import Endpoint
from common.errors import InputError
from scheduler.inventory import Inventory, held_by
from scheduler.plan import Placement, Worker
from scheduler.registry import Registry


def reserved(
    ep: Endpoint, promise: Promise | None, room: int, inventory: Inventory, registry: Registry, first: int = 0
) -> tuple[tuple[Placement, ...], Inventory]:
    """Up to `room` of the replicas `promise` placed (a 201's, a 202's placed warm) that still fit
    `inventory`, numbered from `first`, and the inventory with their GPUs taken."""
    if promise is None:
        return (), inventory
    kept: list[Placement] = []
    # A Ready node skipped for a label that cannot be read has not gone: its promise stands (churn seed 502),
    # as its Ready replicas do (`allocated` takes nothing there; nothing new is placed there).
    schedulable = {n.node for n in inventory.schedulable()} | inventory.standing
    for p in promise.placements:
        if len(kept) == room:
            break
        if any(w.node not in schedulable for w in p.workers):
            continue  # its node went, is not Ready or is cordoned: that capacity is gone
        try:
            variant = registry.get(ep.model).variant(p.variant)
        except (InputError, KeyError):
            continue  # the registry no longer has that variant
        placement = Placement(
            ep.name, first + len(kept), ep.model, variant.name, variant.precision, variant.quality,
            p.gpu_class, p.sharing, p.tp, p.vram_mib_per_gpu, p.workers, ep.namespace,
        )  # fmt: skip
        held = _held(placement, inventory)
        if held is None and (elsewhere := _elsewhere_on_its_node(p, inventory)) is not None:
            placement = replace(placement, workers=elsewhere)
            held = _held(placement, inventory)
        if held is not None:
            inventory = held
            kept.append(placement)
    return tuple(kept), inventory


def _held(placement: Placement, inventory: Inventory) -> Inventory | None:
    """`inventory` with `placement`'s GPUs taken; None where a bound pod holds them now."""
    try:
        return inventory.allocated(held_by(placement))
    except InputError:
        return None


def _elsewhere_on_its_node(p: Promised, inventory: Inventory) -> tuple[Worker, ...] | None:
    """For a share of one GPU's memory (KAI, HAMi), the GPU of its node its scheduler would bind it to
    (the tightest that holds it): the GPU of the answer is EGS's own reading, not pinned on the pod, and
    both schedulers binpack, so another GPU of the answered node keeps the promise as well as that one."""
    if p.sharing not in MEMORY_SHARED or p.tp != 1 or len(p.workers) != 1:
        return None
    node = inventory.node(p.workers[0].node)
    fits = [(g.free_mib, g.index) for g in node.gpus if node.available_mib(g) >= p.vram_mib_per_gpu]
    return (Worker(node.node, (min(fits)[1],)),) if fits else None
