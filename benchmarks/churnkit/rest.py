"""Churn's rest: what is still under way when the settled figures would be read (benchmarks/churn.py).

The settled figures (applied over intended $/h, stale workloads, writes on a quiet reconcile) describe a
cluster at rest. Read at a fixed minute, they caught whatever was in flight then: a consolidation move
begun in the play's last minute read its replaced Deployment as stale, its cost twice and its own end as
quiet writes (seed 800, tenth session). `in_flight` names what is under way, from plain records; the run
plays on until it names nothing over two whole controller loops (`Run.until_rest`), at most a bound.
Nothing that is wrong at rest is excused: a stale workload whose endpoint is gone, a write on a quiet loop,
are read as before, only later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from autoscaler.decide.status import CHANGING_SHAPE, CONSOLIDATING
from autoscaler.kubetime import micro_time, parse_time

SETTLED_PHASES = ("Ready", "Failed")
"""An endpoint's phases at rest: serving, or refused (an invalid spec, nothing to place it on)."""


def in_flight(
    endpoints: Iterable[Mapping[str, Any]],
    events: Iterable[Mapping[str, Any]],
    pods: Iterable[tuple[str, bool, bool]],
    coming: Iterable[str],
    now: float,
    interval_s: float,
    restarting: bool = False,
) -> list[str]:
    """What is under way now, one line each (none: at rest). Of `endpoints` (InferenceEndpoint objects):
    one not Ready or Failed (a waiting replica), one whose spec the controller has not read yet (the
    `observedGeneration` its status records behind: an invalid spec records none), one with a
    `Consolidating` condition (a move's new replicas do not all serve) or a shape change of its spec under
    way (`status.shapeChange`, `Progressing` for `ChangingShape`: Ready while its old workloads serve, whose
    new pod may not exist yet while `workloads.asked` holds it back); a consolidation move begun less
    than `interval_s` (the budget's interval, real) before `now` by `events` (its budget is not free yet,
    so another move may still begin); `pods` (key, bound, Ready) bound and not Ready (its model loading,
    its node NotReady until they are evicted), or not bound (a rollout, a node to come); nodes `coming`
    (ordered, not Ready); a controller `restarting` (killed, within the kubelet's back-off)."""
    flying = []
    for e in endpoints:
        meta = e.get("metadata") or {}
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        status: Mapping[str, Any] = e["status"] if isinstance(e.get("status"), dict) else {}
        if status.get("phase") not in SETTLED_PHASES:
            flying.append(f"{key} {status.get('phase') or 'without a status'}")
        elif (observed := status.get("observedGeneration")) is not None and int(observed) < int(meta["generation"]):
            flying.append(f"{key}: generation {meta.get('generation')} not observed")
        if any(c.get("type") == CONSOLIDATING and c.get("status") == "True" for c in status.get("conditions") or ()):
            flying.append(f"{key} consolidating")
        if status.get("shapeChange") or any(c.get("reason") == CHANGING_SHAPE for c in status.get("conditions") or ()):
            flying.append(f"{key} changing shape")
    last_move = max((_last_seen(e) for e in events if e.get("reason") == CONSOLIDATING), default=None)
    if last_move is not None and now - last_move < interval_s:
        flying.append(f"a move began at {micro_time(last_move)}, within the budget's interval")
    flying += [f"pod {key} {'not Ready' if bound else 'not bound'}" for key, bound, ready in pods if not ready]
    flying += [f"node {name} coming" for name in coming]
    if restarting:
        flying.append("the controller restarting")
    return flying


def _last_seen(event: Mapping[str, Any]) -> float:
    """When an Event last happened: its series' last observation, or its own time."""
    series = event.get("series") or {}
    return parse_time(str(series.get("lastObservedTime") or event["eventTime"]))
