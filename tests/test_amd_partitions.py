"""AMD MI300X/MI325X partitions, from the node labels to the manifests.

The AMD node labeller writes `amd.com/compute-memory-partition` (e.g. `cpx_nps4`) and
`amd.com/gpu.vram`; the device plugin advertises each partition as one `amd.com/gpu` (naming
strategy `single`) or as `amd.com/<mode>` (`mixed`). Placement treats partitions as MIG instances;
the manifests request the resource the node advertises, and a 201 names the node and the mode, never a
partition (the kubelet hands a pod any free one of a mode, all alike).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from autoscaler.adapters.api import Services, create_app
from autoscaler.adapters.kubernetes import Cluster
from autoscaler.decide import PROMISE_ANNOTATION
from localplay.kube_standin import KubeCluster
from scheduler.catalog import Catalog
from scheduler.inventory import build_inventory
from scheduler.manifests import manifests
from scheduler.plan import Request
from scheduler.registry import Registry
from scheduler.schedule import schedule
from scheduler.synthetic import gpu_node
from tests.test_decide import NOW, SETTINGS
from tests.test_endpoint_api import body, post
from tests.test_endpoint_api import kube as kube  # the API's fixture: kmock with alice allowed in team-a
from tests.test_placement import check_plan

REPO = Path(__file__).resolve().parent.parent
CATALOG = Catalog.load()
REGISTRY = Registry.load(REPO / "examples" / "models.yaml", CATALOG)
MI300X = CATALOG.get("MI300X")


@pytest.mark.parametrize(
    ("mode", "naming", "partitions", "resource"),
    [
        ("cpx_nps4", "single", 8, "amd.com/gpu"),
        ("cpx_nps1", "mixed", 8, "amd.com/cpx_nps1"),
        ("dpx_nps1", "single", 2, "amd.com/gpu"),
        ("qpx_nps4", "mixed", 4, "amd.com/qpx_nps4"),
    ],
)
def test_partitions_are_read_from_the_labeller_and_the_device_plugin(
    mode: str, naming: str, partitions: int, resource: str
) -> None:
    node = build_inventory([gpu_node("mi", MI300X, 8, partition=mode, amd_naming=naming)], CATALOG).node("mi")
    assert (node.sharing, node.gpus, node.physical_gpus) == ("partition", (), 8)
    [slots] = node.mig
    assert (slots.profile.name, slots.count, slots.resource) == (mode, 8 * partitions, resource)
    assert slots.profile.memory_mib == MI300X.vram_mib // partitions
    assert slots.profile.gpu_share == pytest.approx(1 / partitions)


def test_whole_and_partitioned_gpus_of_one_node_under_mixed_naming() -> None:
    labels = {"amd.com/gpu.product-name": "AMD_Instinct_MI300X_OAM"}
    raw = {
        "metadata": {"name": "mixed", "labels": labels},
        "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "allocatable": {"amd.com/spx_nps1": "5", "amd.com/cpx_nps1": "24"},
        },
    }
    node = build_inventory([raw], CATALOG).node("mixed")
    assert node.physical_gpus == 5 + 3
    assert {(s.profile.name, s.count, s.resource) for s in node.mig} == {
        ("cpx_nps1", 24, "amd.com/cpx_nps1"),
        ("spx_nps1", 5, "amd.com/spx_nps1"),
    }


def test_modes_the_gpu_cannot_take_skip_the_node_with_the_reason() -> None:
    raw = gpu_node("bad", MI300X, 8)
    raw["metadata"]["labels"]["amd.com/compute-memory-partition"] = "dpx_nps4"
    inventory = build_inventory([raw], CATALOG)
    assert not inventory.nodes and "NPS4 needs a multiple of 4" in inventory.skipped[0].reason
    mi210 = gpu_node("old", CATALOG.get("MI210"), 4)
    mi210["metadata"]["labels"]["amd.com/compute-memory-partition"] = "cpx_nps1"
    assert "cannot be partitioned" in build_inventory([mi210], CATALOG).skipped[0].reason


def test_the_labelled_vram_is_used_where_it_is_below_the_catalogue() -> None:
    small = gpu_node("small", MI300X, 8)
    small["metadata"]["labels"]["amd.com/gpu.vram"] = "128G"
    assert {g.vram_mib for g in build_inventory([small], CATALOG).node("small").gpus} == {128 * 1024}
    rounded_up = gpu_node("full", MI300X, 8)  # the labeller rounds 191.98 GiB to 192G
    assert {g.vram_mib for g in build_inventory([rounded_up], CATALOG).node("full").gpus} == {MI300X.vram_mib}
    partition = gpu_node("cpx", MI300X, 1, partition="cpx_nps4")
    partition["metadata"]["labels"]["amd.com/gpu.vram"] = "20G"
    assert build_inventory([partition], CATALOG).node("cpx").mig[0].profile.memory_mib == 20 * 1024


def fleet(mode: str = "cpx_nps4") -> list[dict[str, Any]]:
    """A partitioned MI300X node beside whole MI300X and H100 nodes."""
    return [
        gpu_node("mi-cpx", MI300X, 8, partition=mode),
        gpu_node("mi-whole", MI300X, 8),
        gpu_node("h100", CATALOG.get("H100-80GB"), 8),
    ]


@pytest.mark.parametrize("engine", ["online", "exact"])
def test_small_models_take_a_partition_and_large_ones_whole_gpus(engine: str) -> None:
    inventory = build_inventory(fleet(), CATALOG)
    requests = [
        Request(
            "small", "llama-3.1-8b-instruct", 4, min_quality=1.0, context=4096, concurrency=8, gpu_classes=("MI300X",)
        ),
        Request("large", "llama-3.1-70b-instruct", 1, min_quality=1.0, gpu_classes=("MI300X",)),
    ]
    plan = schedule(requests, REGISTRY, inventory, engine=engine, time_limit_s=5).plan
    check_plan(plan, inventory, requests)
    small = [p for p in plan.placements if p.request == "small"]
    assert {(p.sharing, p.node, p.workers[0].mig_profile) for p in small} == {("partition", "mi-cpx", "cpx_nps4")}
    assert all(p.vram_mib_per_gpu <= MI300X.vram_mib // 8 for p in small)
    large = next(p for p in plan.placements if p.request == "large")
    assert (large.sharing, large.node) == ("exclusive", "mi-whole")
    # Four partitions are half a GPU's worth: each costs an eighth of the GPU.
    assert plan.occupied and sum(s for k, (s, _) in plan.occupied.items() if k.startswith("mi-cpx/")) == 0.5


def test_partition_replicas_render_the_resource_and_memory_of_their_partition() -> None:
    inventory = build_inventory(fleet(), CATALOG)
    request = Request("small", "llama-3.1-8b-instruct", 2, min_quality=1.0, context=4096, concurrency=8)
    plan = schedule([request], REGISTRY, inventory, engine="online").plan
    [deployment] = [o for o in manifests(plan, REGISTRY, CATALOG, [request]) if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"] == {"amd.com/gpu": "1"}
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert {"key": "amd.com/compute-memory-partition", "operator": "In", "values": ["cpx_nps4"]} in terms[0][
        "matchExpressions"
    ]
    args = pod["containers"][0]["args"]
    utilisation = float(args[args.index("--gpu-memory-utilization") + 1])
    assert utilisation * (MI300X.vram_mib // 8) <= plan.placements[0].vram_mib_per_gpu
    assert utilisation > 0.5, "measured against the partition's memory, not the whole GPU's"
    assert {"key": "amd.com/gpu", "operator": "Exists"} in pod["tolerations"]


def test_mixed_naming_renders_the_mode_resource() -> None:
    nodes = [gpu_node("mi-cpx", MI300X, 8, partition="cpx_nps1", amd_naming="mixed")]
    request = Request("small", "llama-3.1-8b-instruct", 1, context=4096)
    plan = schedule([request], REGISTRY, build_inventory(nodes, CATALOG), engine="online").plan
    [deployment] = [o for o in manifests(plan, REGISTRY, CATALOG, [request]) if o["kind"] == "Deployment"]
    limits = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"amd.com/cpx_nps1": "1"}


def test_whole_gpu_replicas_keep_off_partitioned_nodes() -> None:
    """Under single naming a partitioned node's `amd.com/gpu` is a partition: a whole-GPU replica asking
    `amd.com/gpu` would be bound to one by kube-scheduler (the churn benchmark's MI300X endpoints, placed on
    whole GPUs, sat Pending on partitions the plan had given to others, rewritten every loop)."""
    inventory = build_inventory([gpu_node("mi300x-0", MI300X, 8)], CATALOG)
    request = Request("whole", "llama-3.1-70b-instruct", 1, min_quality=1.0)
    plan = schedule([request], REGISTRY, inventory, engine="online").plan
    [deployment] = [o for o in manifests(plan, REGISTRY, CATALOG, [request]) if o["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    (keep_off,) = [e for e in terms[0]["matchExpressions"] if e["key"] == "amd.com/compute-memory-partition"]
    assert keep_off["operator"] == "NotIn" and "dpx_nps1" in keep_off["values"] and "spx_nps1" not in keep_off["values"]


def test_a_201_on_cpx_partitions_names_the_node_and_the_mode_not_a_partition(kube: KubeCluster) -> None:
    """A guard of the answer's shape: pods of 201s bound off their MI325X CPX node were one Deployment's
    replicas answered on two nodes (the churn play did not spread them as kube-scheduler does), not a
    partition's index."""
    kube.put("v1/nodes", gpu_node("mi325x-0", CATALOG.get("MI325X"), 2, partition="cpx_nps4"))
    services = Services(Cluster(kube.api_client()), SETTINGS, REGISTRY, CATALOG, clock=lambda: NOW)
    assert post(TestClient(create_app(services)), body(replicas={"min": 2, "max": 2})).status_code == 201
    created = kube.get("egs.dev/v1alpha1/inferenceendpoints", "team-a", "chat") or {}
    placements = json.loads(created["metadata"]["annotations"][PROMISE_ANNOTATION])["placements"]
    workers = [w for p in placements for w in p["workers"]]
    assert [p["sharing"] for p in placements] == ["partition", "partition"]
    assert workers == [{"node": "mi325x-0", "gpus": [], "profile": "cpx_nps4", "resource": "amd.com/gpu"}] * 2
