"""Consolidation: moving running replicas to a cheaper shape, as its own, budgeted step (Karpenter's model).

The decide step never moves a running replica for another endpoint's sake (its incumbents stay,
`state.incumbents`); this is the one way it moves them on purpose. Per loop, `consolidate` takes at
most the budget left for the interval, in the order of the saving:

- only an endpoint that serves fully (every replica ready, at least its minimum), keeps no promise
  and is not already moving, whose replicas placed afresh, beside everything that runs now, fit in
  another variant or class and cost at least `minSavingFraction` less per hour (moving within one
  class gains nothing: its workloads are not pinned to nodes, kube-scheduler already picks);
- make-before-break: the moved endpoint's replicas are placed anew while its old workloads keep
  serving and holding their GPUs; the old workloads go once the new ones serve every replica
  (`workloads.orphans`), so it never has fewer ready replicas than before;
- the move is recorded on the endpoint's status (`status.consolidation`: when, and the workloads
  it replaces), so that a restart neither forgets it nor counts the old replicas as incumbents again,
  and the budget per interval is counted from the statuses, not from memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from autoscaler.decide.placement import endpoint_cost, place_requests
from autoscaler.decide.settings import Settings
from autoscaler.decide.state import Move, Owned
from autoscaler.endpoint import Endpoint
from scheduler.catalog import Catalog
from scheduler.inventory import Allocation, Inventory, held_by
from scheduler.plan import Placement
from scheduler.registry import Registry


def consolidate(
    endpoints: Sequence[Endpoint],
    staying: Mapping[str, Sequence[Placement]],
    workloads: Mapping[str, Sequence[Owned]],
    recorded: Mapping[str, Move],
    promised: Sequence[str],
    inventory: Inventory,
    registry: Registry,
    catalog: Catalog,
    settings: Settings,
    now: float,
    unbound: Sequence[Allocation] = (),
) -> dict[str, Move]:
    """The endpoints to move this loop (by `namespace/name`), within what the budget leaves.

    `staying`: each endpoint's incumbents; `recorded`: the moves on the statuses; `inventory`: the
    GPUs with every running replica taken (a replacement never takes its predecessor's GPUs); `unbound`:
    what it holds for replicas whose pods are not bound yet, beside which a move's new pods must bind on a
    HAMi node in whatever order they arrive (`place_requests`), as the moves chosen before it."""
    cfg = settings.consolidation
    if not cfg.enabled:
        return {}
    recent = sum(1 for m in recorded.values() if now - m.at < cfg.interval_s)
    budget = cfg.max_disruptions_per_interval - recent
    chosen: dict[str, Move] = {}
    while budget > 0:
        best: tuple[float, Endpoint, tuple[Placement, ...]] | None = None
        for ep in endpoints:
            kept = tuple(staying.get(ep.key, ()))
            mine = workloads.get(ep.key, ())
            if ep.key in chosen or ep.key in promised or (ep.key in recorded and recorded[ep.key].replacing):
                continue
            if not kept or not _serving(mine, len(kept), ep.min_replicas):
                continue
            plan = place_requests([ep.request(len(kept))], registry, inventory, settings, unbound)
            shapes = {(p.variant, p.gpu_class) for p in plan.placements}
            # A move to a new shape only: its workloads are new, and the old ones all go.
            if plan.unplaced or shapes & {(p.variant, p.gpu_class) for p in kept}:
                continue
            now_cost, after = endpoint_cost(kept, catalog), endpoint_cost(plan.placements, catalog)
            saving = now_cost - after
            worth = saving > 0 and after <= now_cost * (1 - cfg.min_saving_fraction)
            if worth and (best is None or (saving, ep.key) > (best[0], best[1].key)):
                best = (saving, ep, plan.placements)
        if best is None:
            break
        saving, ep, placements = best
        replacing = tuple(sorted(w.name for w in workloads.get(ep.key, ())))
        chosen[ep.key] = Move(now, ep.namespace, replacing, round(saving, 4))
        taken = [a for p in placements for a in held_by(p)]
        inventory, unbound = inventory.allocated(taken), (*unbound, *taken)
        budget -= 1
    return chosen


def _serving(mine: Sequence[Owned], replicas: int, minimum: int) -> bool:
    """Every workload of the endpoint serves all its replicas, and they are at least its minimum."""
    ready = sum(w.ready for w in mine)
    return bool(mine) and all(w.ready >= w.replicas for w in mine) and ready >= max(replicas, minimum, 1)
