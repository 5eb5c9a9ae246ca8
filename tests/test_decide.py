"""The decide step as data: nodes, endpoints, owned objects and metrics in, intended objects out.

Covers: warm capacity (placed now) against provisioning (waiting, with an ETA from the core),
scaling on demand, KV cache and queue, the min/max bounds, holding on missing, stale and
contradictory metrics, an unplaceable endpoint's reason, invalid endpoints, promises kept across a
restart, warm pools per backend, ready status. Everything at one fixed `now`.
"""

from __future__ import annotations

import datetime
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from autoscaler.decide import (
    PRIORITY,
    PRIORITY_CLASS,
    ClassSettings,
    Decision,
    EndpointDecision,
    Observation,
    Settings,
    decide,
)
from autoscaler.eta import EtaSettings
from autoscaler.kubetime import deadline
from autoscaler.signals import History, ModelSignals, PodSignals
from scheduler.catalog import Catalog
from scheduler.manifests import validate
from scheduler.registry import Registry
from tests.conftest import REPO

NOW = 1_800_000_000.0
MODEL = "llama-3.1-8b-instruct"
CATALOG = Catalog.load()
REGISTRY = Registry.load(REPO / "examples" / "models.yaml", CATALOG)
SETTINGS = Settings(
    classes={"H100-80GB": ClassSettings(gpus_per_node=8, static_nodes=1)},
    throughput_rps={MODEL: 2.0},
    eta=EtaSettings(prior_delay_s=(300.0, 600.0)),
)


def h100(name: str, ready: bool = True) -> dict[str, Any]:
    labels = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.count": "8"}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "allocatable": {"nvidia.com/gpu": "8"},
        },
    }


def endpoint(name: str = "chat", lo: int = 1, hi: int = 8, status: dict[str, Any] | None = None, **spec: Any) -> Any:
    obj: dict[str, Any] = {
        "apiVersion": "egs.dev/v1alpha1",
        "kind": "InferenceEndpoint",
        "metadata": {"name": name, "namespace": "team-a", "uid": f"uid-{name}", "generation": 3},
        "spec": {"model": MODEL, "qualityFloor": 0.99, "replicas": {"min": lo, "max": hi}, **spec},
    }
    if status:
        obj["status"] = status
    return obj


SHAPE = {
    "egs.io/model": MODEL,
    "egs.io/variant": "bf16",
    "egs.io/precision": "bf16",
    "egs.io/gpu-class": "H100-80GB",
    "egs.io/sharing": "exclusive",
    "egs.io/tensor-parallel": "1",
    "egs.io/nodes-per-replica": "1",
    "egs.io/vram-mib-per-gpu": "34003",
}
"""What `scheduler.manifests` records on the workload of one bf16 replica per H100 (the endpoints' choice)."""


def workload(name: str, replicas: int, ready: int = 0) -> dict[str, Any]:
    """The endpoint's Deployment as the controller applied it, with `ready` of its replicas ready."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"{name}-bf16-h100-80gb",
            "namespace": "team-a",
            "annotations": {"egs.io/request-name": name, **SHAPE},
        },
        "spec": {"replicas": replicas},
        "status": {"readyReplicas": ready},
    }


def training(node: str, gpus: int) -> dict[str, Any]:
    """A running pod of another workload that holds `gpus` GPUs of `node`."""
    container = {"name": "c", "image": "trainer", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}
    spec = {"nodeName": node, "containers": [container]}
    return {"metadata": {"name": f"train-{node}", "namespace": "ml"}, "spec": spec, "status": {"phase": "Running"}}


def serving_pod(name: str, endpoint: str, node: str | None = "gpu-0", component: str = "server") -> dict[str, Any]:
    """A pod of an EGS endpoint's workload: bound to `node`, or one kube-scheduler found no node for."""
    labels = {
        "app.kubernetes.io/managed-by": "egs",
        "egs.io/request": endpoint,
        "egs.io/workload": f"{endpoint}-bf16-h100-80gb",
        "app.kubernetes.io/component": component,
    }
    container = {"name": "vllm", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
    spec: dict[str, Any] = {"containers": [container], **({"nodeName": node} if node else {})}
    status: dict[str, Any] = {"phase": "Running" if node else "Pending"}
    if node is None:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
    return {"metadata": {"name": name, "namespace": "team-a", "labels": labels}, "spec": spec, "status": status}


def signals(demand: float = 1.0, age_s: float = 10.0, **kw: Any) -> dict[str, ModelSignals]:
    return {MODEL: ModelSignals(MODEL, demand, sampled_at=NOW - age_s, **kw)}


def run(obs: Observation, settings: Settings = SETTINGS) -> tuple[Decision, EndpointDecision]:
    decision = decide(obs, settings, REGISTRY, CATALOG, NOW)
    return decision, decision.endpoints[0]


def kinds(decision: Decision) -> list[tuple[str, str]]:
    return [(o["kind"], o["metadata"]["name"]) for o in decision.objects]


def test_warm_capacity_serves_the_endpoint_now() -> None:
    decision, chat = run(Observation([h100("gpu-0")], [endpoint()], signals=signals()))
    assert (chat.placed, chat.waiting, chat.eta, chat.serves_now) == (1, 0, None, True)
    assert chat.gpu_class == "H100-80GB"
    deployment = next(
        o for o in decision.objects if o["kind"] == "Deployment" and o["metadata"]["namespace"] == "team-a"
    )
    owner = deployment["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("InferenceEndpoint", "uid-chat", True)
    terms = deployment["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    keys = [e["key"] for t in terms["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            for e in t["matchExpressions"]]  # fmt: skip
    assert keys == ["nvidia.com/gpu.product"]  # no pin to a node: kube-scheduler picks one of the class
    assert ("Service", "chat") in kinds(decision)
    status = decision.statuses[("team-a", "chat")]
    assert status["url"] == "http://chat.team-a.svc:8000"
    assert status["observedGeneration"] == 3
    assert "estimatedReadyTime" not in status


def test_without_a_node_the_replica_waits_with_an_eta() -> None:
    decision, chat = run(Observation([], [endpoint()], signals=signals()))
    assert (chat.placed, chat.waiting, chat.phase, chat.gpu_class) == (0, 1, "Provisioning", "H100-80GB")
    load = REGISTRY.get(MODEL).variant(chat.variant or "").load_seconds
    # the node is ordered at the next step (60 s), then the prior 300-600 s, promised at its 0.95
    # quantile and rounded up to the 60 s step, then the load
    assert chat.eta == NOW + 60 + 600 + load
    status = decision.statuses[("team-a", "chat")]
    assert status["estimatedReadyTime"] == deadline(NOW + 660 + load)
    assert status["conditions"][0]["reason"] == "WaitingForCapacity"
    assert any(k == "Deployment" and n.startswith("chat-") for k, n in kinds(decision))


def test_an_earlier_promise_is_kept_across_a_restart() -> None:
    promised = datetime.datetime.fromtimestamp(NOW + 200, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    ep = endpoint(status={"phase": "Provisioning", "estimatedReadyTime": promised})
    _, chat = run(Observation([], [ep], signals=signals()))
    assert chat.eta == NOW + 200


@pytest.mark.parametrize(
    ("sig", "current", "replicas"),
    [
        (signals(demand=10.0), None, 6),  # ceil(10 x 1.2 / 2)
        (signals(demand=100.0), None, 8),  # clamped to max
        (signals(demand=0.0), None, 1),  # never below min
        (signals(demand=1.0, kv_cache_usage=0.85), 2, 3),  # KV cache >= 0.80: one more
        (signals(demand=1.0, waiting=12, kv_cache_usage=0.1), 2, 3),  # 6 queued per replica >= 5
        (signals(demand=0.1, waiting=12, kv_cache_usage=0.1), -2, 2),  # saturated, one still starting: hold
        (signals(demand=1.0, waiting=8, kv_cache_usage=0.5), 2, 1),  # 4 per replica: demand rules
    ],
)
def test_replicas_follow_demand_queue_and_kv_cache(
    sig: dict[str, ModelSignals], current: int | None, replicas: int
) -> None:
    # a negative count: that many replicas, one of them not ready yet; else all ready
    owned = [workload("chat", abs(current), ready=abs(current) - (current < 0))] if current else []
    _, chat = run(Observation([h100(f"gpu-{i}") for i in range(2)], [endpoint()], owned, sig))
    assert (chat.replicas, chat.held) == (replicas, None)


@pytest.mark.parametrize(
    ("sig", "why"),
    [
        (None, "Prometheus unavailable"),
        ({}, "no metrics for"),
        (signals(demand=0.0, age_s=600), "last sampled 2027-01-15T07:50:00Z"),
        (signals(demand=0.0, kv_cache_usage=1.7), "contradict"),
        (signals(demand=float("nan")), "contradict"),
    ],
)
def test_missing_stale_or_contradictory_metrics_hold_the_replicas(sig: Any, why: str) -> None:
    decision, chat = run(Observation([h100("gpu-0")], [endpoint()], [workload("chat", 4)], sig))
    assert chat.replicas == 4
    assert chat.held is not None and why in chat.held
    assert [str(h) for h in decision.holds] == [f"team-a/chat: {chat.held}"]


def test_a_replica_that_fits_no_class_says_why() -> None:
    ep = endpoint(gpuClasses=["L4"], contextTokens=131072, concurrency=64)
    decision, chat = run(Observation([h100("gpu-0")], [ep], signals=signals()))
    assert (chat.phase, chat.reason, chat.placed, chat.waiting) == ("Failed", "Unschedulable", 0, 0)
    assert "GiB" in chat.message
    assert decision.statuses[("team-a", "chat")]["conditions"][0]["message"] == chat.message
    assert not any(o["metadata"].get("namespace") == "team-a" for o in decision.objects)


def test_an_endpoint_that_cannot_be_read_fails_naming_its_field() -> None:
    # The API server checked the schema when the object was written; what decide cannot read fails.
    bad = endpoint(qualityFloor="high")
    unknown = endpoint("other", model="no-such-model")
    decision = decide(Observation([], [bad, unknown], signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    reasons = {(d.name, d.phase, d.reason) for d in decision.endpoints}
    assert reasons == {("chat", "Failed", "InvalidSpec"), ("other", "Failed", "InvalidSpec")}
    assert decision.statuses[("team-a", "chat")]["conditions"][0]["message"].startswith("spec.qualityFloor: ")
    assert "no-such-model" in decision.statuses[("team-a", "other")]["conditions"][0]["message"]


def test_ready_replicas_make_the_endpoint_ready() -> None:
    owned = [workload("chat", 1, ready=1)]
    decision, chat = run(Observation([h100("gpu-0")], [endpoint()], owned, signals()))
    assert (chat.phase, chat.ready_replicas) == ("Ready", 1)
    assert decision.statuses[("team-a", "chat")]["conditions"][0]["status"] == "True"


def test_the_balloon_pool_is_a_low_priority_placeholder_deployment() -> None:
    decision, _ = run(Observation([], [endpoint()], signals=signals()))
    priority = next(o for o in decision.objects if o["kind"] == "PriorityClass")
    assert (priority["metadata"]["name"], priority["value"]) == (PRIORITY_CLASS, PRIORITY)
    balloon = next(o for o in decision.objects if o["metadata"].get("namespace") == "egs-system")
    assert balloon["spec"]["replicas"] == 1
    pod = balloon["spec"]["template"]["spec"]
    assert pod["priorityClassName"] == PRIORITY_CLASS
    assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "8"}
    assert decision.pools[0].target == 1


@pytest.mark.parametrize(
    ("backend", "kind"),
    [("capacitybuffer", "CapacityBuffer"), ("karpenter-static", "NodePool")],
)
def test_other_pool_backends(backend: str, kind: str) -> None:
    cls = ClassSettings(gpus_per_node=8, pool=backend, static_nodes=2, nodepool="h100-static")
    settings = Settings(classes={"H100-80GB": cls}, throughput_rps={MODEL: 2.0})
    decision, _ = run(Observation([], [endpoint()], signals=signals()), settings)
    pool = next(o for o in decision.objects if o["kind"] == kind)
    assert pool["spec"]["replicas"] == 2
    assert not any(o["kind"] == "PriorityClass" for o in decision.objects)


def test_the_pool_is_not_released_while_data_is_missing() -> None:
    settings = Settings(classes={"H100-80GB": ClassSettings(gpus_per_node=8, static_nodes=0)})
    held = workload("x", 3)
    held["metadata"] = {
        "name": "egs-warm-h100",
        "namespace": "egs-system",
        "annotations": {"egs.io/warm-pool": "H100-80GB"},
    }
    decision, _ = run(Observation([], [endpoint()], [held], None), settings)
    assert decision.pools[0].target == 3
    decision, _ = run(Observation([], [endpoint()], [held], signals()), settings)
    assert decision.pools[0].target == 0


def test_every_object_passes_its_kubernetes_schema() -> None:
    objects: list[dict[str, Any]] = []
    for backend in ("balloon", "capacitybuffer"):
        cls = ClassSettings(gpus_per_node=8, pool=backend, static_nodes=1)
        settings = Settings(classes={"H100-80GB": cls}, throughput_rps={MODEL: 2.0})
        obs = Observation([h100("gpu-0")], [endpoint(), endpoint("big", hi=20)], signals=signals(demand=40))
        objects += decide(obs, settings, REGISTRY, CATALOG, NOW).objects
    checked = [o for o in objects if o["kind"] in ("Deployment", "Service", "PriorityClass", "PodTemplate")]
    assert len(checked) >= 8
    for obj in checked:
        validate(obj)


def test_the_same_input_gives_the_same_objects() -> None:
    obs = Observation([h100("gpu-0"), h100("gpu-1")], [endpoint(), endpoint("docs")], signals=signals(demand=9))
    assert decide(obs, SETTINGS, REGISTRY, CATALOG, NOW) == decide(obs, SETTINGS, REGISTRY, CATALOG, NOW)


def test_keda_scaling_writes_a_scaled_object_and_leaves_replicas_to_it() -> None:
    settings = Settings(classes=SETTINGS.classes, throughput_rps={MODEL: 2.4}, prometheus_url="http://prom:9090")
    decision, chat = run(Observation([h100("gpu-0")], [endpoint(scaling="keda")], signals=signals(demand=3)), settings)
    assert chat.replicas == 2 and chat.placed == 2  # placement and pools still follow the demand
    workload = next(o for o in decision.objects if o["kind"] == "Deployment" and o["metadata"]["namespace"] == "team-a")
    assert workload["spec"]["replicas"] == 2  # created new with its plan: KEDA's once it writes the field
    scaled = next(o for o in decision.objects if o["kind"] == "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                                "name": workload["metadata"]["name"]}  # fmt: skip
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 8)
    demand, queue = scaled["spec"]["triggers"]
    assert demand["metadata"] == {
        "serverAddress": "http://prom:9090",
        "query": f'sum(model:requests:rate5m{{model_name="{MODEL}"}})',
        "threshold": "2.000",  # 2.4 req/s per replica / (1 + 0.2 headroom)
    }
    assert queue["metadata"]["threshold"] == "5"
    assert scaled["metadata"]["ownerReferences"][0]["uid"] == "uid-chat"


def test_hpa_scaling_leaves_replicas_to_the_users_autoscaler() -> None:
    decision, _ = run(Observation([h100("gpu-0")], [endpoint(scaling="hpa")], signals=signals()))
    workload = next(o for o in decision.objects if o["kind"] == "Deployment" and o["metadata"]["namespace"] == "team-a")
    assert workload["spec"]["replicas"] == 1  # created new with its plan
    assert not any(o["kind"] == "ScaledObject" for o in decision.objects)
    # The HPA's scale write owns the field: the workload leaves it out from then on.
    scaled = {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
    owned = [{**workload, "metadata": {**workload["metadata"], "managedFields": [scaled]}}]
    again, _ = run(Observation([h100("gpu-0")], [endpoint(scaling="hpa")], owned, signals=signals()))
    workload = next(o for o in again.objects if o["kind"] == "Deployment" and o["metadata"]["namespace"] == "team-a")
    assert "replicas" not in workload["spec"]


def test_saturated_servers_correct_the_declared_throughput() -> None:
    # 2 replicas saturated (KV 0.9) at 2 req/s total serve 1 req/s each, not the declared 2:
    # ceil(2 x 1.2 / 1) = 3 replicas rather than ceil(2 x 1.2 / 2) = 2.
    sig = signals(demand=2.0, kv_cache_usage=0.9)
    _, chat = run(Observation([h100("gpu-0")], [endpoint()], [workload("chat", 2, ready=2)], sig))
    assert chat.replicas == 3
    sig = signals(demand=6.0, kv_cache_usage=0.9)
    _, chat = run(Observation([h100("gpu-0")], [endpoint()], [workload("chat", 2, ready=2)], sig))
    assert chat.replicas == 4  # 3 req/s each measured, above the declared 2: ceil(6 x 1.2 / 2) stands


def test_the_egs_pool_policy_reads_the_demand_history_as_gpus() -> None:
    # 20 req/s until an hour ago (8 replicas, the max), 2 req/s now (2 replicas): the EGS policy holds the
    # capacity the drop freed for its hold window (2 h), one 8-GPU node here; without history it holds none.
    settings = Settings(
        classes={"H100-80GB": ClassSettings(gpus_per_node=8, policy="egs")}, throughput_rps={MODEL: 2.0}
    )
    start = NOW - 4 * 3600
    values = tuple(20.0 if t < NOW - 3600 else 2.0 for t in np.arange(start, NOW + 1, 300.0))
    history = {MODEL: History(start, 300.0, values)}
    obs = Observation([], [endpoint()], signals=signals(demand=2.0), history=history)
    decision, chat = run(obs, settings)
    assert chat.waiting == 2
    assert decision.pools[0].target == 1
    decision, _ = run(Observation([], [endpoint()], signals=signals(demand=2.0)), settings)
    assert decision.pools[0].target == 0


def test_endpoints_of_one_name_in_two_namespaces_are_two_endpoints() -> None:
    unfit = endpoint(gpuClasses=["L4"], contextTokens=131072, concurrency=64)  # team-a/chat: fits no class
    fits = endpoint(lo=2, hi=2)
    fits["metadata"] |= {"namespace": "team-b", "uid": "uid-b"}
    decision = decide(Observation([h100("gpu-0")], [unfit, fits], signals={}), SETTINGS, REGISTRY, CATALOG, NOW)
    by_ns = {d.namespace: d for d in decision.endpoints}
    assert (by_ns["team-a"].phase, by_ns["team-a"].placed, by_ns["team-a"].waiting) == ("Failed", 0, 0)
    assert (by_ns["team-b"].phase, by_ns["team-b"].placed, by_ns["team-b"].waiting) == ("Pending", 2, 0)
    assert by_ns["team-b"].unplaceable == 0 and "GiB" in by_ns["team-a"].message
    workloads = [
        o for o in decision.objects if o["kind"] == "Deployment" and o["metadata"]["namespace"] != "egs-system"
    ]
    assert [(o["metadata"]["namespace"], o["spec"]["replicas"]) for o in workloads] == [("team-b", 2)]
    assert decision.statuses[("team-b", "chat")]["conditions"][0]["reason"] == "ReplicasStarting"


def test_a_replica_spanning_two_nodes_waits_for_two() -> None:
    big = endpoint(model="llama-3.1-405b-instruct", qualityFloor=1.0, lo=1, hi=1)
    decision, chat = run(Observation([], [big], signals={}))
    assert (chat.phase, chat.waiting, chat.unplaceable) == ("Provisioning", 1, 0)
    assert decision.waiting.placements[0].multi_node
    assert ("LeaderWorkerSet", "chat-bf16-h100-80gb") in kinds(decision)


def test_gpus_other_workloads_hold_are_not_planned_onto() -> None:
    ep = endpoint(lo=2, hi=2)
    _, free = run(Observation([h100("gpu-0")], [ep], signals={}))
    _, partly = run(Observation([h100("gpu-0")], [ep], signals={}, pods=[training("gpu-0", 7)]))
    decision, full = run(Observation([h100("gpu-0")], [ep], signals={}, pods=[training("gpu-0", 8)]))
    assert [(d.placed, d.waiting) for d in (free, partly, full)] == [(2, 0), (1, 1), (0, 2)]
    assert full.phase == "Provisioning"
    assert decision.pools[0].idle_nodes == 0  # a node another workload uses is not an idle warm node


def test_a_warm_node_whose_placeholder_runs_is_idle_and_placed_on() -> None:
    # The balloon Deployment's pod, bound on the warm node as kube-scheduler binds it: a replica preempts it.
    first, _ = run(Observation([h100("gpu-x")], [endpoint()], signals=signals()))
    (balloon,) = [o for o in first.objects if o["kind"] == "Deployment" and o["metadata"]["namespace"] == "egs-system"]
    template = balloon["spec"]["template"]
    pod = {
        "metadata": {"name": "egs-warm-0", "namespace": "egs-system", "labels": template["metadata"]["labels"]},
        "spec": {**template["spec"], "nodeName": "gpu-0"},
        "status": {"phase": "Running"},
    }
    pool_only = decide(
        Observation([h100("gpu-0")], [], signals=signals(), pods=[pod]), SETTINGS, REGISTRY, CATALOG, NOW
    )
    assert pool_only.pools[0].idle_nodes == 1
    _, chat = run(Observation([h100("gpu-0")], [endpoint()], signals=signals(), pods=[pod]))
    assert (chat.placed, chat.waiting, chat.serves_now) == (1, 0, True)


def test_a_replica_whose_pod_finds_no_node_waits_with_an_eta() -> None:
    owned = [workload("chat", 2, ready=1)]
    pods = [serving_pod("chat-0", "chat"), serving_pod("chat-1", "chat", node=None)]
    sig = signals(demand=3.0, kv_cache_usage=0.1, waiting=0)
    decision, chat = run(Observation([h100("gpu-0")], [endpoint()], owned, sig, pods=pods))
    assert (chat.replicas, chat.placed, chat.waiting, chat.phase) == (2, 1, 1, "Provisioning")
    assert chat.eta is not None and chat.eta > NOW
    deployment = next(
        o for o in decision.objects if o["kind"] == "Deployment" and o["metadata"]["namespace"] == "team-a"
    )
    assert deployment["spec"]["replicas"] == 2  # the count is unchanged: the replica waits, it is not dropped
    assert decision.pools[0].waiting_gpus == 1
    # The GPU it was planned on is not offered to a new endpoint: kube-scheduler found it taken.
    assert sum(1 for g in decision.inventory.node("gpu-0").gpus if g.holders == 0) == 7


def test_other_workloads_pending_pods_queue_ahead_and_grow_the_pools_need() -> None:
    settings = replace(SETTINGS, eta=EtaSettings(prior_delay_s=(0.0, 3600.0)))
    container = {"name": "c", "resources": {"limits": {"nvidia.com/gpu": "8"}}}
    waits = {
        "metadata": {"name": "train", "namespace": "ml"},
        "spec": {"containers": [container], "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}],
        },
    }
    alone, chat_alone = run(Observation([], [endpoint()], signals=signals()), settings)
    behind, chat_behind = run(Observation([], [endpoint()], signals=signals(), pods=[waits]), settings)
    assert chat_alone.eta is not None and chat_behind.eta is not None
    assert chat_behind.eta > chat_alone.eta  # the pod takes the first node ordered; the replica needs a second
    assert (alone.pools[0].waiting_gpus, behind.pools[0].waiting_gpus) == (1, 9)
    assert behind.ahead == {"H100-80GB": (8,)}


@pytest.mark.parametrize(
    ("saturation", "sig", "replicas", "held"),
    [
        (0.97, {}, 3, None),  # no vLLM series, its GPUs saturated: one more
        (0.5, {}, 2, "GPUs' saturation under 0.95"),  # not saturated: held, never fewer
        (0.97, signals(demand=1.0), 3, None),  # vLLM reports demand but no queue or KV cache
        (0.97, signals(demand=1.0, kv_cache_usage=0.2, waiting=0), 1, None),  # vLLM's own view wins
    ],
)
def test_gpu_saturation_is_the_capacity_view_without_vllms_queue_and_kv_cache(
    saturation: float, sig: dict[str, ModelSignals], replicas: int, held: str | None
) -> None:
    pods = [serving_pod("chat-0", "chat"), serving_pod("chat-1", "chat")]
    per_pod = {("team-a", p["metadata"]["name"]): PodSignals(gpu_saturation=saturation) for p in pods}
    obs = Observation(
        [h100("gpu-0")], [endpoint()], [workload("chat", 2, ready=2)], sig, pods=pods, pod_signals=per_pod
    )
    _, chat = run(obs)
    assert chat.replicas == replicas
    assert chat.held == held if held is None else (chat.held is not None and held in chat.held)


def test_demand_is_told_apart_by_the_pods_that_serve_each_endpoint() -> None:
    eps = [endpoint("chat", hi=8), endpoint("docs", hi=8), endpoint("fresh", hi=8)]
    pods = [serving_pod("chat-0", "chat"), serving_pod("chat-1", "chat"), serving_pod("docs-0", "docs")]
    per_pod = {
        ("team-a", "chat-0"): PodSignals(demand_rps=4.5),
        ("team-a", "chat-1"): PodSignals(demand_rps=4.5),
        ("team-a", "docs-0"): PodSignals(demand_rps=0.5),
    }
    sig = signals(demand=10.0)
    told = decide(
        Observation([h100("gpu-0")], eps, signals=sig, pods=pods, pod_signals=per_pod), SETTINGS, REGISTRY, CATALOG, NOW
    )
    even = decide(Observation([h100("gpu-0")], eps, signals=sig, pods=pods), SETTINGS, REGISTRY, CATALOG, NOW)
    replicas = {d.name: d.replicas for d in told.endpoints}
    # chat ceil(9 x 1.2 / 2), docs ceil(0.5 x 1.2 / 2), fresh (no pods yet) what no pod accounts for: 0.5
    assert replicas == {"chat": 6, "docs": 1, "fresh": 1}
    assert told.split_evenly == ()
    assert {d.name: d.replicas for d in even.endpoints} == {"chat": 2, "docs": 2, "fresh": 2}  # 10 / 3 each
    assert even.split_evenly == (MODEL,)
