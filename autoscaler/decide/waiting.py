"""Waiting and ETAs: replicas that fit no node now, placed on nodes the node autoscaler would add.

Also the replicas kube-scheduler found no node for (stuck), when each waiting replica serves
(`queue_etas`, behind other workloads' pods that wait for the same class), keeping a promise made, and
when an endpoint whose pods were all bound serves (`loaded_by`: the evidence a promise moves earlier on).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from autoscaler.decide.placement import by_class, gpus_of, place_requests
from autoscaler.decide.settings import Settings
from autoscaler.decide.state import Promise, pinned
from autoscaler.endpoint import Endpoint
from autoscaler.eta import ClassCapacity, queue_etas, ready_law
from autoscaler.orders import OrderBook
from autoscaler.pods import endpoint_of, selected_class, unbound
from scheduler.catalog import Catalog, GpuModel
from scheduler.fleet import MAX_NODES_PER_REPLICA
from scheduler.inventory import RDMA_LABELS, SharingPolicy, build_inventory
from scheduler.manifests import dns_label
from scheduler.plan import Placement, Plan, Request
from scheduler.registry import Registry

PROVISIONING_PREFIX = "egs-provisioning-"
MAX_PROVISIONING_NODES = 64
"""Nodes of each class the waiting replicas are placed on (what the node autoscaler may add)."""
MEMORY_SHARED = frozenset({"kai", "hami"})
"""Sharing by GPU memory, binpacked: KAI Scheduler's default, and HAMi's for the pods EGS writes."""


def place_waiting(
    endpoints: Sequence[Endpoint],
    real: Plan,
    registry: Registry,
    catalog: Catalog,
    settings: Settings,
    policy: SharingPolicy,
    stuck: Mapping[str, Sequence[Placement]] | None = None,
    pins: Mapping[str, Promise] | None = None,
) -> Plan:
    """The replicas that fit no node now (or were placed but are `stuck`), placed on the nodes each
    configured class would add; an endpoint in `pins` waits for the class and variant promised."""
    short: list[Request] = []
    unplaced = Counter(f"{u.namespace}/{u.request}" for u in real.unplaced)
    for ep in endpoints:
        missing = unplaced[ep.key] + len((stuck or {}).get(ep.key, ()))
        if missing:
            short.append(pinned(ep.request(missing), (pins or {}).get(ep.key)))
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


def unstuck(
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


def refused_placements(
    moved: Mapping[str, Sequence[Placement]], pods: Iterable[Mapping[str, Any]], catalog: Catalog
) -> list[Placement]:
    """Of the replicas `unstuck` moved, those on GPUs kube-scheduler may have found taken: in a class one
    of the endpoint's unbound pods selects (or one that selects no one class). A replica the plan put
    in another class was never tried there: withholding its GPUs hid a free MI300X from the API, whose
    next POST was answered 202 on a fresh order while that GPU served another endpoint at once."""
    asked: dict[tuple[str, str], set[str | None]] = {}
    for pod in pods:
        serves = endpoint_of(pod)
        if serves is not None and unbound(pod):
            gpu = selected_class(pod, catalog)
            asked.setdefault(serves, set()).add(gpu.name if gpu else None)
    return [
        p
        for placements in moved.values()
        for p in placements
        if {p.gpu_class, None} & asked.get((p.namespace, dns_label(p.request)), {None})
    ]


def _provisioning_node(gpu: GpuModel, gpus: int, index: int) -> dict[str, Any]:
    """A node of the class as GPU Feature Discovery (or AMD's labeller) would label it once it joins;
    a class with NVLink/xGMI is taken to come, as cloud HGX/OAM servers do, with an RDMA network
    (InfiniBand, RoCE or EFA), so that a replica over several nodes may wait for them."""
    vendor = "amd.com" if gpu.vendor == "amd" else "nvidia.com"
    product = "amd.com/gpu.product-name" if gpu.vendor == "amd" else "nvidia.com/gpu.product"
    labels = {product: gpu.products[0], f"{vendor}/gpu.count": str(gpus)}
    if gpu.peer_links:
        labels[RDMA_LABELS[0]] = "true"
    return {
        "metadata": {"name": f"{PROVISIONING_PREFIX}{dns_label(gpu.name, 30)}-{index}", "labels": labels},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {f"{vendor}/gpu": str(gpus)}},
    }


def endpoint_etas(
    waiting: Plan,
    ahead: Mapping[str, tuple[float, ...]],
    orders: OrderBook,
    registry: Registry,
    catalog: Catalog,
    settings: Settings,
    now: float,
) -> dict[str, float]:
    """Per endpoint with waiting replicas: when the last of them serves (`state.keep` keeps a promise)."""
    etas: dict[str, float] = {}
    for gpu_class, queue in by_class(waiting.placements).items():
        times = class_etas(gpu_class, queue, registry, catalog, settings, now, ahead.get(gpu_class, ()), orders)
        for p, t in zip(queue, times, strict=True):
            key = f"{p.namespace}/{p.request}"
            etas[key] = max(etas.get(key, 0.0), t)
    return etas


def class_etas(
    gpu_class: str,
    queue: Sequence[Placement],
    registry: Registry,
    catalog: Catalog,
    settings: Settings,
    now: float,
    ahead: Sequence[float],
    orders: OrderBook,
) -> list[float]:
    """When each replica of one class's queue serves, behind `ahead` (`queued_gpus` of replicas already
    waiting), on the nodes that registered first, then those the class's `orders` in flight bring, then on
    nodes ordered anew, each ready after a delay learnt from the delays `orders` observed once there are
    enough of them, weighed with the orders that lapsed unready (as the simulator's cancelled ones).

    New orders count from the next decide step (`eta.step_s` on): a node is ordered once the workload
    is written and its pod found no node, not at the answer (the churn benchmark's 202s were late by
    that reaction, 20-40 s, when counted from the answer)."""
    gpus, capacity, loads = _class_queue(gpu_class, queue, registry, catalog, settings, ahead, orders)
    delays, lapsed = orders.delays.get(gpu_class, ()), orders.lapsed.get(gpu_class, ())
    times = queue_etas(now + settings.eta.step_s, gpus, capacity, loads, delays, settings.eta, lapsed)
    return times[len(ahead) :]


def class_law(
    gpu_class: str,
    queue: Sequence[Placement],
    registry: Registry,
    catalog: Catalog,
    settings: Settings,
    now: float,
    ahead: Sequence[float],
    orders: OrderBook,
    resolution_s: float,
) -> tuple[float, np.ndarray]:
    """When the last of one class's queue serves, as a law under the configured prior (`eta.ready_law`), on
    the queue and the orders `class_etas` counts."""
    gpus, capacity, loads = _class_queue(gpu_class, queue, registry, catalog, settings, ahead, orders)
    return ready_law(now + settings.eta.step_s, gpus, capacity, loads, settings.eta, resolution_s)


def _class_queue(
    gpu_class: str,
    queue: Sequence[Placement],
    registry: Registry,
    catalog: Catalog,
    settings: Settings,
    ahead: Sequence[float],
    orders: OrderBook,
) -> tuple[list[float], ClassCapacity, list[float]]:
    """The GPUs and load time of each replica of `queue` behind `ahead`, and the class's nodes to come."""
    loads = [0.0] * len(ahead) + [registry.get(p.model).variant(p.variant).load_seconds for p in queue]
    gpus = [*ahead, *(queued_gpus(p, catalog) for p in queue)]
    capacity = ClassCapacity(
        settings.classes[gpu_class].gpus_per_node,
        (),
        orders.orders.get(gpu_class, ()),
        orders.registered.get(gpu_class, ()),
        orders.leads.get(gpu_class, ()),
    )
    return gpus, capacity, loads


def queued_gpus(p: Placement, catalog: Catalog) -> float:
    """What a waiting replica takes of the nodes to come, for `queue_etas`: its whole GPUs, or the share
    of one GPU's memory where it shares that GPU by memory (KAI, HAMi: binpacked)."""
    if p.sharing in MEMORY_SHARED and gpus_of(p) == 1:
        return min(1.0, p.vram_mib_per_gpu / catalog.get(p.gpu_class).vram_mib)
    return float(gpus_of(p))


def loaded_by(
    endpoints: Sequence[Endpoint],
    placed: Mapping[str, Sequence[Placement]],
    pods: Iterable[Mapping[str, Any]],
    registry: Registry,
    margin_s: float,
    now: float,
) -> dict[str, float]:
    """Per endpoint with placed replicas and a pod bound to a node for each, none unbound: when its status
    says it serves, now + their load time + `margin_s`: two loop periods (`Observation.loop_period_s`,
    measured) and the retry waits of one loop (`Settings.write_retry_delays_s`, each at most the last).
    The pods were bound by now and the kubelet reports them Ready once loaded; the status says so at the
    controller's next loop, or, should that loop's reads or writes fail, at the one after, and a loop whose
    writes fail retries them before it ends. A period is the interval and the loop's own time: counted as
    `eta.step_s` alone, seed 341's churn run had 4 of 35 such promises shown Ready 5-21 s late, around the
    API server's bad minute; without the retries, seed 7's team-b/late-1 was shown Ready 2 s late, its pod
    Ready as a loop retried a failing apply for 3.25 s after the promise was made (65 s of its clock at x20,
    then uncompressed). The node came: what is left is the load, which the promise may move earlier to."""
    bound: dict[tuple[str, str], list[bool]] = {}
    for pod in pods:
        serves = endpoint_of(pod)
        if serves is not None:
            bound.setdefault(serves, []).append(bool((pod.get("spec") or {}).get("nodeName")))
    etas: dict[str, float] = {}
    for ep in endpoints:
        mine, replicas = bound.get((ep.namespace, dns_label(ep.name)), []), placed.get(ep.key, ())
        if replicas and len(mine) >= len(replicas) and all(mine):
            load = max(registry.get(p.model).variant(p.variant).load_seconds for p in replicas)
            etas[ep.key] = now + load + margin_s
    return etas
