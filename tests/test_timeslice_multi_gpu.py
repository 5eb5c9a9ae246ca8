"""A pod of several GPUs (a tensor-parallel replica) never lands on a time-sliced node.

It asks for `tp` of the NVIDIA device plugin's `nvidia.com/gpu` replicas, which time-slicing
may hand out as slices of one GPU, or of GPUs other pods use (and which the plugin refuses outright
under `failRequestsGreaterThanOne`). Churn seed 2200: a 4-GPU replica on a T4 node sliced two ways,
its re-made pod bound on another node's free slices, and the ReplicaSet deleted it when decide put
the replica elsewhere. Fleets stated as data, every engine and the controller's decide.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from typing import Any, cast

import pytest

from autoscaler.admission import admit, capacity
from autoscaler.decide import ClassSettings, Observation, decide
from autoscaler.signals import ModelSignals
from benchmarks.churnkit.play import Play, Pod
from localplay.kube_standin import KubeCluster
from scheduler.inventory import RDMA_LABELS, SharingPolicy, build_inventory
from scheduler.manifests import manifests
from scheduler.plan import Request
from scheduler.schedule import schedule
from scheduler.synthetic import gpu_node
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint

LARGE = "qwen2.5-14b-instruct"
"""At quality 0.98 its smallest T4 shape is int8 over 4 GPUs."""


def sliced(count: int) -> list[dict[str, Any]]:
    """`count` 4-GPU T4 nodes whose GPUs the device plugin time-slices two ways."""
    return [gpu_node(f"t4-ts-{i}", CATALOG.get("T4"), 4, replicas=2) for i in range(count)]


def large(replicas: int) -> Request:
    return Request("chat", LARGE, replicas, min_quality=0.98, gpu_classes=("T4",))


@pytest.mark.parametrize("engine", ["greedy", "online", "exact"])
def test_a_multi_gpu_replica_goes_to_whole_gpus_not_to_time_sliced_ones(engine: str) -> None:
    fleet = build_inventory([*sliced(2), gpu_node("t4-0", CATALOG.get("T4"), 4)], CATALOG)
    plan = schedule([large(2)], REGISTRY, fleet, engine=engine, time_limit_s=5).plan
    assert [(p.tp, p.sharing, p.node) for p in plan.placements] == [(4, "exclusive", "t4-0")]
    assert len(plan.unplaced) == 1


@pytest.mark.parametrize("engine", ["greedy", "online", "exact"])
@pytest.mark.parametrize("configured", [None, "exclusive"])
def test_where_only_time_sliced_nodes_exist_a_multi_gpu_replica_waits_and_says_why(
    engine: str, configured: str | None
) -> None:
    """Also where the class is configured `exclusive` but its device plugin advertises two replicas a GPU."""
    policy = SharingPolicy({"T4": configured} if configured else {})
    fleet = build_inventory(sliced(2), CATALOG, sharing=policy)
    plan = schedule([large(1)], REGISTRY, fleet, engine=engine, time_limit_s=5).plan
    assert not plan.placements
    assert "time-sliced" in plan.unplaced[0].reason


def test_a_single_gpu_replica_still_shares_a_time_sliced_gpu() -> None:
    small = Request("chat", "llama-3.1-8b-instruct", 4, gpu_classes=("T4",), concurrency=4)
    plan = schedule([small], REGISTRY, build_inventory(sliced(1), CATALOG)).plan
    assert plan.placements and all(p.tp == 1 and p.sharing == "timeslice" for p in plan.placements)


@pytest.mark.parametrize("engine", ["greedy", "online", "exact"])
def test_a_replica_over_several_one_gpu_pods_may_take_time_sliced_nodes_as_its_manifest_allows(engine: str) -> None:
    """Pipeline parallel, tp 1 over nodes of one GPU: each pod asks for one `nvidia.com/gpu`, which the plugin
    hands out per pod, so the planner takes the sliced nodes its manifest's `-SHARED` product accepts."""
    nodes = [gpu_node(f"t4-ts-{i}", CATALOG.get("T4"), 1, replicas=2) for i in range(6)]
    for node in nodes:
        node["metadata"]["labels"][RDMA_LABELS[0]] = "true"
    plan = schedule([large(1)], REGISTRY, build_inventory(nodes, CATALOG), engine=engine, time_limit_s=5).plan
    (placement,) = plan.placements
    assert (placement.tp, len(placement.workers), plan.unplaced) == (1, 4, ())
    (lws,) = [o for o in manifests(plan, REGISTRY, CATALOG, [large(1)]) if o["kind"] == "LeaderWorkerSet"]
    pod = lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    products = [e["values"] for t in terms for e in t["matchExpressions"] if e["key"] == "nvidia.com/gpu.product"]
    assert products == [["Tesla-T4", "Tesla-T4-SHARED"]]


def test_decide_plans_no_multi_gpu_replica_on_a_time_sliced_node() -> None:
    """The controller's decide, for an endpoint pinned to a class whose nodes, those there and those it
    would add, are time-sliced: nothing is placed or waits there, no workload asks for slices, and the
    endpoint says why (Unschedulable); with an exclusive node of the class, the replica goes there."""
    pinned = endpoint(model=LARGE, qualityFloor=0.98, gpuClasses=["T4"], replicas={"min": 1, "max": 1})
    signals = {LARGE: ModelSignals(LARGE, 0.5, sampled_at=NOW - 10)}
    t4_sliced = replace(SETTINGS, classes={"T4": ClassSettings(gpus_per_node=4)}, sharing={"T4": "timeslice"})
    only_sliced = decide(Observation(sliced(2), [pinned], signals=signals), t4_sliced, REGISTRY, CATALOG, NOW)
    (chat,) = only_sliced.endpoints
    assert (chat.placed, chat.waiting, chat.reason) == (0, 0, "Unschedulable")
    assert "time-sliced" in chat.message
    assert not [o for o in only_sliced.objects if o["metadata"].get("namespace") == "team-a"]
    nodes = [*sliced(2), gpu_node("t4-0", CATALOG.get("T4"), 4)]
    with_whole = decide(Observation(nodes, [pinned], signals=signals), SETTINGS, REGISTRY, CATALOG, NOW)
    (chat,) = with_whole.endpoints
    assert chat.placed == 1
    (deployment,) = [
        o for o in with_whole.objects if o["kind"] == "Deployment" and o["metadata"]["namespace"] == "team-a"
    ]
    affinity = deployment["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    terms = affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert json.loads(deployment["metadata"]["annotations"]["egs.io/placement"]) == [
        {"replica": 0, "workers": [["t4-0", [0, 1, 2, 3]]]}
    ]
    products = [e["values"] for t in terms for e in t["matchExpressions"] if e["key"] == "nvidia.com/gpu.product"]
    assert products == [["Tesla-T4"]]  # not Tesla-T4-SHARED: a pod re-made in its class keeps off the sliced nodes


def test_the_api_refuses_an_endpoint_that_only_time_sliced_nodes_could_take_and_says_why() -> None:
    """Admission, as the API answers a POST: Failed (a 422 naming the reason), not a 201 on slices."""
    pinned = endpoint(model=LARGE, qualityFloor=0.98, gpuClasses=["T4"], replicas={"min": 1, "max": 1})
    t4_sliced = replace(SETTINGS, classes={"T4": ClassSettings(gpus_per_node=4)}, sharing={"T4": "timeslice"})
    base = capacity(decide(Observation(sliced(2), [], signals={}), t4_sliced, REGISTRY, CATALOG, NOW), CATALOG)
    admitted = admit(base, pinned, t4_sliced, REGISTRY, CATALOG, NOW)
    assert (admitted.decision.phase, admitted.placed, admitted.waiting) == ("Failed", (), ())
    assert "time-sliced" in admitted.decision.message


def test_churns_play_does_not_bind_a_pod_of_several_gpus_on_a_time_sliced_node() -> None:
    """As the device plugin under `failRequestsGreaterThanOne: true` refuses it; a pod of one GPU takes a slice."""
    play = Play(cast(KubeCluster, None), CATALOG, REGISTRY, random.Random(0), 20.0)

    def pod(name: str, gpus: int) -> Pod:
        resources = {"nvidia.com/gpu": str(gpus)}
        template = {"spec": {"containers": [{"name": "vllm", "resources": {"requests": resources}}]}}
        made = Pod("team", f"{name}-0", name, f"team/{name}", template, 1.0, "T4")
        play.pods[made.key] = made
        return made

    large, small = pod("large", 4), pod("small", 1)
    play._schedule(0.0, sliced(1))
    assert (large.node, small.node) == ("", "t4-ts-0")
    play._schedule(1.0, [*sliced(1), gpu_node("t4-0", CATALOG.get("T4"), 4)])
    assert large.node == "t4-0"
