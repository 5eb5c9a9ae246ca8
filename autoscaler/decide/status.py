"""Status: each InferenceEndpoint's phase, reason and counts, and the status object written back.

Also parses the endpoints: one that cannot be read, or names a model the registry lacks, gets a
`Failed` status of its own instead of stopping the others.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

from autoscaler import endpoint as ie
from autoscaler.decide.decision import EndpointDecision, Hold
from autoscaler.decide.placement import serving_cost
from autoscaler.decide.state import (
    ACCEPTED,
    CREATED,
    Owned,
    Promise,
    Workload,
    current,
    promise_of,
    promised,
    status_of,
)
from autoscaler.endpoint import Endpoint, EndpointError
from autoscaler.events import find_condition, set_condition
from autoscaler.fields import as_list
from autoscaler.kubetime import deadline, rfc3339
from common.errors import InputError
from scheduler.catalog import Catalog
from scheduler.manifests import PORT, dns_label
from scheduler.plan import Placement
from scheduler.registry import Registry

PROMISE_KEPT = "PromiseKept"
"""The condition a revised promise sets False, with the reason (`CapacityGone`, `Overdue`); it stays
while the revised promise is, and goes with the promise once the endpoint is Ready."""


def promise_outcome(before: Mapping[str, Any], d: EndpointDecision, now: float) -> Literal["kept", "late"] | None:
    """How the ETA promised to the endpoint as observed (`before`, the object the controller read) resolves
    in decision `d`: `kept` when it is Ready by then, `late` when Ready after it or revised; None while it
    stands, or when there was no ETA (a 201) or it was already revised. It is read from the transition
    between the status read and the one decided, so a restarted controller, which reads the status the
    last loop wrote (Ready without a promise, or `PromiseKept` False), counts nothing twice."""
    promise = promise_of(before)
    if promise is None or promise.eta is None:
        return None
    if find_condition(status_of(before).get("conditions"), PROMISE_KEPT) is not None:
        return None  # revised earlier: counted late then
    if d.revised is not None:
        return "late"
    if d.phase == "Ready":
        return "kept" if now <= promise.eta else "late"
    return None


def parse_endpoints(
    raw: Sequence[Mapping[str, Any]], registry: Registry, now: float
) -> tuple[list[Endpoint], list[tuple[EndpointDecision, Mapping[str, Any]]]]:
    endpoints: list[Endpoint] = []
    failed: list[tuple[EndpointDecision, Mapping[str, Any]]] = []
    for obj in raw:
        try:
            ep = ie.parse(obj, checked=True)
        except EndpointError as e:
            failed.append((_invalid(obj, str(e)), obj))
            continue
        try:
            registry.get(ep.model)
        except InputError as e:
            failed.append((_invalid(obj, f"spec.model: {e}"), obj))
            continue
        endpoints.append(ep)
    return endpoints, failed


def _invalid(obj: Mapping[str, Any], message: str) -> EndpointDecision:
    meta, spec = obj.get("metadata") or {}, obj.get("spec")
    model = str(spec.get("model", "")) if isinstance(spec, Mapping) else ""
    namespace, name = meta.get("namespace", "default"), meta.get("name", "")
    return EndpointDecision(namespace, name, model, 0, 0, 0, 0, None, None, None, "Failed", 0, "InvalidSpec", message)


def not_applied(
    decision: EndpointDecision,
    serving: Sequence[Owned],
    previous: Mapping[str, Any],
    catalog: Catalog,
    reason: str,
    why: str,
) -> EndpointDecision:
    """An endpoint whose spec cannot be applied (its new shape cannot be rendered, `CANNOT_RENDER`, or
    its changed spec fits no node, `SPEC_CHANGE_HELD`): what its replicas from before serve is reported
    as it is (their phase, variant, class and cost, worked out from them: the last status may be a
    Failed one without a cost), its replica count is held, nothing of it waits, and the `SpecApplied`
    condition says why. Failed would tell its users it is down while they serve: only when nothing does."""
    now = current(serving)
    shape = main_shape((w.shape.variant, w.shape.gpu_class) for w in serving if w.shape for _ in range(w.replicas))
    replicas = now.replicas or 0
    if now.ready and now.ready >= replicas:
        phase, state = "Ready", "AllReplicasReady"
    elif now.ready:
        phase, state = "Degraded", "ReplicasNotReady"
    else:
        phase, state = "Failed", reason
    return replace(
        decision,
        phase=phase,
        reason=state,
        message=why if phase == "Failed" else _message(phase, 0, now.ready, replicas),
        held=f"its spec is not applied: {why}",
        not_applied=(reason, why),
        placed=0,
        waiting=0,
        eta=None,
        ready_replicas=now.ready,
        variant=shape[0] if shape else previous.get("variant"),
        gpu_class=shape[1] if shape else previous.get("gpuClass"),
        cost_per_hour=serving_cost(serving, catalog),
    )


def main_shape(replicas: Iterable[tuple[str, str]]) -> tuple[str, str] | None:
    """The (variant, GPU class) an endpoint whose `replicas` (one pair each) take several shapes is
    reported in: the one most of them take, ties to the first by name. The API's answer and the
    controller's status both name it (`endpoint_decision`), so that it depends on neither the order the
    replicas were placed in nor the order they became ready in (a 201 split over two classes was
    answered in one and reported in the other)."""
    counts = Counter(replicas)
    return min(counts, key=lambda shape: (-counts[shape], shape), default=None)


def shape_of(placements: Iterable[Placement]) -> tuple[str, str] | None:
    """`main_shape` of placed replicas: also the shape more replicas of theirs take, and wait in."""
    return main_shape((p.variant, p.gpu_class) for p in placements)


def moving_from(replacing: Iterable[str], workloads: Iterable[Owned], intended: Collection[str]) -> Workload:
    """What the workloads `replacing` (a consolidation move's, a shape change's: `shape_change_of`) hold now (none
    of them left: replicas None). Make-before-break, they serve until the new shape's replicas do, so the
    endpoint's status counts them meanwhile: a move or a change of the spec would otherwise turn a served
    endpoint not-Ready. No other workload outside the `intended` ones counts (a stale one, issue 16)."""
    names = set(replacing)
    return current(w for w in workloads if w.name in names and w.name not in intended)


def shape_change_of(raw: Mapping[str, Any], owned: Sequence[Owned]) -> tuple[str, ...]:
    """The workloads a shape change of the endpoint's spec replaces, as its status records them
    (`status.shapeChange`), that still exist: they serve until the new shape's replicas do, and are neither
    incumbents nor names a new shape takes meanwhile (their shape may be one the spec still admits)."""
    recorded = status_of(raw).get("shapeChange")
    listed = as_list(recorded.get("replacing")) if isinstance(recorded, Mapping) else []
    names = {w.name for w in owned}
    return tuple(str(n) for n in listed if str(n) in names)


def endpoint_decision(
    ep: Endpoint,
    target: tuple[int, Hold | None],
    placed: Sequence[Placement],
    waiting: Sequence[Placement],
    unplaced: Sequence[Any],
    current: Workload,
    eta: float | None,
    replaced: Workload | None = None,
    shape_change: tuple[str, ...] = (),
) -> EndpointDecision:
    """The endpoint's phase and counts from its intended workloads (`current`), and, while a consolidation
    move or a `shape_change` of its spec (the workloads of the shape before) is under way (its new replicas
    do not all serve yet), from the `replaced` ones that still serve (`moving_from`): those count ready, and
    the `Consolidating` condition (a move) or the `Progressing` one (a change) says where it goes."""
    replicas, hold = target
    shape = shape_of([*placed, *waiting])
    ready = min(current.ready, replicas)
    moving = None
    if replaced is not None and replaced.replicas is not None and ready < replicas:
        to = f"{shape[0]} on {shape[1]}" if shape else "a cheaper shape"
        verb = "changing" if shape_change else "moving"
        moving = f"{verb} to {to}: {ready} of {replicas} new replicas ready; the replaced ones serve until they are"
        ready = min(current.ready + replaced.ready, replicas)
    if unplaced and not placed and not waiting:
        phase, reason = "Failed", "Unschedulable"
    elif moving and ready >= replicas:
        phase, reason = "Ready", "AllReplicasReady"  # served while moved, whatever the new replicas wait for
    elif waiting:
        phase, reason = "Provisioning", "WaitingForCapacity"
    elif replicas > 0 and ready >= replicas:
        phase, reason = "Ready", "AllReplicasReady"
    elif unplaced or (ready and ready < replicas):
        phase, reason = "Degraded", "Unschedulable" if unplaced else "ReplicasNotReady"
    else:
        phase, reason = "Pending", "ReplicasStarting"
    message = unplaced[0].reason if unplaced else _message(phase, len(waiting), ready, replicas)
    return EndpointDecision(
        namespace=ep.namespace,
        name=ep.name,
        model=ep.model,
        replicas=replicas,
        placed=len(placed),
        waiting=len(waiting),
        unplaceable=len(unplaced),
        variant=shape[0] if shape else None,
        gpu_class=shape[1] if shape else None,
        eta=eta,
        phase=phase,
        ready_replicas=ready,
        reason=reason,
        message=message,
        held=hold.message if hold else None,
        moving=moving,
        shape_change=shape_change,
    )


def _message(phase: str, waiting: int, ready: int, replicas: int) -> str:
    if phase == "Provisioning":
        return f"{waiting} of {replicas} replicas wait for a GPU node to be provisioned"
    return f"{ready} of {replicas} replicas ready"


def endpoint_status(
    d: EndpointDecision, ep: Endpoint | None, previous: Mapping[str, Any], now: float
) -> dict[str, Any]:
    generation = ep.generation if ep is not None else None
    # The conditions this function owns; PromiseKept is carried over below while its promise is.
    owned = (
        *ENDPOINT_CONDITIONS,
        *((SPEC_APPLIED,) if d.not_applied else ()),
        *((CONSOLIDATING,) if d.moving and not d.shape_change else ()),
    )
    conditions = [c for c in previous.get("conditions") or () if c.get("type") in owned]
    for type, holds in conditions_of(d).items():
        conditions = set_condition(conditions, type, holds, d.reason, d.message, now, generation)
    if d.not_applied:  # present while the spec is not applied, gone with it
        conditions = set_condition(conditions, SPEC_APPLIED, "False", *d.not_applied, now, generation)
    if d.moving and d.shape_change:  # the spec's change under way, whatever the phase says
        conditions = set_condition(conditions, "Progressing", "True", CHANGING_SHAPE, d.moving, now, generation)
    elif d.moving:  # present while a move's new replicas do not all serve, gone with it
        conditions = set_condition(conditions, CONSOLIDATING, "True", MOVING, d.moving, now, generation)
    # As HPA's ScalingActive: False while the replica count is held instead of following demand (Prometheus
    # unreachable or not given, a model's metrics missing, stale or contradictory), so that `kubectl
    # describe` says autoscaling is off for this endpoint, and why.
    if d.held:
        conditions = set_condition(conditions, SCALING_ACTIVE, "False", "ReplicasHeld", d.held, now, generation)
    else:
        follow = "replicas follow demand"
        conditions = set_condition(conditions, SCALING_ACTIVE, "True", "ReplicasFollowDemand", follow, now, generation)
    status: dict[str, Any] = {
        "phase": d.phase,
        "readyReplicas": d.ready_replicas,
        "desiredReplicas": d.replicas,
        "conditions": conditions,
    }
    if ep is not None:
        status["observedGeneration"] = ep.generation
        status["url"] = f"http://{dns_label(ep.name)}.{ep.namespace}.svc:{PORT}"
    if d.variant:
        status["variant"] = d.variant
    if d.gpu_class:
        status["gpuClass"] = d.gpu_class
    if d.cost_per_hour:
        status["costPerHour"] = d.cost_per_hour
    if d.eta is not None:
        status["estimatedReadyTime"] = deadline(d.eta)
    if d.promise is not None:
        status["promise"] = d.promise.as_status()
        before_kept = find_condition(previous.get("conditions"), PROMISE_KEPT)
        if d.revised is not None:
            status["conditions"] = set_condition(
                status["conditions"], PROMISE_KEPT, "False", *d.revised, now, generation
            )
        elif before_kept is not None:  # carried over: still said of the spec read now, as the conditions above are
            carried = dict(before_kept)
            if generation is not None:
                carried["observedGeneration"] = generation
            status["conditions"].append(carried)
    if d.move is not None:
        status["consolidation"] = d.move.as_status()
    if d.shape_change:
        status["shapeChange"] = {"replacing": list(d.shape_change)}
    if d.recommendations:
        status["recommendations"] = [{"time": rfc3339(r.time), "replicas": r.replicas} for r in d.recommendations]
    if (scaled := last_scale(previous, d.replicas, now)) is not None:
        status["lastScaleTime"] = scaled
    return status


def last_scale(previous: Mapping[str, Any], replicas: int, now: float) -> str | None:
    """`lastScaleTime`, as an HPA's status says it: now where the replica count differs from the one last written
    (`desiredReplicas`), else as it was. A scale-down's pods leave no record once gone; consolidation counts
    `consolidateAfter` from it too (`consolidation.last_changes`)."""
    before = previous.get("desiredReplicas")
    if isinstance(before, int) and before != replicas:
        return rfc3339(now)
    said = previous.get("lastScaleTime")
    return said if isinstance(said, str) else None


def answer_status(d: EndpointDecision, generation: int, placed: Sequence[Placement] = ()) -> dict[str, Any]:
    """The status the endpoint API writes with its answer: the promise it makes (201: this variant and
    class serve now; 202: ready by the ETA) and the GPUs `placed` took (a 202's warm replicas too, so that
    a capacity rebuilt holds them where answered), which the controller then keeps
    (`state.keep`, `promises.reserved`)."""
    status: dict[str, Any] = {"phase": d.phase, "desiredReplicas": d.replicas}
    if d.eta is not None:
        status["estimatedReadyTime"] = deadline(d.eta)
    if d.variant:
        status |= {"variant": d.variant, "gpuClass": d.gpu_class}
    if d.cost_per_hour:
        status["costPerHour"] = d.cost_per_hour
    answer = CREATED if d.serves_now else ACCEPTED
    status["promise"] = Promise(answer, d.eta, d.variant, d.gpu_class, generation, promised(placed)).as_status()
    return status


SCALING_ACTIVE = "ScalingActive"
ENDPOINT_CONDITIONS = ("Ready", "Progressing", "Degraded", SCALING_ACTIVE)
SPEC_APPLIED = "SpecApplied"
"""False while the spec is not applied (`not_applied`), with reason `SPEC_CHANGE_HELD` or `CANNOT_RENDER`, or
while the pod template EGS renders for it now waits its turn (`TEMPLATE_QUEUED`, `workloads.paced`: its replicas
follow demand meanwhile, in the template they run) or waits for room (`TEMPLATE_NO_ROOM`); absent otherwise."""
CONSOLIDATING = "Consolidating"
"""The reason of the Event on an endpoint whose move begins, and a condition: True, with reason `MOVING`,
while a consolidation move's new replicas do not all serve (`endpoint_decision`): the message says to which
shape, and the replaced replicas count ready meanwhile; absent otherwise."""
MOVING = "MovingToCheaperShape"
CHANGING_SHAPE = "ChangingShape"
"""The `Progressing` reason while a shape change of the spec is under way (`endpoint_decision`): its new
replicas do not all serve, and the replaced ones that do count ready meanwhile."""
SPEC_CHANGE_HELD = "Unschedulable"
CANNOT_RENDER = "CannotRender"
TEMPLATE_QUEUED = "TemplateChangeQueued"
TEMPLATE_NO_ROOM = "TemplateChangeWaitsForRoom"
"""`SpecApplied`'s reason while an endpoint's new pod template, given its turn, found no room for all its
replicas beside the old ones (`decide`): it waits as a queued one does, after the others (`workloads.paced`)."""


def found_no_room(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The `SpecApplied` condition of a status whose last try found no room for its change (of the spec or of the
    template), or None: such an endpoint goes after the others in the queue, and says so as it said."""
    said = find_condition(status.get("conditions"), SPEC_APPLIED) or {}
    no_room = said.get("status") == "False" and said.get("reason") in (SPEC_CHANGE_HELD, TEMPLATE_NO_ROOM)
    return said if no_room else None


def queued_note(allowed: int) -> str:
    """`SpecApplied`'s message while an endpoint's new pod template waits its turn (`TEMPLATE_QUEUED`): the same
    from loop to loop (how many change now would rewrite every waiting endpoint's status as it moves)."""
    return (
        f"its new pod template waits its turn: at most {allowed} endpoints change theirs at once "
        "(templateRollout.maxEndpoints); its workload serves as it is meanwhile"
    )


def no_room_note() -> str:
    """`SpecApplied`'s message while an endpoint's new pod template waits for room (`TEMPLATE_NO_ROOM`)."""
    return (
        "its new pod template waits for room: its new replicas do not all fit beside the ones that serve "
        "(made before the old ones break); its workload serves as it is meanwhile, and it goes after the others"
    )


WORKLOAD_RENAMED = "WorkloadRenamed"
"""The Warning Event when a change or a move gives an endpoint with `scaling: hpa` new workload names: the
user's HorizontalPodAutoscaler names the old one (`scaleTargetRef`), and stops scaling once it is gone."""


def conditions_of(d: EndpointDecision) -> dict[str, Literal["True", "False"]]:
    """KEP-1623 conditions of a phase: Ready; Progressing while replicas are on their way (placed or
    waiting for capacity, or not ready yet in a degraded endpoint); Degraded when some or all of what
    was asked for cannot run."""
    progressing = d.phase in ("Provisioning", "Pending") or (d.phase == "Degraded" and d.reason == "ReplicasNotReady")
    return {
        "Ready": "True" if d.phase == "Ready" else "False",
        "Progressing": "True" if progressing else "False",
        "Degraded": "True" if d.phase in ("Degraded", "Failed") else "False",
    }
