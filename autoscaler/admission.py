"""The endpoint API's answer for one new endpoint, from the capacity the last full decide left free.

Part of the autoscaler's pure core. To tell `201` (warm capacity serves it now) from `202` (a node
must be provisioned) the API used to run the decide step over the whole cluster for every POST, which
places every endpoint again: the cost grows with the cluster, and at 50 endpoints its p99 was over
100 ms. Instead:

- `capacity(decision, catalog)` keeps what one decide step left: the GPUs no replica of its plan holds, and
  per GPU class the replicas already waiting for a node (in the order their ETAs were given);
- `admit(capacity, obj, ...)` places only the new endpoint on it, as `decide` would: its minimum
  replicas (at least one: a new endpoint has no metrics) through the scheduler's entry point on the
  free GPUs, those that fit nowhere on the nodes each configured class would add, queued behind the
  replicas already waiting for that class for their ETA; and returns the capacity with the new
  replicas taken, so that the next POST does not count the same GPUs.

The answer is the one `decide` gives with the other endpoints placed first, and the controller's
loops keep it: the API records it in `status.promise`, which the controller places first
(`autoscaler.decide.promises`); a 201's or a 202's warm replicas are placed otherwise only when their
capacity is gone. The API rebuilds a capacity from the cluster (`decide` on what it lists) when it has
none or its one is old, so a restart loses nothing. An answer the API re-made after the create (two replicas
answered the same GPUs at once) keeps the GPUs of its answers before held (`hold`, `REMADE_ANNOTATION`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from autoscaler.decide import (
    PROMISE_ANNOTATION,
    Decision,
    EndpointDecision,
    Settings,
    Workload,
    by_class,
    class_etas,
    endpoint_cost,
    endpoint_decision,
    parse_endpoints,
    place_requests,
    place_waiting,
    promise_of,
    replica_count,
    reserved,
    shape_of,
)
from autoscaler.decide.state import CREATED, Promise
from autoscaler.decide.waiting import class_law, queued_gpus
from autoscaler.eta import law_points
from autoscaler.orders import OrderBook
from common.errors import InputError
from scheduler.catalog import Catalog
from scheduler.inventory import Allocation, Inventory, SharingPolicy, held_by
from scheduler.plan import Placement, Plan
from scheduler.registry import Registry


@dataclass(frozen=True)
class Capacity:
    """GPUs free after a decide step's plan, and the replicas that wait for nodes per class."""

    free: Inventory
    waiting: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    """GPU class -> the GPUs of each replica waiting for one of its nodes, in queue order (a share of one
    below 1: `queued_gpus`)."""
    endpoints: frozenset[str] = frozenset()
    """The endpoints (`namespace/name`) whose replicas are counted."""
    orders: OrderBook = field(default_factory=OrderBook)
    """The node orders in flight (the waiting replicas' nodes come first), the delays observed and the
    orders lapsed (`autoscaler.orders`)."""
    unbound: tuple[Allocation, ...] = ()
    """What `free` lacks for replicas whose pods are not bound yet, those answered since included
    (`autoscaler.decide.placement.place_requests`)."""


@dataclass(frozen=True)
class Admitted:
    decision: EndpointDecision
    capacity: Capacity
    """The capacity with the endpoint's replicas taken (unchanged when it was refused)."""
    placed: tuple[Placement, ...] = ()
    """Its replicas placed on warm GPUs (what a 201 or a 202 records: `answer_status`)."""
    waiting: tuple[Placement, ...] = ()
    """Its replicas waiting for nodes (their ETA on the capacity before it: `waiting_eta`)."""


def capacity(decision: Decision, catalog: Catalog) -> Capacity:
    """What `decision` leaves for new endpoints."""
    free = decision.inventory.allocated(a for p in decision.placed.placements for a in held_by(p))
    keys = frozenset(d.key for d in decision.endpoints)
    queues = {c: decision.ahead.get(c, ()) + gpus for c, gpus in _queues(decision.waiting.placements, catalog).items()}
    return Capacity(free, {**decision.ahead, **queues}, keys, decision.orders, decision.unbound)


def admit(
    capacity: Capacity,
    obj: Mapping[str, Any],
    settings: Settings,
    registry: Registry,
    catalog: Catalog,
    now: float,
) -> Admitted:
    """Where the new endpoint `obj` (an InferenceEndpoint) would run now, and the capacity after it."""
    endpoints, failed = parse_endpoints([obj], registry, now)
    if failed:
        return Admitted(failed[0][0], capacity)
    ep = endpoints[0]
    target = replica_count(ep, Workload(), {}, settings, now)
    # Admitted again (the API's capacity rebuilt meanwhile): a 201's or a 202's warm replicas take the GPUs they
    # were answered from.
    kept, free = reserved(ep, promise_of(obj), target[0], capacity.free, registry)
    more = ep.request(target[0] - len(kept))
    unbound = (*capacity.unbound, *(a for p in kept for a in held_by(p)))
    placed = place_requests([more], registry, free, settings, unbound) if more.replicas else Plan()
    placed = Plan(kept + placed.placements, placed.unplaced, placed.occupied)
    policy = SharingPolicy(dict(settings.sharing))
    # The replicas that wait, wait in the shape of those placed warm (`shape_of`), as the controller places
    # them once these run (an endpoint keeps one shape); a 202 whose ETA came from another class's queue was
    # promised nodes its replicas never waited for (churn seed 1: 167 s promised, 700 s taken).
    shape = shape_of(placed.placements)
    pins = {ep.key: Promise(CREATED, None, *shape)} if shape is not None and shape[1] in settings.classes else {}
    waiting = place_waiting([ep], placed, registry, catalog, settings, policy, pins=pins)
    eta = waiting_eta(capacity, waiting.placements, settings, registry, catalog, now)
    decision = endpoint_decision(ep, target, placed.placements, waiting.placements, waiting.unplaced, Workload(), eta)
    decision = replace(decision, cost_per_hour=endpoint_cost([*placed.placements, *waiting.placements], catalog))
    if decision.phase == "Failed":
        return Admitted(decision, capacity)
    free = capacity.free.allocated(a for p in placed.placements for a in held_by(p))
    queues = dict(capacity.waiting)
    for gpu_class, added in _queues(waiting.placements, catalog).items():
        queues[gpu_class] = queues.get(gpu_class, ()) + added
    unbound = (*capacity.unbound, *(a for p in placed.placements for a in held_by(p)))
    after = replace(capacity, free=free, waiting=queues, endpoints=capacity.endpoints | {ep.key}, unbound=unbound)
    return Admitted(decision, after, placed.placements, waiting.placements)


REMADE_ANNOTATION = "egs.io/answered-before"
"""The answers the POST that created an endpoint gave before the one annotated now (`PROMISE_ANNOTATION`), each
re-made after the create because another replica of the API had answered its GPUs meanwhile, and when the last
was re-made: `{"at": <Unix time>, "answers": [<an answer as annotated>, ...]}`. A controller loop may have listed
the endpoint at any of them and be placing it there, so the API holds their GPUs (`hold`) for a few controller
intervals (churn seed 752, two API replicas: a view built meanwhile answered that room 201 again)."""


@dataclass(frozen=True)
class Earlier:
    """What `REMADE_ANNOTATION` says of an endpoint: when its answer was last re-made, and the answers before."""

    at: float = 0.0
    answers: tuple[str, ...] = ()


def earlier(obj: Mapping[str, Any]) -> Earlier:
    """The endpoint's answers before its own (`REMADE_ANNOTATION`); none where it has none or it cannot be read."""
    meta = obj.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    text = annotations.get(REMADE_ANNOTATION) if isinstance(annotations, Mapping) else None
    try:
        raw = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return Earlier()
    if not isinstance(raw, Mapping):
        return Earlier()
    at, answers = raw.get("at"), raw.get("answers")
    if not isinstance(at, int | float) or not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        return Earlier()
    return Earlier(float(at), tuple(answers))


def remade(obj: Mapping[str, Any], answer: str, now: float) -> str:
    """`REMADE_ANNOTATION` of the endpoint `obj` once its answer `answer` (as annotated) is re-made at `now`."""
    return json.dumps({"at": now, "answers": [*earlier(obj).answers, answer]})


def hold(capacity: Capacity, obj: Mapping[str, Any], answers: Iterable[str]) -> Capacity:
    """`capacity` with the GPUs that `answers` (earlier answers of the endpoint `obj`, as annotated) placed it on
    taken, each GPU (or MIG instance) where it is still free: a replica answered on GPUs 0 and 1 and re-made onto 1
    and 2 holds GPU 0 too. Read with `obj`'s generation: an answer for another spec holds nothing."""
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    owner = str(meta.get("name", ""))
    free, taken = capacity.free, list(capacity.unbound)
    for answer in answers:
        promise = promise_of({"metadata": {**meta, "annotations": {PROMISE_ANNOTATION: answer}}})
        for p in promise.placements if promise is not None else ():
            for w in p.workers:
                pieces = [Allocation(w.node, mig=w.mig_profile, owner=owner)] if w.mig_profile else [
                    Allocation(w.node, (g,), p.vram_mib_per_gpu, sharing=p.sharing, owner=owner) for g in w.gpus
                ]  # fmt: skip
                for piece in pieces:
                    try:
                        free = free.allocated([piece])
                    except InputError:
                        continue  # taken already (by the answer kept, or another), or its node went
                    taken.append(piece)
    return replace(capacity, free=free, unbound=tuple(taken))


def waiting_eta(
    capacity: Capacity,
    waiting: tuple[Placement, ...],
    settings: Settings,
    registry: Registry,
    catalog: Catalog,
    now: float,
) -> float | None:
    """When the last of `waiting` (one endpoint's replicas that wait for nodes) serves, queued behind the
    replicas `capacity` already has waiting; None when none waits. The API's debug line calls it again at
    another quantile, without placing the endpoint twice."""
    eta = None
    for gpu_class, queue in by_class(waiting).items():
        ahead = capacity.waiting.get(gpu_class, ())
        times = class_etas(gpu_class, queue, registry, catalog, settings, now, ahead, capacity.orders)
        eta = max([eta or 0.0, *times])
    return eta


def waiting_law(
    capacity: Capacity,
    waiting: tuple[Placement, ...],
    settings: Settings,
    registry: Registry,
    catalog: Catalog,
    now: float,
) -> list[float] | None:
    """When the last of `waiting` serves, queued as `waiting_eta` queues it, as a law under the configured
    prior: its quantiles at 0.5%, 1.5%, ..., 99.5% (`eta.law_points`), at a twentieth of the step; None when none
    waits. The API's debug line gives it beside each 202, and the churn benchmark bounds from it the slack
    that any promise on the same queue must leave (`eta.ready_law`)."""
    resolution = settings.eta.step_s / 20
    laws = [
        class_law(c, q, registry, catalog, settings, now, capacity.waiting.get(c, ()), capacity.orders, resolution)
        for c, q in by_class(waiting).items()
    ]
    if not laws:
        return None
    first = min(start for start, _ in laws)
    # The last replica of every class: the product of the classes' laws, each moved to the first one's grid.
    shifts = [round((start - first) / resolution) for start, _ in laws]
    size = max(shift + len(cdf) for shift, (_, cdf) in zip(shifts, laws, strict=True))
    served = np.ones(size)
    for shift, (_, cdf) in zip(shifts, laws, strict=True):
        served *= np.concatenate([np.zeros(shift), cdf, np.ones(size - shift - len(cdf))])
    return list(law_points(first, served, resolution))


def _queues(placements: tuple[Placement, ...], catalog: Catalog) -> dict[str, tuple[float, ...]]:
    return {name: tuple(queued_gpus(p, catalog) for p in queue) for name, queue in by_class(placements).items()}
