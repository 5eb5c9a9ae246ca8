"""Warm pools: per configured GPU class, the idle nodes its policy holds, as its backend's object.

A balloon Deployment at PriorityClass -10, a Cluster Autoscaler CapacityBuffer, or a Karpenter static
NodePool's replicas; the policies of `autoscaler.pool` never release on missing data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from autoscaler.attribution import Attribution
from autoscaler.decide.decision import Observation, PoolDecision
from autoscaler.decide.placement import gpus_of
from autoscaler.decide.settings import ClassSettings, Settings
from autoscaler.decide.targets import declared_throughput
from autoscaler.decide.workloads import MANAGED
from autoscaler.endpoint import Endpoint
from autoscaler.forecast import DemandSeries, Forecast, ForecastSettings, forecast_seasonal
from autoscaler.pods import WARM_POOL
from autoscaler.pool import POLICIES, PoolObservation, hold_on_missing_data
from autoscaler.replicas import ReplicaBounds, replica_target
from scheduler.catalog import Catalog, GpuModel
from scheduler.inventory import Inventory, NodeGpus
from scheduler.manifests import dns_label
from scheduler.plan import Placement, Plan

PRIORITY_CLASS = "egs-warm-pool"
PRIORITY = -10
"""Below every default priority (0), so any real replica preempts a balloon pod."""
POOL_IMAGE = "registry.k8s.io/pause:3.10"


def pool_decisions(
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
        gpu_class = (meta.get("annotations") or {}).get(WARM_POOL)
        if gpu_class:
            sizes[gpu_class] = int((obj.get("spec") or {}).get("replicas", 0))
    return sizes


def pool_objects(pools: Sequence[PoolDecision], settings: Settings, catalog: Catalog) -> list[dict[str, Any]]:
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
        "annotations": {WARM_POOL: pool.gpu_class},
    }


def _nodepool(cls: ClassSettings, pool: PoolDecision) -> dict[str, Any]:
    """Only the replicas of the user's static NodePool: server-side apply leaves its other fields alone."""
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {
            "name": cls.nodepool,
            "labels": dict(MANAGED),
            "annotations": {WARM_POOL: pool.gpu_class},
        },
        "spec": {"replicas": pool.target},
    }


def _balloon_template(gpu: GpuModel, cls: ClassSettings) -> dict[str, Any]:
    """A pod that holds one whole node of the class idle, until a real replica preempts it."""
    resource = "amd.com/gpu" if gpu.vendor == "amd" else "nvidia.com/gpu"
    product = "amd.com/gpu.product-name" if gpu.vendor == "amd" else "nvidia.com/gpu.product"
    labels = {**MANAGED, WARM_POOL: dns_label(gpu.name)}
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
