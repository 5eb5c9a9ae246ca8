"""The controller's decide step: the cluster and the metrics in, the objects it should hold out.

Part of the autoscaler's pure core (plain data, `now` a parameter, nothing touches Kubernetes or
Prometheus). `autoscaler/controller.py` calls `decide` every loop and applies what it returns; the
endpoint API builds the capacity it answers POSTs from with it (`autoscaler.admission`); the
reconcile benchmark calls it at scale. Per InferenceEndpoint:

- **replicas**: `replica_target` (the autoscaler core) of the endpoint's demand (its part of its
  model's, `autoscaler.attribution`) over the replica's throughput (the endpoint's
  `throughputPerReplica`, else the configured figure for the model), plus one replica while the
  servers saturate (KV cache >= 0.80 or >= 5 queued requests per replica, llm-d's thresholds; where
  vLLM reports neither, its GPUs' saturation ratio >= 0.95), clamped to `replicas.min..max`;
- **variant, GPU class, placement**: the scheduler's entry point (`scheduler.schedule.schedule`) on the
  nodes' inventory, less the GPUs other workloads' pods hold (`autoscaler.pods`); replicas that fit
  nowhere, and placed replicas whose pod kube-scheduler found no node for, are placed again on the
  nodes each configured GPU class would add, and so wait for provisioning; a replica that fits no
  class at all gets the scheduler's reason ("needs N GiB ... largest free ...") in a condition;
- **ETA**: `queue_etas` (the autoscaler core) for every waiting replica, behind other workloads'
  unschedulable pods that wait for the same class; a promise already made (in the status) is kept
  while the replicas still wait, so a restart does not move it;
- **objects**: the workload and Service from `scheduler.manifests` (not schema-checked here, at 0.1 s
  an object: the adapter applies with `fieldValidation=Strict`, so the API server checks each one),
  owned by the endpoint, with the per-node pin made a preference that the workload keeps as it was
  created (the nodes a replica waits for do not exist yet, and a new pin would restart the running
  pods: kube-scheduler picks the node within the class, the planned ones first where they fit, the
  GPU resources keep it honest), asking for no new pod that would wait for a node while a new endpoint's
  replica on warm GPUs of its class has no pod bound (`workloads.asked`: such a pod binds to any room);
- per configured GPU class the **warm pool** (`pool` policies of the core, never releasing on
  missing data) as the configured backend's object: a balloon Deployment at PriorityClass -10, a
  Cluster Autoscaler CapacityBuffer, or a Karpenter static NodePool's replicas.

One module per job: `targets` (replica counts), `placement` and `waiting` (placement now, provisioning
and ETAs), `status`, `workloads` (the objects), `warm_pools`, and `state` (what the cluster holds that
the controller keeps: incumbents, promises); `settings` and `decision` are the data in and out; `collector`
pauses the garbage collector while the step runs. Callers import from this package.

Safety: missing, stale or contradictory metrics never scale down. The endpoint keeps the replicas its
workload has now (what the cluster says, so a restart loses nothing) and the decision says why in
`holds`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from autoscaler.attribution import attribute
from autoscaler.decide.collector import collector_paused
from autoscaler.decide.consolidation import (
    CONSOLIDATION_BLOCKED,
    blocked_note,
    consolidate,
    last_changes,
    leaving_nodes,
    waiting_for_room,
)
from autoscaler.decide.decision import (
    Decision,
    EndpointDecision,
    Hold,
    NoRoom,
    Observation,
    PoolDecision,
    report,
    report_holds,
)
from autoscaler.decide.placement import (
    by_class,
    by_endpoint,
    endpoint_cost,
    gpus_of,
    node_due,
    not_bound,
    place_new,
    place_requests,
    unbound,
)
from autoscaler.decide.promises import reserved
from autoscaler.decide.settings import (
    POOL_BACKENDS,
    ClassSettings,
    ConsolidationSettings,
    Settings,
    TemplateRolloutSettings,
)
from autoscaler.decide.state import (
    ACCEPTED,
    CREATED,
    PROMISE_ANNOTATION,
    REQUEST_NAME,
    WORKLOAD_KINDS,
    Incumbents,
    Owned,
    Promise,
    Recommendation,
    Workload,
    admits,
    created_at,
    current,
    endpoint_key,
    held_shape,
    incumbents,
    keep,
    move_of,
    owed,
    placed_afresh,
    promise_of,
    read_owned,
    recommendations,
    spec_changed,
    status_of,
    still_taken,
)
from autoscaler.decide.status import (
    CANNOT_RENDER,
    CONSOLIDATING,
    PROMISE_KEPT,
    SPEC_CHANGE_HELD,
    TEMPLATE_NO_ROOM,
    TEMPLATE_QUEUED,
    WORKLOAD_RENAMED,
    answer_status,
    endpoint_decision,
    endpoint_status,
    found_no_room,
    moving_from,
    no_room_note,
    not_applied,
    parse_endpoints,
    promise_outcome,
    queued_note,
    shape_change_of,
    shape_of,
)
from autoscaler.decide.targets import (
    GPU_SATURATION_HIGH,
    KV_CACHE_HIGH,
    QUEUE_HIGH,
    declared_throughput,
    replica_count,
    stabilized,
)
from autoscaler.decide.waiting import (
    MAX_PROVISIONING_NODES,
    PROVISIONING_PREFIX,
    class_etas,
    endpoint_etas,
    loaded_by,
    place_waiting,
    refused_placements,
    unstuck,
)
from autoscaler.decide.warm_pools import POOL_IMAGE, PRIORITY, PRIORITY_CLASS, pool_decisions, pool_objects
from autoscaler.decide.workloads import (
    MANAGED,
    by_identity,
    changed_from,
    drifted,
    orphans,
    paced,
    workload_objects,
)
from autoscaler.events import Event, event, find_condition
from autoscaler.kubetime import rfc3339
from autoscaler.pods import (
    foreign_waiting,
    pod_allocations,
    pods_by_endpoint,
    stuck_replicas,
    with_devices,
)
from scheduler.catalog import Catalog
from scheduler.inventory import Allocation, Inventory, InventoryError, SharingPolicy, build_inventory, held_by
from scheduler.manifests import ManifestError, dns_label
from scheduler.plan import Placement, Plan
from scheduler.registry import Registry
from scheduler.schedule import schedule

__all__ = [
    "GPU_SATURATION_HIGH",
    "KV_CACHE_HIGH",
    "MANAGED",
    "MAX_PROVISIONING_NODES",
    "POOL_BACKENDS",
    "POOL_IMAGE",
    "PRIORITY",
    "PRIORITY_CLASS",
    "PROMISE_ANNOTATION",
    "PROVISIONING_PREFIX",
    "QUEUE_HIGH",
    "REQUEST_NAME",
    "ClassSettings",
    "ConsolidationSettings",
    "Decision",
    "EndpointDecision",
    "Hold",
    "Observation",
    "PoolDecision",
    "Settings",
    "TemplateRolloutSettings",
    "Workload",
    "answer_status",
    "by_class",
    "class_etas",
    "decide",
    "declared_throughput",
    "endpoint_cost",
    "endpoint_decision",
    "endpoint_key",
    "gpus_of",
    "parse_endpoints",
    "place_requests",
    "place_waiting",
    "promise_of",
    "promise_outcome",
    "replica_count",
    "report",
    "report_holds",
    "reserved",
    "rfc3339",
    "shape_of",
    "status_of",
    "warm",
]


class _Pass(NamedTuple):
    decision: Decision
    rolled: frozenset[str]
    """The endpoints whose new pod template took its turn (`workloads.paced`)."""
    no_room: frozenset[str]
    """Those of them, and (while others wait their turn) the template or shape changes under way, whose replicas
    do not all fit (placed now or waiting for a node), not deferred already."""


@collector_paused()
def decide(obs: Observation, settings: Settings, registry: Registry, catalog: Catalog, now: float) -> Decision:
    """The objects and statuses the cluster should have, from what it has and what the metrics say (the
    cyclic garbage collector paused meanwhile: `collector`). A new pod template whose replicas do not all fit
    takes no turn and no GPU: the loop is decided again with it waiting (its pods as they run), and the others
    may go; the third try, where the second's turns found no room either, gives turns only to those that fit.
    A change under way that does not fit waits on, uncounted in the pace (`workloads.paced`). Those found with no
    room wait untried on later loops while the GPUs every bound pod holds, and the endpoints, stay as they were
    (`Observation.no_room`, `_room`): a full cluster's rollout costs one try a loop, not three."""
    made = _decided(obs, settings, registry, catalog, now, frozenset(), None)
    deferred: frozenset[str] = frozenset()
    for _ in range(2):
        if not made.no_room:
            break
        turns = made.rolled - made.no_room if deferred else None
        deferred |= made.no_room
        made = _decided(obs, settings, registry, catalog, now, deferred, turns)
    return made.decision


def _decided(
    obs: Observation,
    settings: Settings,
    registry: Registry,
    catalog: Catalog,
    now: float,
    deferred: frozenset[str],
    turns: frozenset[str] | None,
) -> _Pass:
    """One try of `decide`, the `deferred` endpoints' new templates waiting and only `turns` given one (`paced`)."""
    holds: list[Hold] = []
    endpoints, failed = parse_endpoints(obs.endpoints, registry, now)
    owned = read_owned(obs.owned, catalog)
    workloads: dict[str, list[Owned]] = {}
    for w in owned:
        workloads.setdefault(w.key, []).append(w)
    changed = frozenset(endpoint_key(o) for o in obs.endpoints if spec_changed(o))
    policy = SharingPolicy(dict(settings.sharing))
    read = _inventory(obs.nodes, policy, catalog)
    if isinstance(read, Hold):  # keep everything as it is
        return _Pass(Decision((), {}, (), (), (read,), nodes_read=False), frozenset(), frozenset())
    nodes, guessed, unreadable = with_devices(read, obs.pods, obs.gpu_indexes)
    raw_by_key = {endpoint_key(o): o for o in obs.endpoints}
    recorded = {ep.key: m for ep in endpoints if (m := move_of(raw_by_key[ep.key], workloads.get(ep.key, ()), now))}
    # A shape change of the spec under way: its new shape's replicas do not all serve yet (the old shape's
    # may be one the spec still admits: they are no incumbents, whatever it admits).
    changes = {ep.key: c for ep in endpoints if (c := shape_change_of(raw_by_key[ep.key], workloads.get(ep.key, ())))}
    replaced = frozenset(
        (ep.namespace, name)
        for ep in endpoints
        for name in (*getattr(recorded.get(ep.key), "replacing", ()), *changes.get(ep.key, ()))
    )
    # Incumbents first, on the GPUs they hold; every other bound pod (other workloads', and EGS's
    # replaced or surplus ones until they are gone) then holds what it asks for of what is left
    # (on the GPUs its scheduler recorded, else the lowest free ones).
    held = incumbents(endpoints, changed, owned, obs.pods, nodes, registry, replaced)
    others = pod_allocations(held.inventory, obs.pods, held.pods)
    bound_pods = held.inventory.allocated(others)  # every bound pod on its GPUs: the room a new template is tried on
    tried_on = _room(bound_pods, raw_by_key) if obs.no_room is not None else None
    # A pod template rendered otherwise than its serving workload records (a registry entry, an EGS upgrade, a
    # change of the spec held for room) is made before it breaks as a change of the spec is, a few at a time;
    # those the last loop found no room for wait untried while the room is as it was.
    observed = by_identity(obs.owned)
    previous = {endpoint_key(o): status_of(o) for o in obs.endpoints}
    drifting = drifted(endpoints, held.placements, workloads, observed, registry, catalog)
    allowed = settings.template_rollout.endpoints_allowed(len(endpoints))
    if obs.no_room is not None and obs.no_room.room == tried_on:
        deferred |= obs.no_room.keys
    rolled, queued = paced(drifting, previous, changes, allowed, deferred, turns)
    renewing = changed | rolled  # made anew: no incumbents, and the workloads whose template changes renamed
    if rolled:
        held = incumbents(endpoints, renewing, owned, obs.pods, nodes, registry, replaced)
        others = pod_allocations(held.inventory, obs.pods, held.pods)
    inventory = nodes.allocated(others)
    # The GPUs kube-scheduler found taken, while the evidence stands, are taken before anything is placed.
    taken_now = held.inventory.allocated(others) if rolled else bound_pods
    remembered, held_inventory = still_taken(workloads, taken_now, obs.pods)
    inventory = inventory.allocated(t.allocation for taken in remembered.values() for t in taken)
    held = Incumbents(held.placements, held_inventory, held.pods)
    targets: dict[str, tuple[int, Hold | None]] = {}
    windows: dict[str, tuple[Recommendation, ...]] = {}
    attribution = attribute(endpoints, obs.signals, obs.pod_signals, pods_by_endpoint(obs.pods))
    for ep in endpoints:
        # What a move or a shape change replaces serves beside its successor: the endpoint's count is not both.
        mine = [w for w in workloads.get(ep.key, []) if w.workload not in replaced] or workloads.get(ep.key, [])
        admitted = [w for w in mine if ep.key not in changed and admits(ep, w.shape, registry)]
        running = current(admitted or mine)
        recommended, why = replica_count(ep, running, obs.signals, settings, now, attribution.endpoints.get(ep.key))
        if ep.scaling == "egs":
            window = settings.scale_down_stabilization_s
            history = recommendations(status_of(raw_by_key[ep.key]))
            recommended, windows[ep.key] = stabilized(recommended, running.replicas, history, window, now)
        targets[ep.key] = (recommended, why)
        if why:
            holds.append(why)
    staying = {ep.key: held.placements.get(ep.key, ())[: targets[ep.key][0]] for ep in endpoints}
    bound = {k: len(kept) for k, kept in staying.items()}  # the replicas whose pods are bound: first in `staying`
    # A promise binds the endpoint's first replicas; once some run, they are its incumbents.
    promises = {ep.key: p for ep in endpoints if (p := promise_of(raw_by_key[ep.key])) is not None}
    # An endpoint that remembers GPUs found taken keeps waiting until its pods are bound: a new pod of
    # its, not tried yet, is stuck as the one before it was (not put on GPUs that kube-scheduler refused).
    known = {(ep.namespace, dns_label(ep.name)) for ep in endpoints if ep.key in remembered}
    stuck_pods = stuck_replicas(obs.pods, known)
    # A 201's or a 202's warm replicas take the GPUs the API answered from, as incumbents, until their pods
    # are bound (unless kube-scheduler found no room for them there: they are placed again, and wait if need
    # be).
    free = held.inventory
    for ep in endpoints:
        if stuck_pods.get((ep.namespace, dns_label(ep.name))):
            continue
        room, have = targets[ep.key][0] - len(staying[ep.key]), len(staying[ep.key])
        kept_promise, free = reserved(ep, promises.get(ep.key), room, free, registry, have)
        staying[ep.key] += kept_promise
    held = Incumbents(held.placements, free, held.pods)
    # A 201's replicas still owed go first, as answered; a promise binds the placing of an endpoint that has none.
    pins = {k: o for k, p in promises.items() if p.answer == CREATED and (o := owed(p, staying[k], targets[k][0]))}
    afresh = frozenset(pins)  # 201s with a replica whose answered GPUs could not be held: placed again
    pins |= {k: p for k, p in promises.items() if not staying[k] and k not in pins}
    # The promised replicas held above whose pods are not bound: a pod placed beside them on a HAMi node (a
    # move's, a new replica's) must bind in whatever order HAMi meets their pods.
    promised = [a for kept in not_bound(staying, bound).values() for p in kept for a in held_by(p)]
    requests = [ep.request(targets[ep.key][0]) for ep in endpoints]
    new = [ep.request(targets[ep.key][0] - len(staying[ep.key])) for ep in endpoints]
    new = [r for r in new if r.replicas > 0]
    # More replicas of an endpoint that runs take its incumbents' shape where it fits: one shape an endpoint.
    keeps = {k: Promise(CREATED, None, *main) for k, kept in staying.items() if (main := shape_of(kept))}
    # So do the replicas of an endpoint whose node went: its workload makes them again, pending in its shape
    # (placed afresh in the cheapest, they were a second workload, and the first one's pods, bound again
    # in their class, were pushed out once both served).
    for ep in endpoints:
        if staying[ep.key] or ep.key in changed:
            continue
        mine = [w for w in workloads.get(ep.key, ()) if w.workload not in replaced]
        if (shape := held_shape(ep, mine, registry)) is not None:
            keeps[ep.key] = Promise(CREATED, None, shape.variant, shape.gpu_class)
    fresh = place_new(new, pins, registry, held.inventory, settings, keeps, promised)
    fresh, stuck = unstuck(endpoints, fresh, stuck_pods)
    # Consolidation, the one step that moves running replicas, on what the new replicas leave: a moved
    # endpoint's replicas go where its saving was computed, while its old ones keep their GPUs and serve until
    # the new ones do.
    growing = {f"{p.namespace}/{p.request}" for p in fresh.placements} | set(stuck)
    growing |= {f"{u.namespace}/{u.request}" for u in fresh.unplaced}
    taken_fresh = [a for p in fresh.placements for a in held_by(p)]
    # The replicas that fit nowhere now wait for nodes to come (what consolidation moves leaves them as it is).
    waiting_pins = {k: p for k, p in {**keeps, **pins}.items() if p.gpu_class in settings.classes}
    waiting_plan = place_waiting(endpoints, fresh, registry, catalog, settings, policy, stuck, waiting_pins)
    ahead = {c: gpus for c, gpus in foreign_waiting(obs.pods, catalog).items() if c in settings.classes}
    etas = endpoint_etas(waiting_plan, ahead, obs.orders, registry, catalog, settings, now)
    waits = waiting_for_room(waiting_plan, ahead, obs.orders, registry, catalog, settings, now)
    # The GPUs a stuck replica was planned on in a class its pod selects are offered to no move, and not again
    # to the API: kube-scheduler found them taken (churn seed 3004: a move landed there, the plan held them twice).
    refused = [a for p in refused_placements(stuck, obs.pods, catalog) for a in held_by(p)]
    for_moves = held.inventory.allocated([*taken_fresh, *refused])
    moved = consolidate(
        endpoints, staying, workloads, recorded, set(promises) | growing, for_moves,
        registry, catalog, settings, now, [*promised, *taken_fresh], leaving_nodes(obs.pods, replaced),
        obs.moves_begun, obs.blocked,
        last_changes(endpoints, previous, obs.pods) if settings.consolidation.enabled else {}, waits,
    )  # fmt: skip
    moving = moved.moves
    blocked = {key: blocked_note(b, settings.consolidation) for b in moved.blocked for key in b.keys}
    staying |= moved.placements
    bound |= dict.fromkeys(moving, 0)
    # An incumbent the plan no longer keeps (a scale-down's surplus, a move's old replica) runs until its pod is
    # gone, and holds its GPUs as every other bound pod does (`pod_allocations`): new replicas were placed off
    # them, and the API's capacity offers them to no 201 (churn seed 2400: two 201s, then demoted, on the four GPUs
    # of ep-12's running pod, most likely freed by a move of ep-12 to an MI300X in the API's own decide step).
    inventory = inventory.allocated(_leaving(held.placements, staying))
    inventory = inventory.allocated(refused)
    placed_all = tuple(p for ep in endpoints for p in staying[ep.key]) + fresh.placements
    real = Plan(placed_all, fresh.unplaced, fresh.occupied)
    objects: list[dict[str, Any]] = []
    # Written in the order kube-scheduler should meet their pods where it takes them first in, first out:
    # the endpoints with replicas waiting for a node last, and the others largest replica first (a one-GPU
    # pod bound first may split the node a tensor-parallel replica was planned on); those that wait in the
    # order their promised nodes are due (`node_due`), then largest replica placed first, not as the API server
    # lists them (by name), so that the first node to come serves the 202 answered on it. No order keeps a waiting
    # pod off the room a new endpoint was answered on (the ReplicaSets make pods concurrently): that pod is
    # not asked for until those replicas are bound (`workloads.asked`).
    by_order: list[tuple[tuple[bool, float, float], list[dict[str, Any]]]] = []
    kept: list[str] = []
    decisions: list[EndpointDecision] = []
    statuses: dict[tuple[str, str], dict[str, Any]] = {}
    events: list[Event] = []
    placed_by, waiting_by = by_endpoint(real.placements), by_endpoint(waiting_plan.placements)
    # The new endpoints' replicas placed on warm GPUs (a 201's or a 202's) whose pods are not bound yet: where
    # they are, the others ask for no pod that waits for a node (`workloads.asked`); for two loops at most, so
    # that one whose pod is never made (a quota, a webhook) does not hold the others.
    period = obs.loop_period_s or settings.eta.step_s
    placing = not_bound(placed_by, bound)
    young = [k for k in placing if (t := created_at(raw_by_key[k])) is not None and now - t < 2 * period]
    unbound_by_class = unbound(placing, young)
    # A loop whose writes fail retries them before it ends: each wait at most the last (a 429's Retry-After).
    delays = settings.write_retry_delays_s
    retries = len(delays) * delays[-1] if delays else 0.0
    loaded = loaded_by(endpoints, placed_by, obs.pods, registry, 2 * period + retries, now)
    unplaced_by: dict[str, list[Any]] = {}
    for u in waiting_plan.unplaced:
        unplaced_by.setdefault(f"{u.namespace}/{u.request}", []).append(u)
    for ep, request in zip(endpoints, requests, strict=True):
        placed, waiting = placed_by.get(ep.key, []), waiting_by.get(ep.key, [])
        unplaced = unplaced_by.get(ep.key, [])
        mine = workloads.get(ep.key, [])
        rendered: list[dict[str, Any]] = []
        failure = None
        # Remembered while the endpoint waits; once its pods are bound, the evidence is gone.
        taken = remembered.get(ep.key, ()) if waiting or unplaced else ()
        move = moving.get(ep.key) or recorded.get(ep.key)
        if placed or waiting:
            try:
                behind = frozenset(c for c, keys in unbound_by_class.items() if keys - {ep.key})
                replacing = move.replacing if move is not None else ()
                if ep.key not in renewing:  # changed again, a shape asked for anew keeps its workload that serves
                    replacing = (*replacing, *changes.get(ep.key, ()))
                rendered = workload_objects(
                    ep, request, placed + waiting, registry, catalog, settings, taken, observed, behind, replacing,
                    mine, respecified=ep.key in renewing, queued=ep.key in queued,
                )  # fmt: skip
            except ManifestError as e:
                failure = str(e)
        names = {o["metadata"]["name"] for o in rendered if o["kind"] in WORKLOAD_KINDS}
        serving = current(w for w in mine if w.name in names)
        if ep.key in renewing:  # what the spec's new shape replaces, where it can be written
            shape_change = changed_from(ep, mine, observed, names) if names else ()
        else:
            shape_change = tuple(n for n in changes.get(ep.key, ()) if n not in names)
        moved_from = move.replacing if move is not None and ep.key not in renewing else ()
        standing = moving_from((*moved_from, *shape_change), mine, names)
        target = targets[ep.key]
        decision = endpoint_decision(
            ep, target, placed, waiting, unplaced, serving, etas.get(ep.key), standing, shape_change
        )
        decision = replace(
            decision, recommendations=windows.get(ep.key, ()), cost_per_hour=endpoint_cost(placed + waiting, catalog)
        )
        size = -max((gpus_of(p) for p in placed), default=0)
        due = node_due(ep.model, promises[ep.key], registry) if waiting and ep.key in promises else math.inf
        by_order.append(((bool(waiting), due, size), rendered))  # `due` is inf but for a waiting 202
        if failure is not None or (decision.phase == "Failed" and current(mine).ready):
            # Its new shape cannot be written, or its changed spec fits nowhere while what it ran before
            # still serves: that goes on as it is, and says why.
            cause = (CANNOT_RENDER, failure) if failure is not None else (SPEC_CHANGE_HELD, decision.message)
            decision = not_applied(decision, mine, previous.get(ep.key, {}), catalog, *cause)
            assert decision.held is not None  # `not_applied` says why
            holds.append(Hold(ep.key, decision.held, decision.held))
            kept.append(ep.key)
        elif ep.key in queued:
            # One that found no room when last tried says so, as it said (no rewrite), until its turn comes.
            if (said := found_no_room(previous.get(ep.key, {}))) is not None:
                decision = replace(decision, not_applied=(said["reason"], str(said.get("message", ""))))
            elif ep.key in deferred:
                decision = replace(decision, not_applied=(TEMPLATE_NO_ROOM, no_room_note()))
            else:
                decision = replace(decision, not_applied=(TEMPLATE_QUEUED, queued_note(allowed)))
        answer = ACCEPTED if decision.waiting else CREATED
        # Once nothing waits, a promise still pending is estimated from its bound pods' load (`keep`).
        eta = decision.eta if decision.waiting or ep.key not in promises else loaded.get(ep.key)
        made = Promise(answer, eta, decision.variant, decision.gpu_class, ep.generation)
        said = find_condition(previous.get(ep.key, {}).get("conditions"), PROMISE_KEPT) or {}
        overdue_said = (said.get("status"), said.get("reason")) == ("False", "Overdue")
        promise = keep(promises.get(ep.key), made, decision.phase, decision.waiting, now, overdue_said)
        if ep.key in afresh and promise.promise is not None and promise.revised is None and placed and not waiting:
            promise = placed_afresh(promise.promise, placed)
        decision = replace(decision, eta=promise.eta, promise=promise.promise, revised=promise.revised)
        if promise.revised:
            events.append(event(raw_by_key[ep.key], "Warning", promise.revised[0], "Revise", promise.revised[1]))
        if promise.sooner:
            events.append(event(raw_by_key[ep.key], "Normal", promise.sooner[0], "Revise", promise.sooner[1]))
        if move is not None and (move.replacing or now - move.at < settings.consolidation.settled_s):
            decision = replace(decision, move=move)  # recorded while it replaces, and while it holds the endpoint
        if ep.key in moving:
            note = f"moving to {decision.variant} on {decision.gpu_class} off {', '.join(moving[ep.key].nodes)}: "
            note += f"empties a GPU for {f}" if (f := moving[ep.key].for_) else f"saves ${moving[ep.key].saving:g}/h"
            events.append(event(raw_by_key[ep.key], "Normal", CONSOLIDATING, "Consolidate", note))
        if ep.key in blocked:
            events.append(event(raw_by_key[ep.key], "Normal", CONSOLIDATION_BLOCKED, "Consolidate", blocked[ep.key]))
        renamed = (
            *(shape_change if ep.key in renewing else ()),
            *(moving[ep.key].replacing if ep.key in moving else ()),
        )
        if ep.scaling == "hpa" and renamed:  # once: the loop that first writes the new workloads
            note = (
                f"{', '.join(renamed)} is replaced by {', '.join(sorted(names))}: point the HPA's scaleTargetRef there"
            )
            events.append(event(raw_by_key[ep.key], "Warning", WORKLOAD_RENAMED, "Rename", note))
        decisions.append(decision)
        statuses[(ep.namespace, ep.name)] = endpoint_status(decision, ep, previous.get(ep.key, {}), now)
    for decision, ep_raw in failed:
        decisions.append(decision)
        statuses[(decision.namespace, decision.name)] = endpoint_status(decision, None, status_of(ep_raw), now)
        kept.append(decision.key)
    pools = pool_decisions(inventory, real, waiting_plan, ahead, endpoints, attribution, settings, obs, now)
    objects += [o for _, rendered in sorted(by_order, key=lambda r: r[0]) for o in rendered]
    objects += pool_objects(pools, settings, catalog)
    fits_not = {k for k in (*rolled, *(changes if queued else ())) if unplaced_by.get(k)} - deferred
    no_room = None
    if deferred:  # the next loop's to try again once the room changes
        no_room = NoRoom(deferred, _room(bound_pods, raw_by_key) if tried_on is None else tried_on)
    return _Pass(
        Decision(
            tuple(objects),
            statuses,
            tuple(decisions),
            tuple(pools),
            tuple(holds),
            inventory,
            real,
            tuple(a for placed in placing.values() for p in placed for a in held_by(p)),
            waiting_plan,
            ahead,
            obs.orders,
            attribution.split_evenly,
            tuple(kept),
            orphans(obs.owned, owned, objects, decisions, obs.endpoints, kept),
            tuple(events),
            unreadable,
            guessed,
            blocked=moved.blocked,
            no_room=no_room,
        ),
        rolled,
        frozenset(fits_not),
    )


def warm(nodes: list[dict[str, Any]], settings: Settings, registry: Registry, catalog: Catalog) -> None:
    """What a standby runs each interval, so that its first loop as leader costs what any loop does: each
    Node's check (remembered by its JSON text: a Node seldom changes) and the scheduler's engine (imported
    on its first batch). Cold, they cost a new leader's first loop 0.6-0.8 s of its 1.1 s at 224 nodes."""
    inventory = _inventory(nodes, SharingPolicy(dict(settings.sharing)), catalog)
    if not isinstance(inventory, Hold):  # a hold is `decide`'s to report
        schedule((), registry, inventory, settings.engine, settings.time_limit_s)


def _inventory(nodes: Iterable[Mapping[str, Any]], policy: SharingPolicy, catalog: Catalog) -> Inventory | Hold:
    """The Nodes to place on, each that cannot be read skipped with its reason (`Inventory.skipped`); a hold on
    the nodes where the sharing configuration, all that is left to refuse here, is refused."""
    try:
        return build_inventory([dict(n) for n in nodes], catalog, sharing=policy, strict=False)
    except InventoryError as e:
        return Hold("nodes", str(e), str(e))


def _room(bound: Inventory, endpoints: Collection[str]) -> int:
    """What a new pod template's turn is tried on (`NoRoom.room`): every bound pod on its GPUs (`Inventory.digest`),
    and the endpoints, whose promises hold GPUs no pod holds yet (one deleted frees them, with no pod gone)."""
    return hash((bound.digest(), frozenset(endpoints)))


def _leaving(kept: Mapping[str, Sequence[Placement]], staying: Mapping[str, Sequence[Placement]]) -> list[Allocation]:
    """The GPUs of the incumbents (`kept`, by endpoint) that the plan no longer keeps (`staying`): their pods run
    until their workload is rewritten and they have terminated."""
    return [a for k, placed in kept.items() for p in placed if p not in staying.get(k, ()) for a in held_by(p)]
