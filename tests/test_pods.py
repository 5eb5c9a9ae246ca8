"""GPU pods as the decide step reads them (`autoscaler.pods`), as data.

Covers: the GPUs of pods EGS does not own come off the inventory (whole GPUs, MIG instances,
time-slicing replicas; never more than is free; EGS's own pods, pods not bound to a node, finished
pods and unknown nodes left alone); EGS replicas kube-scheduler found no node for; other
workloads' unschedulable pods per GPU class, from their node selector or affinity; which endpoint a
serving pod belongs to.
"""

from __future__ import annotations

from typing import Any

from autoscaler.pods import (
    asks_for_gpu,
    endpoint_of,
    foreign_waiting,
    pods_by_endpoint,
    stuck_replicas,
    without_foreign_pods,
)
from scheduler.inventory import SharingPolicy, build_inventory
from tests.test_decide import CATALOG, h100, serving_pod


def pod(
    name: str,
    resources: dict[str, str],
    node: str | None = "gpu-0",
    phase: str = "Running",
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if node is None:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
    return {
        "metadata": {"name": name, "namespace": "batch", "labels": labels or {}},
        "spec": {
            **({"nodeName": node} if node else {}),
            "containers": [{"name": "c", "resources": {"limits": resources}}],
            **spec,
        },
        "status": status,
    }


def a100_mig(name: str) -> dict[str, Any]:
    labels = {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", "nvidia.com/mig.strategy": "mixed"}
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "allocatable": {"nvidia.com/mig-1g.10gb": "7", "nvidia.com/gpu": "1"},
        },
    }


def timesliced(name: str) -> dict[str, Any]:
    node = h100(name)
    node["metadata"]["labels"] |= {"nvidia.com/gpu.replicas": "4"}
    node["status"]["allocatable"] = {"nvidia.com/gpu": "32"}
    return node


def idle(inventory: Any, node: str) -> int:
    return sum(1 for g in inventory.node(node).gpus if g.holders == 0)


def test_other_workloads_gpus_come_off_the_inventory() -> None:
    inventory = build_inventory([h100("gpu-0"), h100("gpu-1")], CATALOG)
    pods = [
        pod("train", {"nvidia.com/gpu": "3"}),
        pod("starting", {"nvidia.com/gpu": "2"}, phase="Pending"),  # bound, its containers starting
        pod("greedy", {"nvidia.com/gpu": "8"}, node="gpu-1"),
        pod("greedier", {"nvidia.com/gpu": "1"}, node="gpu-1"),  # gpu-1 is full already: takes nothing
        pod("done", {"nvidia.com/gpu": "8"}, phase="Succeeded"),
        pod("waits", {"nvidia.com/gpu": "8"}, node=None, phase="Pending"),
        pod("elsewhere", {"nvidia.com/gpu": "8"}, node="cpu-0"),
        serving_pod("ours", "chat"),  # EGS's replicas are placed again by the decide step itself
    ]
    after = without_foreign_pods(inventory, pods)
    assert (idle(after, "gpu-0"), idle(after, "gpu-1")) == (3, 0)
    assert idle(inventory, "gpu-0") == 8  # the inventory given is not changed


def test_mig_instances_and_time_slicing_replicas() -> None:
    inventory = build_inventory([a100_mig("mig-0"), timesliced("ts-0")], CATALOG)
    pods = [
        pod("small", {"nvidia.com/mig-1g.10gb": "3"}, node="mig-0"),
        pod("whole", {"nvidia.com/gpu": "1"}, node="mig-0"),
        pod("slices", {"nvidia.com/gpu": "5"}, node="ts-0"),
    ]
    after = without_foreign_pods(inventory, pods)
    mig = after.node("mig-0")
    assert [(s.profile.name, s.free) for s in mig.mig] == [("1g.10gb", 4)]
    assert idle(after, "mig-0") == 0
    holders = [g.holders for g in after.node("ts-0").gpus]
    assert holders == [4, 1, 0, 0, 0, 0, 0, 0]  # five of the device plugin's replicas, four to a GPU


def test_stuck_replicas_are_counted_per_endpoint() -> None:
    pods = [
        serving_pod("chat-1", "chat", node=None),
        serving_pod("chat-2", "chat", node=None),
        serving_pod("chat-3", "chat"),
        serving_pod("big-w", "big", node=None, component="worker"),  # a group's worker: its leader counts
        pod("waits", {"nvidia.com/gpu": "8"}, node=None, phase="Pending"),
    ]
    assert stuck_replicas(pods) == {("team-a", "chat"): 2}
    assert pods_by_endpoint(pods) == {("team-a", "chat"): ["chat-1", "chat-2", "chat-3"]}
    assert endpoint_of(pods[0]) == ("team-a", "chat") and endpoint_of(pods[4]) is None


def test_other_workloads_waiting_for_a_class() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In", "values": ["NVIDIA-L4"]}]}
                ]
            }
        }
    }
    selector = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    pods = [
        pod("h", {"nvidia.com/gpu": "4"}, node=None, phase="Pending", nodeSelector=selector),
        pod("l", {"nvidia.com/gpu": "1"}, node=None, phase="Pending", affinity=affinity),
        pod("anywhere", {"nvidia.com/gpu": "2"}, node=None, phase="Pending"),  # names no class: not counted
        pod("bound", {"nvidia.com/gpu": "2"}, phase="Pending", nodeSelector=selector),  # has its node
    ]
    assert foreign_waiting(pods, CATALOG) == {"H100-80GB": (4,), "L4": (1,)}


def test_quantities_in_canonical_forms_are_read() -> None:
    """The API server may write a request back as `1e0` or `8k`-style canonical quantities; `int()`
    dropped them silently (issue 16), leaving their GPUs counted free."""
    inventory = build_inventory([h100("gpu-0")], CATALOG)
    pods = [pod("train", {"nvidia.com/gpu": "3e0"}), pod("x", {"nvidia.com/gpu": "1"})]
    after = without_foreign_pods(inventory, pods)
    assert idle(after, "gpu-0") == 4


def test_kai_and_hami_pods_hold_vram() -> None:
    """KAI Scheduler's pods ask for no GPU resource, only a `gpu-memory` (MiB) or `gpu-fraction`
    annotation; HAMi's ask `nvidia.com/gpumem` (here in a canonical form). Each holds its VRAM."""
    kai = pod("kai", {}, schedulerName="kai-scheduler")
    kai["metadata"]["annotations"] = {"gpu-memory": "40960", "gpu-fraction-num-devices": "2"}
    half = pod("half", {})
    half["metadata"]["annotations"] = {"gpu-fraction": "0.5"}
    hami = pod("hami", {"nvidia.com/gpu": "1", "nvidia.com/gpumem": "40k"})  # 40,000 MiB as the API server writes it
    inventory = build_inventory([h100("gpu-0")], CATALOG, sharing=SharingPolicy({"H100-80GB": "kai"}))
    gpus = without_foreign_pods(inventory, [kai, half, hami]).node("gpu-0").gpus
    half_gpu = CATALOG.get("H100-80GB").vram_mib // 2  # 40,779 MiB: no room left beside KAI's on GPUs 0-1
    assert [g.used_mib for g in gpus[:4]] == [40960 + 40000, 40960, half_gpu, 0]
    assert [g.holders for g in gpus[:4]] == [2, 1, 1, 0]
    assert asks_for_gpu(kai) and asks_for_gpu(half) and not asks_for_gpu(pod("cpu", {"cpu": "1"}))
    # On a class that hands out whole GPUs, a GPU any such pod holds part of takes no replica.
    exclusive = without_foreign_pods(build_inventory([h100("gpu-0")], CATALOG), [kai])
    assert idle(exclusive, "gpu-0") == 6


def test_a_waiting_kai_pod_counts_its_devices() -> None:
    waits = pod("kai", {}, node=None, phase="Pending", nodeSelector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"})
    waits["metadata"]["annotations"] = {"gpu-memory": "1000", "gpu-fraction-num-devices": "3"}
    assert foreign_waiting([waits], CATALOG) == {"H100-80GB": (3,)}
