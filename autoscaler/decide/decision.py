"""What the decide step reads (`Observation`) and returns (`Decision`), as plain data.

The controller builds the `Observation` from its reads and applies the `Decision`; the endpoint API
(`autoscaler.admission`) and the simulator read the same types.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from autoscaler.decide.consolidation import CONSOLIDATION_BLOCKED, Blocked
from autoscaler.decide.state import Move, Promise, Recommendation
from autoscaler.events import Event
from autoscaler.forecast import Forecast
from autoscaler.orders import OrderBook
from autoscaler.signals import History, ModelSignals, PodSignals
from scheduler.inventory import Allocation, Inventory
from scheduler.plan import Plan


@dataclass(frozen=True)
class NoRoom:
    """The endpoints whose new pod template found no room (its replicas fit nowhere beside the old ones), and the
    room they were tried on (the GPUs every bound pod holds, and the endpoints: `decide._room`): while it is the
    same, a later loop does not try them again (`decide`: each try of a full cluster's rollout is a pass of the
    whole step)."""

    keys: frozenset[str]
    room: int


@dataclass(frozen=True)
class Observation:
    """What the controller read this loop: raw objects, and the metrics (None: Prometheus was down)."""

    nodes: Sequence[Mapping[str, Any]]
    endpoints: Sequence[Mapping[str, Any]]
    owned: Sequence[Mapping[str, Any]] = ()
    signals: Mapping[str, ModelSignals] | None = None
    history: Mapping[str, History] = field(default_factory=dict)
    """Each model's demand over the past hours (req/s, NaN where nothing was recorded), which the
    warm-pool policies and the forecast read as GPUs needed per class."""
    pods: Sequence[Mapping[str, Any]] = ()
    """Pending and Running pods that ask for GPUs (`autoscaler.pods` reads them)."""
    pod_signals: Mapping[tuple[str, str], PodSignals] = field(default_factory=dict)
    """Per (namespace, pod): demand, queue and GPU saturation, which tell apart endpoints of one model."""
    orders: OrderBook = field(default_factory=OrderBook)
    """The node orders in flight per GPU class, the provisioning delays observed and the orders that lapsed
    (`autoscaler.orders`): waiting replicas are promised the nodes already coming before any ordered anew,
    each after a delay learnt from those observed, weighed with those that lapsed."""
    loop_period_s: float | None = None
    """The longest time between the starts of the controller's recent loops (its interval, plus a loop's own
    time): how late its status may say what changed, measured; None where nothing measured it (`eta.step_s`)."""
    gpu_indexes: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Per node (the exporter's `Hostname`), NVML's index of each GPU UUID, as dcgm-exporter and EGS's
    exporter label their series (`autoscaler.adapters.prometheus`): what a KAI reservation's UUID is
    read against (`autoscaler.pods.with_devices`): the last read that answered, kept per node through
    a failed one; empty until Prometheus first answers."""
    moves_begun: Sequence[tuple[str, Move]] = ()
    """The consolidation moves this controller began that it still counts, each with its endpoint's key (when,
    and the nodes they took replicas off), every one of an endpoint's: a move's record lives on its endpoint's
    status, so one whose endpoint was deleted since would free the budget early (churn seed 464: two moves 10 s
    apart, the first's endpoint deleted between them). A new leader starts with none, the statuses alone."""
    blocked: Sequence[Blocked] = ()
    """The consolidation moves the last decision found larger than the whole budget (`Decision.blocked`):
    reported again without a search while the fleet and their endpoints' replicas stay as they were."""
    no_room: NoRoom | None = None
    """The endpoints whose new pod template the last decision found no room for (`Decision.no_room`): they wait
    without a try while the room is as it was. A new leader starts with none, and tries each once."""


@dataclass(frozen=True)
class EndpointDecision:
    namespace: str
    name: str
    model: str
    replicas: int
    placed: int
    """Replicas on nodes that exist now."""
    waiting: int
    """Replicas waiting for a node to be provisioned."""
    unplaceable: int
    variant: str | None
    gpu_class: str | None
    eta: float | None
    """When every replica is expected to serve (Unix time); None when nothing waits."""
    phase: str
    ready_replicas: int = 0
    reason: str = ""
    message: str = ""
    held: str | None = None
    """Why the replica count was held rather than computed, when it was."""
    promise: Promise | None = None
    """What the endpoint was told and is kept to (`state.keep`), recorded in `status.promise`."""
    revised: tuple[str, str] | None = None
    """(reason, message) when the promise was revised in this decision."""
    move: Move | None = None
    """The consolidation moving the endpoint (or within its interval), recorded in `status.consolidation`."""
    recommendations: tuple[Recommendation, ...] = ()
    """The replica counts recommended within the scale-down stabilization window (change points),
    recorded in the status so that the window survives a restart."""
    cost_per_hour: float = 0.0
    """USD per hour of its replicas (placed and waiting) at the configured prices."""
    not_applied: tuple[str, str] | None = None
    """(reason, message) when its spec is not applied: its new shape cannot be rendered, or its changed spec fits
    no node (held: what its replicas from before serve is reported instead, `status.not_applied`); or its new pod
    template waits its turn or for room (`TemplateChangeQueued`, `TemplateChangeWaitsForRoom`: not held, it serves
    and scales in the template it runs)."""
    moving: str | None = None
    """While a consolidation move's or a shape change's new replicas do not all serve: where it goes, the
    `Consolidating` (or `Progressing`) condition's message; the replaced replicas that serve count in
    `ready_replicas` meanwhile."""
    shape_change: tuple[str, ...] = ()
    """The workloads of the shape before that a change of its spec replaces, serving until the new shape's
    replicas do (make-before-break), recorded in `status.shapeChange` while they exist."""

    @property
    def serves_now(self) -> bool:
        """Warm capacity takes every replica now (the API's 201)."""
        return self.waiting == 0 and self.unplaceable == 0 and self.placed > 0

    @property
    def key(self) -> str:
        """namespace/name, as `Endpoint.key`."""
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class PoolDecision:
    gpu_class: str
    idle_nodes: int
    target: int
    waiting_gpus: int = 0
    """GPUs waiting for the class's nodes: EGS's waiting replicas and other workloads' pending pods."""
    idle: tuple[str, ...] = ()
    """The idle nodes by name: the controller counts the warm nodes taken from one loop to the next."""
    forecast: Forecast | None = None
    """The class's GPU need over the provisioning lead time, once its history has two samples."""


UNAVAILABLE = "Prometheus unavailable"
"""The cause of every hold while Prometheus does not answer: the controller, which saw its error, says the
outage itself (`report_holds` does not)."""


@dataclass(frozen=True)
class Hold:
    """A part of the last decision kept as it was, and why."""

    subject: str
    """The endpoint held (namespace/name), or `nodes`."""
    cause: str
    """Why, the same for as long as it lasts (what the controller logs when holding for it starts and ends)."""
    message: str
    """Why in full, with the subject's own figures: the `ScalingActive` message, so none that moves every loop
    of itself (an age), or each quiet loop would write the status again."""

    def __str__(self) -> str:
        return f"{self.subject}: {self.message}"


@dataclass(frozen=True)
class Decision:
    objects: tuple[dict[str, Any], ...]
    """Every object the controller should hold, as server-side apply takes it."""
    statuses: Mapping[tuple[str, str], dict[str, Any]]
    """(namespace, name) -> the InferenceEndpoint's status."""
    endpoints: tuple[EndpointDecision, ...]
    pools: tuple[PoolDecision, ...]
    holds: tuple[Hold, ...]
    """Why parts of the last decision were kept (missing, stale or contradictory data)."""
    inventory: Inventory = field(default_factory=lambda: Inventory(()))
    """The GPU nodes the replicas were placed on (what `autoscaler.admission` takes free capacity from)."""
    placed: Plan = field(default_factory=Plan)
    """The replicas on nodes that exist now."""
    unbound: tuple[Allocation, ...] = ()
    """What `placed` holds for replicas whose pods are not bound yet (where HAMi puts them is its choice:
    `autoscaler.decide.placement.place_requests`)."""
    waiting: Plan = field(default_factory=Plan)
    """The replicas waiting for nodes to be provisioned, in the order their ETAs were given."""
    ahead: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """Per GPU class, the GPUs of each pod of other workloads that waits for one of its nodes: they
    queue ahead of the waiting replicas."""
    orders: OrderBook = field(default_factory=OrderBook)
    """The observation's node orders, delays observed and orders lapsed, which the ETAs counted on."""
    split_evenly: tuple[str, ...] = ()
    """Models whose demand was split evenly between endpoints that could not be told apart."""
    kept: tuple[str, ...] = ()
    """Endpoints (namespace/name) whose objects are left as the cluster holds them: their spec cannot be
    read, their new shape cannot be rendered, or their changed spec fits no node while what they ran
    before serves. Nothing of theirs is intended anew, and nothing of
    theirs is to be removed for that."""
    deletions: tuple[tuple[str, str, str, str], ...] = ()
    """(apiVersion, kind, namespace, name) of owned objects no longer intended, to delete now: their
    replacement serves, or they serve nothing (`autoscaler.decide.workloads.orphans`)."""
    events: tuple[Event, ...] = ()
    """Events to record (a promise revised), which the controller hands to its recorder (a consolidation move's
    `Consolidating` once the status that records the move is written)."""
    unreadable: tuple[tuple[str, str], ...] = ()
    """(namespace/name, value) of pods whose device annotation cannot be read: their GPUs were inferred
    (`autoscaler.pods.Devices`)."""
    numbered_here: tuple[str, ...] = ()
    """Nodes with a GPU UUID that no series maps to NVML's index: numbered by EGS (`with_devices`)."""
    nodes_read: bool = True
    """False where the step refused the sharing configuration before reading a node or pod: its notices
    (none) say nothing of theirs."""
    blocked: tuple[Blocked, ...] = ()
    """The consolidation move found larger than the whole budget, if any: the next loop's `Observation.blocked`."""
    no_room: NoRoom | None = None
    """The endpoints whose new pod template waits for room, and the room it was found on: the next loop's
    `Observation.no_room`."""

    def notices(self) -> frozenset[str]:
        """What the caller tells its user about objects the decision could not use (`report`): the step
        itself logs nothing, as the API runs it too."""
        return frozenset(
            [f"node {s.node} skipped: {s.reason}" for s in self.inventory.skipped]
            + [
                f"pod {pod}: HAMi device annotation {value[:200]!r} cannot be read; its GPUs are inferred"
                for pod, value in self.unreadable
            ]
            + [
                f"node {node}: no exporter series maps its shared GPUs' UUIDs to NVML's index (gpu_whole:saturation:"
                "ratio by Hostname, UUID, gpu); they are numbered by EGS, which keeps each GPU's shares together "
                "but not always on the GPU their scheduler gave them"
                for node in self.numbered_here
            ]
            + [
                f"consolidation of {e.regarding.namespace}/{e.regarding.name} blocked: {e.note}"
                for e in self.events
                if e.reason == CONSOLIDATION_BLOCKED
            ]
        )


def report(decision: Decision, said: frozenset[str], log: logging.Logger) -> frozenset[str]:
    """Log the decision's notices that `said` (what the last call returned) lacks: each once, when it
    starts, not every loop while it stays, nor again after a step that read no node between."""
    if not decision.nodes_read:
        return said
    notices = decision.notices()
    for notice in sorted(notices - said):
        log.warning("%s", notice)
    return notices


def report_holds(decision: Decision, holding: frozenset[str], log: logging.Logger) -> frozenset[str]:
    """Log each cause of the decision's holds that `holding` (what the last call returned) lacks, once,
    with how many it holds, and each that ended, once: not every endpoint every loop while it lasts
    (a Prometheus outage at 150 endpoints logged 1,158 lines in 4 minutes). Each endpoint held says so
    itself, in its `ScalingActive` condition and a `HoldingReplicas` Event. A Prometheus outage is left to
    the caller's line, which names the error: two lines at each end of it said one thing."""
    held: dict[str, list[str]] = {}
    for hold in decision.holds:
        if hold.cause != UNAVAILABLE:
            held.setdefault(hold.cause, []).append(hold.subject)
    for cause in sorted(held.keys() - holding):
        subjects = sorted(held[cause])
        some = ", ".join(subjects[:3]) + (", ..." if len(subjects) > 3 else "")
        log.warning("holding the last decision for %d (%s): %s", len(subjects), some, cause)
    for cause in sorted(holding - held.keys()):
        log.info("no longer holding the last decision: %s", cause)
    return frozenset(held)
