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
  owned by the endpoint, without the per-node pin (the nodes a replica waits for do not exist yet,
  and a new pin would restart the running pods: kube-scheduler picks the node within the class, the
  GPU resources keep it honest);
- per configured GPU class the **warm pool** (`pool` policies of the core, never releasing on
  missing data) as the configured backend's object: a balloon Deployment at PriorityClass -10, a
  Cluster Autoscaler CapacityBuffer, or a Karpenter static NodePool's replicas.

Safety: missing, stale or contradictory metrics never scale down. The endpoint keeps the replicas its
workload has now (what the cluster says, so a restart loses nothing) and the decision says why in
`holds`.
"""

from __future__ import annotations

import datetime
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from autoscaler import endpoint as ie
from autoscaler.attribution import Attribution, EndpointSignals, attribute
from autoscaler.endpoint import Endpoint, EndpointError
from autoscaler.eta import ClassCapacity, EtaSettings, queue_etas
from autoscaler.forecast import DemandSeries, Forecast, ForecastSettings, forecast_seasonal
from autoscaler.pods import foreign_waiting, pods_by_endpoint, stuck_replicas, without_foreign_pods
from autoscaler.pool import POLICIES, PoolObservation, PoolSettings, hold_on_missing_data
from autoscaler.replicas import ReplicaBounds, replica_target
from autoscaler.signals import History, ModelSignals, PodSignals
from common.errors import InputError
from scheduler.catalog import Catalog, GpuModel
from scheduler.fleet import MAX_NODES_PER_REPLICA
from scheduler.inventory import Inventory, InventoryError, NodeGpus, SharingPolicy, build_inventory, held_by
from scheduler.manifests import PORT, dns_label, manifests
from scheduler.plan import Placement, Plan, Request
from scheduler.registry import Registry
from scheduler.schedule import schedule

KV_CACHE_HIGH = 0.80
QUEUE_HIGH = 5.0
"""llm-d's variant autoscaler thresholds: KV-cache use and queued requests per replica."""
GPU_SATURATION_HIGH = 0.95
"""The GPU saturation ratio (VRAM use or memory bandwidth, the larger) at which an endpoint's GPUs are
saturated, read when vLLM reports no queue or KV cache. Above vLLM's default
`--gpu-memory-utilization` (0.90), at which its VRAM use sits whatever the load."""
PRIORITY_CLASS = "egs-warm-pool"
PRIORITY = -10
"""Below every default priority (0), so any real replica preempts a balloon pod."""
POOL_IMAGE = "registry.k8s.io/pause:3.10"
PROVISIONING_PREFIX = "egs-provisioning-"
MAX_PROVISIONING_NODES = 64
"""Nodes of each class the waiting replicas are placed on (what the node autoscaler may add)."""
MANAGED = {"app.kubernetes.io/managed-by": "egs"}
POOL_BACKENDS = ("balloon", "capacitybuffer", "karpenter-static")
REQUEST_NAME = "egs.io/request-name"


@dataclass(frozen=True)
class ClassSettings:
    """A GPU class the node autoscaler can add nodes of, and its warm pool."""

    gpus_per_node: int
    pool: str = "balloon"
    """balloon, capacitybuffer or karpenter-static."""
    policy: str = "static"
    """A warm-pool policy of `autoscaler.pool.POLICIES`."""
    static_nodes: int = 0
    """Idle nodes the `static` policy holds."""
    nodepool: str = ""
    """The Karpenter NodePool whose `replicas` the karpenter-static backend sets."""

    def __post_init__(self) -> None:
        if self.gpus_per_node < 1:
            raise ValueError(f"gpus_per_node must be >= 1, got {self.gpus_per_node}")
        if self.pool not in POOL_BACKENDS:
            raise ValueError(f"pool must be one of {', '.join(POOL_BACKENDS)}, got {self.pool!r}")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        if self.pool == "karpenter-static" and not self.nodepool:
            raise ValueError("the karpenter-static pool needs `nodepool`, the NodePool's name")

    @property
    def pool_settings(self) -> PoolSettings:
        return PoolSettings(gpus_per_node=self.gpus_per_node, static_nodes=self.static_nodes)


@dataclass(frozen=True)
class Settings:
    """What the decide step is configured with (`egs controller --config`)."""

    namespace: str = "egs-system"
    """Where the controller's own objects live: warm pools, the Lease."""
    headroom: float = 0.2
    """Capacity above demand, as a fraction (R = ceil(demand x (1 + headroom) / throughput))."""
    throughput_rps: Mapping[str, float] = field(default_factory=dict)
    """Requests per second one replica of a model serves, by model; an endpoint may override it."""
    default_throughput_rps: float = 1.0
    stale_after_s: float = 180.0
    """Metrics older than this are stale: they never scale anything down."""
    classes: Mapping[str, ClassSettings] = field(default_factory=dict)
    """GPU classes that can be provisioned, and their warm pools."""
    sharing: Mapping[str, str] = field(default_factory=dict)
    """GPU class -> sharing mechanism, as `egs plan --sharing`."""
    eta: EtaSettings = field(default_factory=EtaSettings)
    prometheus_url: str = ""
    """Where KEDA's Prometheus trigger queries (the controller's --prometheus)."""
    engine: str = "online"
    """The scheduler's engine (`scheduler.schedule.ENGINES`): online answers in milliseconds, which the
    loop and the API need; auto and exact search up to `time_limit_s` per call."""
    time_limit_s: float = 2.0


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

    @property
    def serves_now(self) -> bool:
        """Warm capacity takes every replica now (the API's 201)."""
        return self.waiting == 0 and self.unplaceable == 0 and self.placed > 0


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


@dataclass(frozen=True)
class Decision:
    objects: tuple[dict[str, Any], ...]
    """Every object the controller should hold, as server-side apply takes it."""
    statuses: Mapping[tuple[str, str], dict[str, Any]]
    """(namespace, name) -> the InferenceEndpoint's status."""
    endpoints: tuple[EndpointDecision, ...]
    pools: tuple[PoolDecision, ...]
    holds: tuple[str, ...]
    """Why parts of the last decision were kept (missing, stale or contradictory data)."""
    inventory: Inventory = field(default_factory=lambda: Inventory(()))
    """The GPU nodes the replicas were placed on (what `autoscaler.admission` takes free capacity from)."""
    placed: Plan = field(default_factory=Plan)
    """The replicas on nodes that exist now."""
    waiting: Plan = field(default_factory=Plan)
    """The replicas waiting for nodes to be provisioned, in the order their ETAs were given."""
    ahead: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """Per GPU class, the GPUs of each pod of other workloads that waits for one of its nodes: they
    queue ahead of the waiting replicas."""
    split_evenly: tuple[str, ...] = ()
    """Models whose demand was split evenly between endpoints that could not be told apart."""


def decide(obs: Observation, settings: Settings, registry: Registry, catalog: Catalog, now: float) -> Decision:
    """The objects and statuses the cluster should have, from what it has and what the metrics say."""
    holds: list[str] = []
    endpoints, failed = parse_endpoints(obs.endpoints, registry, now)
    workloads = _workloads(obs.owned)
    policy = SharingPolicy(dict(settings.sharing))
    try:
        inventory = without_foreign_pods(
            build_inventory([dict(n) for n in obs.nodes], catalog, sharing=policy), obs.pods
        )
    except InventoryError as e:
        # Nodes that cannot be read are contradictory data: keep everything as it is.
        return Decision((), {}, (), (), (f"nodes: {e}",))
    targets: dict[str, tuple[int, str | None]] = {}
    attribution = attribute(endpoints, obs.signals, obs.pod_signals, pods_by_endpoint(obs.pods))
    for ep in endpoints:
        current = workloads.get(ep.key, Workload())
        targets[ep.key] = replica_count(ep, current, obs.signals, settings, now, attribution.endpoints.get(ep.key))
        held = targets[ep.key][1]
        if held:
            holds.append(f"{ep.key}: {held}")
    requests = [ep.request(targets[ep.key][0]) for ep in endpoints]
    real = place_requests(requests, registry, inventory, settings) if requests else Plan()
    real, stuck = _unstuck(endpoints, real, stuck_replicas(obs.pods))
    # The GPUs a stuck replica was planned on are not offered again: kube-scheduler found them taken.
    inventory = inventory.allocated(a for moved in stuck.values() for p in moved for a in held_by(p))
    waiting_plan = place_waiting(endpoints, real, registry, catalog, settings, policy, stuck)
    ahead = {c: gpus for c, gpus in foreign_waiting(obs.pods, catalog).items() if c in settings.classes}
    objects: list[dict[str, Any]] = []
    decisions: list[EndpointDecision] = []
    statuses: dict[tuple[str, str], dict[str, Any]] = {}
    etas = _etas(endpoints, waiting_plan, ahead, registry, settings, obs.endpoints, now)
    previous = {endpoint_key(o): o.get("status") or {} for o in obs.endpoints}
    placed_by, waiting_by = _by_endpoint(real.placements), _by_endpoint(waiting_plan.placements)
    unplaced_by: dict[str, list[Any]] = {}
    for u in waiting_plan.unplaced:
        unplaced_by.setdefault(f"{u.namespace}/{u.request}", []).append(u)
    for ep, request in zip(endpoints, requests, strict=True):
        placed, waiting = placed_by.get(ep.key, []), waiting_by.get(ep.key, [])
        unplaced = unplaced_by.get(ep.key, [])
        current = workloads.get(ep.key, Workload())
        if placed or waiting:
            plan = Plan(placements=tuple(_renumbered(placed + waiting)))
            rendered = [
                _owned_by(_unpinned(o), ep) for o in manifests(plan, registry, catalog, [request], validated=False)
            ]
            objects += rendered + _scaled_objects(ep, rendered, settings)
        decision = endpoint_decision(ep, targets[ep.key], placed, waiting, unplaced, current, etas.get(ep.key))
        decisions.append(decision)
        statuses[(ep.namespace, ep.name)] = _status(decision, ep, previous.get(ep.key, {}), now)
    for decision, ep_raw in failed:
        decisions.append(decision)
        statuses[(decision.namespace, decision.name)] = _status(decision, None, ep_raw.get("status") or {}, now)
    pools = _pools(inventory, real, waiting_plan, ahead, endpoints, attribution, settings, obs, now)
    objects += _pool_objects(pools, settings, catalog)
    return Decision(
        tuple(objects),
        statuses,
        tuple(decisions),
        tuple(pools),
        tuple(holds),
        inventory,
        real,
        waiting_plan,
        ahead,
        attribution.split_evenly,
    )


# -- replicas -------------------------------------------------------------------------------------


def replica_count(
    ep: Endpoint,
    workload: Workload,
    signals: Mapping[str, ModelSignals] | None,
    settings: Settings,
    now: float,
    own: EndpointSignals | None = None,
) -> tuple[int, str | None]:
    """(replicas, why they were held or None). `own`: the endpoint's part of its model's signals
    (`autoscaler.attribution`); without it the endpoint has the model's."""
    current = workload.replicas
    bounds = ReplicaBounds(ep.min_replicas, ep.max_replicas)
    hold = max(current if current is not None else max(ep.min_replicas, 1), ep.min_replicas)
    hold = min(hold, ep.max_replicas)
    if signals is None:
        return hold, f"Prometheus unavailable: holding {hold} replicas"
    sig = signals.get(ep.model)
    saturation = own.gpu_saturation if own is not None else None
    running = current or 0
    if sig is None and saturation is not None and saturation >= GPU_SATURATION_HIGH and running:
        # No vLLM series, but its GPUs are saturated: the capacity view says one more (never fewer).
        return _one_more(max(hold, running), workload, ep), None
    if sig is None:
        seen = f" (its GPUs' saturation {saturation:.2f})" if saturation is not None else ""
        return hold, f"no metrics for {ep.model}{seen}: holding {hold} replicas"
    if now - sig.sampled_at > settings.stale_after_s:
        return hold, f"metrics for {ep.model} are {now - sig.sampled_at:.0f}s old: holding {hold} replicas"
    wrong = _contradiction(sig)
    if wrong:
        return hold, f"metrics for {ep.model} contradict each other ({wrong}): holding {hold} replicas"
    demand = own.demand_rps if own is not None and own.demand_rps is not None else sig.demand_rps
    waiting = own.waiting if own is not None else sig.waiting
    if sig.kv_cache_usage is None and waiting is None:
        # vLLM says nothing of its queue or KV cache: the GPUs' saturation is the capacity view.
        saturated = saturation is not None and saturation >= GPU_SATURATION_HIGH
    else:
        saturated = (sig.kv_cache_usage or 0.0) >= KV_CACHE_HIGH or (
            waiting is not None and running > 0 and waiting / running >= QUEUE_HIGH
        )
    throughput = declared_throughput(ep, settings)
    serving = min(workload.ready, running)
    if saturated and serving:
        # Saturated servers finish what they can: each serves demand / replicas, whatever was declared.
        throughput = min(throughput, max(demand / serving, 1e-3))
    target = replica_target(demand, throughput, settings.headroom, bounds)
    if saturated:
        target = _one_more(target, workload, ep)
    return target, None


def _one_more(target: int, workload: Workload, ep: Endpoint) -> int:
    """One more than runs, once the replicas added before serve: a model loads for minutes, and adding
    one a loop meanwhile would overshoot."""
    running = workload.replicas or 0
    starting = workload.ready < running
    return min(max(target, running if starting else running + 1), ep.max_replicas)


def declared_throughput(ep: Endpoint, settings: Settings) -> float:
    """Requests per second one replica serves: the endpoint's own figure, else the model's configured one."""
    return ep.throughput_per_replica or settings.throughput_rps.get(ep.model, settings.default_throughput_rps)


def _contradiction(sig: ModelSignals) -> str:
    if not math.isfinite(sig.demand_rps) or sig.demand_rps < 0:
        return f"demand {sig.demand_rps}"
    if sig.kv_cache_usage is not None and not 0 <= sig.kv_cache_usage <= 1:
        return f"KV-cache use {sig.kv_cache_usage} outside 0-1"
    if sig.waiting is not None and (sig.waiting < 0 or not math.isfinite(sig.waiting)):
        return f"queue {sig.waiting}"
    return ""


# -- placement ------------------------------------------------------------------------------------


def place_waiting(
    endpoints: Sequence[Endpoint],
    real: Plan,
    registry: Registry,
    catalog: Catalog,
    settings: Settings,
    policy: SharingPolicy,
    stuck: Mapping[str, Sequence[Placement]] | None = None,
) -> Plan:
    """The replicas that fit no node now (or were placed but are `stuck`), placed on the nodes each
    configured class would add."""
    short: list[Request] = []
    unplaced = Counter(f"{u.namespace}/{u.request}" for u in real.unplaced)
    for ep in endpoints:
        missing = unplaced[ep.key] + len((stuck or {}).get(ep.key, ()))
        if missing:
            short.append(ep.request(missing))
    if not short:
        return Plan()
    # Up to MAX_NODES_PER_REPLICA nodes a replica (a tensor-parallel LeaderWorkerSet group spans several).
    wanted = sum(r.replicas for r in short) * MAX_NODES_PER_REPLICA
    nodes = [
        _provisioning_node(catalog.get(name), cls.gpus_per_node, i)
        for name, cls in sorted(settings.classes.items())
        if name in catalog
        for i in range(min(wanted, MAX_PROVISIONING_NODES))
    ]
    inventory = build_inventory(nodes, catalog, sharing=policy)
    return place_requests(short, registry, inventory, settings)


def _unstuck(
    endpoints: Sequence[Endpoint], real: Plan, stuck: Mapping[tuple[str, str], int]
) -> tuple[Plan, dict[str, list[Placement]]]:
    """`real` without, per endpoint, as many of its placed replicas as it has pods kube-scheduler found
    no node for (a node the plan counts as free is not: another pod took it, or it is fragmented),
    and those replicas by endpoint: they wait for capacity like the replicas that fit nowhere."""
    if not stuck:
        return real, {}
    wanted = {ep.key: stuck.get((ep.namespace, dns_label(ep.name)), 0) for ep in endpoints}
    moved: dict[str, list[Placement]] = {}
    kept: list[Placement] = []
    for p in reversed(real.placements):
        key = f"{p.namespace}/{p.request}"
        if len(moved.get(key, ())) < wanted.get(key, 0):
            moved.setdefault(key, []).append(p)
        else:
            kept.append(p)
    return Plan(tuple(reversed(kept)), real.unplaced, real.occupied), moved


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


def _provisioning_node(gpu: GpuModel, gpus: int, index: int) -> dict[str, Any]:
    """A node of the class as GPU Feature Discovery (or AMD's labeller) would label it once it joins."""
    vendor = "amd.com" if gpu.vendor == "amd" else "nvidia.com"
    product = "amd.com/gpu.product-name" if gpu.vendor == "amd" else "nvidia.com/gpu.product"
    labels = {product: gpu.products[0], f"{vendor}/gpu.count": str(gpus)}
    return {
        "metadata": {"name": f"{PROVISIONING_PREFIX}{dns_label(gpu.name, 30)}-{index}", "labels": labels},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {f"{vendor}/gpu": str(gpus)}},
    }


def _by_endpoint(placements: Sequence[Placement]) -> dict[str, list[Placement]]:
    grouped: dict[str, list[Placement]] = {}
    for p in placements:
        grouped.setdefault(f"{p.namespace}/{p.request}", []).append(p)
    return grouped


def _renumbered(placements: Sequence[Placement]) -> list[Placement]:
    return [replace(p, replica=i) for i, p in enumerate(placements)]


def _etas(
    endpoints: Sequence[Endpoint],
    waiting: Plan,
    ahead: Mapping[str, tuple[int, ...]],
    registry: Registry,
    settings: Settings,
    raw_endpoints: Sequence[Mapping[str, Any]],
    now: float,
) -> dict[str, float]:
    """Per endpoint with waiting replicas: when the last of them serves; an earlier promise is kept."""
    promised = {endpoint_key(o): _promise(o) for o in raw_endpoints}
    etas: dict[str, float] = {}
    for gpu_class, queue in by_class(waiting.placements).items():
        times = class_etas(gpu_class, queue, registry, settings, now, ahead.get(gpu_class, ()))
        for p, t in zip(queue, times, strict=True):
            key = f"{p.namespace}/{p.request}"
            etas[key] = max(etas.get(key, 0.0), t)
    for ep in endpoints:
        kept = promised.get(ep.key)
        if ep.key in etas and kept is not None and kept > now:
            etas[ep.key] = kept
    return etas


def class_etas(
    gpu_class: str,
    queue: Sequence[Placement],
    registry: Registry,
    settings: Settings,
    now: float,
    ahead: Sequence[int] = (),
) -> list[float]:
    """When each replica of one class's queue serves, behind `ahead` (GPUs of replicas already waiting)."""
    loads = [0.0] * len(ahead) + [registry.get(p.model).variant(p.variant).load_seconds for p in queue]
    gpus = [*ahead, *(gpus_of(p) for p in queue)]
    times = queue_etas(now, gpus, ClassCapacity(settings.classes[gpu_class].gpus_per_node), loads, (), settings.eta)
    return times[len(ahead) :]


def gpus_of(p: Placement) -> int:
    return p.tp * len(p.workers)


def by_class(placements: Sequence[Placement]) -> dict[str, list[Placement]]:
    grouped: dict[str, list[Placement]] = {}
    for p in placements:
        grouped.setdefault(p.gpu_class, []).append(p)
    return grouped


# -- endpoints ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    replicas: int | None = None
    ready: int = 0


def _workloads(owned: Sequence[Mapping[str, Any]]) -> dict[str, Workload]:
    """Per endpoint key, the replicas its workloads have now and how many are ready."""
    found: dict[str, Workload] = {}
    for obj in owned:
        if obj.get("kind") not in ("Deployment", "LeaderWorkerSet"):
            continue
        meta = obj.get("metadata") or {}
        name = (meta.get("annotations") or {}).get(REQUEST_NAME)
        if not name:
            continue
        key = f"{meta.get('namespace', 'default')}/{name}"
        had = found.get(key, Workload())
        replicas = int((obj.get("spec") or {}).get("replicas", 0))
        ready = int((obj.get("status") or {}).get("readyReplicas", 0))
        found[key] = Workload((had.replicas or 0) + replicas, had.ready + ready)
    return found


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
    meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    namespace, name, model = meta.get("namespace", "default"), meta.get("name", ""), str(spec.get("model", ""))
    return EndpointDecision(namespace, name, model, 0, 0, 0, 0, None, None, None, "Failed", 0, "InvalidSpec", message)


def endpoint_decision(
    ep: Endpoint,
    target: tuple[int, str | None],
    placed: Sequence[Placement],
    waiting: Sequence[Placement],
    unplaced: Sequence[Any],
    current: Workload,
    eta: float | None,
) -> EndpointDecision:
    replicas, held = target
    shape = next(iter([*placed, *waiting]), None)
    ready = min(current.ready, replicas)
    if unplaced and not placed and not waiting:
        phase, reason = "Failed", "Unschedulable"
    elif waiting:
        phase, reason = "Provisioning", "WaitingForCapacity"
    elif replicas > 0 and ready >= replicas:
        phase, reason = "Ready", "AllReplicasReady"
    elif unplaced or (current.ready and ready < replicas):
        phase, reason = "Degraded", "Unschedulable" if unplaced else "ReplicasNotReady"
    else:
        phase, reason = "Pending", "ReplicasStarting"
    message = unplaced[0].reason if unplaced else _message(phase, len(placed), len(waiting), ready, replicas)
    return EndpointDecision(
        namespace=ep.namespace,
        name=ep.name,
        model=ep.model,
        replicas=replicas,
        placed=len(placed),
        waiting=len(waiting),
        unplaceable=len(unplaced),
        variant=shape.variant if shape else None,
        gpu_class=shape.gpu_class if shape else None,
        eta=eta,
        phase=phase,
        ready_replicas=ready,
        reason=reason,
        message=message,
        held=held,
    )


def _message(phase: str, placed: int, waiting: int, ready: int, replicas: int) -> str:
    if phase == "Provisioning":
        return f"{waiting} of {replicas} replicas wait for a GPU node to be provisioned"
    return f"{ready} of {replicas} replicas ready"


def _status(d: EndpointDecision, ep: Endpoint | None, previous: Mapping[str, Any], now: float) -> dict[str, Any]:
    ready = "True" if d.phase == "Ready" else "False"
    condition = {"type": "Ready", "status": ready, "reason": d.reason, "message": d.message}
    before = next((c for c in previous.get("conditions") or () if c.get("type") == "Ready"), None)
    unchanged = before is not None and before.get("status") == ready and before.get("reason") == d.reason
    condition["lastTransitionTime"] = before["lastTransitionTime"] if unchanged and before else rfc3339(now)
    status: dict[str, Any] = {
        "phase": d.phase,
        "readyReplicas": d.ready_replicas,
        "desiredReplicas": d.replicas,
        "conditions": [condition],
    }
    if ep is not None:
        status["observedGeneration"] = ep.generation
        status["url"] = f"http://{dns_label(ep.name)}.{ep.namespace}.svc:{PORT}"
    if d.variant:
        status["variant"] = d.variant
    if d.gpu_class:
        status["gpuClass"] = d.gpu_class
    if d.eta is not None:
        status["estimatedReadyTime"] = rfc3339(d.eta)
    return status


def _owned_by(obj: dict[str, Any], ep: Endpoint) -> dict[str, Any]:
    """`obj` garbage-collected with the endpoint (when the endpoint's uid is known)."""
    if ep.uid:
        obj["metadata"]["ownerReferences"] = [
            {
                "apiVersion": ie.API_VERSION,
                "kind": ie.KIND,
                "name": ep.name,
                "uid": ep.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return obj


def _scaled_objects(ep: Endpoint, rendered: list[dict[str, Any]], settings: Settings) -> list[dict[str, Any]]:
    """With `scaling: keda` or `hpa` someone else sets the replica count: the workloads leave it out
    (so server-side apply leaves it to them), and for keda a ScaledObject per workload scales on the
    recording rules as the controller would: ceil(demand x (1 + headroom) / throughput), or queue / 5."""
    if ep.scaling == "egs":
        return []
    scaled = []
    for obj in rendered:
        if obj["kind"] not in ("Deployment", "LeaderWorkerSet"):
            continue
        obj["spec"].pop("replicas", None)
        if ep.scaling != "keda":
            continue
        selector = f'{{model_name="{ep.model}"}}'
        per_replica = declared_throughput(ep, settings) / (1 + settings.headroom)
        triggers = [
            ("sum(model:requests:rate5m" + selector + ")", f"{per_replica:.3f}"),
            ("sum(model:requests_waiting:sum" + selector + ")", f"{QUEUE_HIGH:g}"),
        ]
        meta = obj["metadata"]
        target = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"]}
        scaled.append(
            {
                "apiVersion": "keda.sh/v1alpha1",
                "kind": "ScaledObject",
                "metadata": {k: meta[k] for k in ("name", "namespace", "labels", "ownerReferences") if k in meta},
                "spec": {
                    "scaleTargetRef": target,
                    "minReplicaCount": ep.min_replicas,
                    "maxReplicaCount": ep.max_replicas,
                    "triggers": [
                        {"type": "prometheus", "metadata": {"serverAddress": settings.prometheus_url,
                                                            "query": query, "threshold": threshold}}
                        for query, threshold in triggers
                    ],
                },
            }
        )  # fmt: skip
    return scaled


def _unpinned(obj: dict[str, Any]) -> dict[str, Any]:
    """The workload without its `kubernetes.io/hostname` pin; the GPU product selector stays."""
    templates = []
    spec = obj.get("spec", {})
    if "template" in spec:
        templates.append(spec["template"])
    for role in ("leaderTemplate", "workerTemplate"):
        if role in spec.get("leaderWorkerTemplate", {}):
            templates.append(spec["leaderWorkerTemplate"][role])
    for template in templates:
        required = template["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        for term in required["nodeSelectorTerms"]:
            term["matchExpressions"] = [e for e in term["matchExpressions"] if e["key"] != "kubernetes.io/hostname"]
    return obj


# -- warm pools -----------------------------------------------------------------------------------


def _pools(
    inventory: Inventory,
    real: Plan,
    waiting: Plan,
    ahead: Mapping[str, tuple[int, ...]],
    endpoints: Sequence[Endpoint],
    attribution: Attribution,
    settings: Settings,
    obs: Observation,
    now: float,
) -> list[PoolDecision]:
    previous = _pool_replicas(obs.owned, settings)
    pools = []
    for name, cls in sorted(settings.classes.items()):
        nodes = [n for n in inventory.schedulable() if n.model.name == name]
        busy = {p.node for p in real.placements if p.gpu_class == name}
        idle = tuple(n.node for n in nodes if n.node not in busy and _idle_gpus(n) == len(n.gpus))
        used = sum(gpus_of(p) for p in real.placements if p.gpu_class == name)
        queued = sum(gpus_of(p) for p in waiting.placements if p.gpu_class == name) + sum(ahead.get(name, ()))
        free_on_busy = sum(_idle_gpus(n) for n in nodes if n.node in busy)
        free_on_busy -= sum(gpus_of(p) for p in real.placements if p.gpu_class == name)
        placements = [*real.placements, *waiting.placements]
        need = _need_series(name, placements, endpoints, attribution, settings, obs, now)
        need.values[-1] = math.nan if obs.signals is None else float(used + queued)
        observation = PoolObservation(
            need_gpus=need,
            used_gpus=used,
            free_gpus_on_busy_nodes=max(0, free_on_busy),
            idle_nodes=len(idle),
            forecast=_forecast(need, settings, now),
        )
        target = hold_on_missing_data(POLICIES[cls.policy], observation, now, cls.pool_settings, previous.get(name, 0))
        pools.append(PoolDecision(name, len(idle), target, queued, idle, observation.forecast))
    return pools


def _need_series(
    gpu_class: str,
    placements: Sequence[Placement],
    endpoints: Sequence[Endpoint],
    attribution: Attribution,
    settings: Settings,
    obs: Observation,
    now: float,
) -> DemandSeries:
    """GPUs the class's endpoints needed per past sample: each endpoint's replica target for its part of
    its model's demand then (its part now), times its GPUs per replica; the last sample is now."""
    gpus_per_replica = {f"{p.namespace}/{p.request}": gpus_of(p) for p in placements if p.gpu_class == gpu_class}
    series = [obs.history[ep.model] for ep in endpoints if ep.key in gpus_per_replica and ep.model in obs.history]
    if not series:
        return DemandSeries(now, 60.0, np.array([math.nan]))
    start, step = series[0].start_s, series[0].step_s
    length = math.floor((now - start) / step + 1e-9) + 1
    need = np.zeros(max(length, 1))
    share = {k: v.share for k, v in attribution.endpoints.items()}
    for ep in endpoints:
        history = obs.history.get(ep.model)
        if ep.key not in gpus_per_replica or history is None or (history.start_s, history.step_s) != (start, step):
            continue
        bounds = ReplicaBounds(ep.min_replicas, ep.max_replicas)
        throughput = declared_throughput(ep, settings)
        for i, demand in enumerate(history.values[: len(need)]):
            if math.isnan(demand) or math.isnan(need[i]):
                need[i] = math.nan
                continue
            replicas = replica_target(demand * share[ep.key], throughput, settings.headroom, bounds)
            need[i] += replicas * gpus_per_replica[ep.key]
    return DemandSeries(start, step, need)


def _forecast(need: DemandSeries, settings: Settings, now: float) -> Forecast | None:
    """The class's need over the provisioning lead time, once there are at least two known samples."""
    if np.count_nonzero(~np.isnan(need.values)) < 2:
        return None
    return forecast_seasonal(need, now, ForecastSettings(lead_s=settings.eta.prior_delay_s[1]))


def _idle_gpus(node: NodeGpus) -> int:
    """GPUs no running replica holds (balloon pods are not replicas: real ones preempt them)."""
    return sum(1 for g in node.gpus if g.holders == 0)


def _pool_replicas(owned: Sequence[Mapping[str, Any]], settings: Settings) -> dict[str, int]:
    """The warm-pool size each class's object holds now (the previous target, rebuilt from the cluster)."""
    sizes: dict[str, int] = {}
    for obj in owned:
        meta = obj.get("metadata") or {}
        gpu_class = (meta.get("annotations") or {}).get("egs.io/warm-pool")
        if gpu_class:
            sizes[gpu_class] = int((obj.get("spec") or {}).get("replicas", 0))
    return sizes


def _pool_objects(pools: Sequence[PoolDecision], settings: Settings, catalog: Catalog) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    if any(settings.classes[p.gpu_class].pool == "balloon" for p in pools):
        objects.append(
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": {"name": PRIORITY_CLASS, "labels": dict(MANAGED)},
                "value": PRIORITY,
                "preemptionPolicy": "Never",
                "globalDefault": False,
                "description": "EGS warm-pool placeholders: any real replica preempts them.",
            }
        )
    for pool in pools:
        cls = settings.classes[pool.gpu_class]
        gpu = catalog.get(pool.gpu_class)
        if cls.pool == "karpenter-static":
            objects.append(_nodepool(cls, pool))
            continue
        template = _balloon_template(gpu, cls)
        meta = _pool_meta(pool, settings)
        if cls.pool == "balloon":
            deployment = {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": meta,
                "spec": {
                    "replicas": pool.target,
                    "selector": {"matchLabels": template["metadata"]["labels"]},
                    "template": template,
                },
            }
            objects.append(deployment)
        else:
            pod_template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": meta, "template": template}
            objects.append(pod_template)
            objects.append(
                {
                    "apiVersion": "autoscaling.x-k8s.io/v1alpha1",
                    "kind": "CapacityBuffer",
                    "metadata": meta,
                    "spec": {"podTemplateRef": {"name": meta["name"]}, "replicas": pool.target},
                }
            )
    return objects


def _pool_meta(pool: PoolDecision, settings: Settings) -> dict[str, Any]:
    return {
        "name": f"egs-warm-{dns_label(pool.gpu_class, 40)}",
        "namespace": settings.namespace,
        "labels": {**MANAGED, "egs.io/component": "warm-pool"},
        "annotations": {"egs.io/warm-pool": pool.gpu_class},
    }


def _nodepool(cls: ClassSettings, pool: PoolDecision) -> dict[str, Any]:
    """Only the replicas of the user's static NodePool: server-side apply leaves its other fields alone."""
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {
            "name": cls.nodepool,
            "labels": dict(MANAGED),
            "annotations": {"egs.io/warm-pool": pool.gpu_class},
        },
        "spec": {"replicas": pool.target},
    }


def _balloon_template(gpu: GpuModel, cls: ClassSettings) -> dict[str, Any]:
    """A pod that holds one whole node of the class idle, until a real replica preempts it."""
    resource = "amd.com/gpu" if gpu.vendor == "amd" else "nvidia.com/gpu"
    product = "amd.com/gpu.product-name" if gpu.vendor == "amd" else "nvidia.com/gpu.product"
    labels = {**MANAGED, "egs.io/warm-pool": dns_label(gpu.name)}
    gpus = {resource: str(cls.gpus_per_node)}
    expression = {"key": product, "operator": "In", "values": list(gpu.products)}
    return {
        "metadata": {"labels": labels},
        "spec": {
            "priorityClassName": PRIORITY_CLASS,
            "terminationGracePeriodSeconds": 0,
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [expression]}]
                    }
                }
            },
            "tolerations": [{"key": resource, "operator": "Exists", "effect": "NoSchedule"}],
            "containers": [
                {"name": "placeholder", "image": POOL_IMAGE, "resources": {"requests": gpus, "limits": gpus}}
            ],
        },
    }


# -- small helpers --------------------------------------------------------------------------------


def endpoint_key(obj: Mapping[str, Any]) -> str:
    """`namespace/name` of a raw object."""
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"


def _promise(obj: Mapping[str, Any]) -> float | None:
    status = obj.get("status") or {}
    text = status.get("estimatedReadyTime")
    if not text or status.get("phase") != "Provisioning":
        return None
    try:
        return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def rfc3339(t: float) -> str:
    """Unix time as the RFC 3339 the status and the API write (UTC, whole seconds)."""
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
