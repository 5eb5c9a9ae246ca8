"""Where a pod that asks for a share of a GPU's memory lands: binpacked, as placement plans it.

EGS places a shared replica on the tightest fit (the GPU with the least memory left). KAI Scheduler
binpacks by default, HAMi only when the pod asks (its default spreads a node's pods over its GPUs),
so EGS's HAMi pods ask. The churn benchmark's scheduler put such pods on the first node listed with
room instead: on seed 53 a 201's second replica took the GPU the API had just promised the next
201, which took the next one's, until the last of them found no room (a 201 reported Provisioning).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, cast

from benchmarks.churnkit.play import Play, Pod
from localplay.kube_standin import KubeCluster
from scheduler.catalog import Catalog
from scheduler.manifests import HAMI_GPU_MEMORY, KAI_GPU_MEMORY, manifests
from scheduler.plan import Placement, Plan, Worker
from scheduler.registry import Registry
from scheduler.synthetic import gpu_node

REPO = Path(__file__).resolve().parent.parent
CATALOG = Catalog.load()
REGISTRY = Registry.load(REPO / "examples" / "models.yaml", CATALOG)
BINPACK = {"hami.io/node-scheduler-policy": "binpack", "hami.io/gpu-scheduler-policy": "binpack"}


class Nodes:
    """The one list the play's scheduler reads of the cluster."""

    def __init__(self, nodes: list[dict[str, Any]]) -> None:
        self.nodes = nodes

    def all(self, kind: str) -> list[dict[str, Any]]:
        return self.nodes if kind == "v1/nodes" else []


def pod(name: str, gpu_class: str, annotations: dict[str, str], resources: dict[str, str]) -> Pod:
    product = CATALOG.get(gpu_class).products[0]
    template = {
        "metadata": {"annotations": annotations},
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": product},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
            "containers": [{"name": "vllm", "resources": {"requests": resources, "limits": resources}}],
        },
    }
    return Pod("team", name, name, f"team/{name}", template, 1.0, gpu_class)


def bind(gpu_class: str, nodes: list[str], first: Pod, second: Pod) -> Pod:
    """`first` bound while only the last of `nodes` is there, then `second` with all of them: where it lands."""
    listed = [gpu_node(n, CATALOG.get(gpu_class), 1) for n in nodes]
    kube = Nodes(listed[-1:])
    play = Play(cast(KubeCluster, kube), CATALOG, REGISTRY, random.Random(0), 20.0)
    play.pods[first.key] = first
    play._schedule(0.0, kube.nodes)
    assert first.node == nodes[-1]
    kube.nodes = listed
    play.pods[second.key] = second
    play._schedule(1.0, kube.nodes)
    assert first.node == nodes[-1]
    return second


def test_a_kai_pod_is_bound_on_the_gpu_with_the_least_memory_left_that_holds_it() -> None:
    # L40S: 46068 MiB. The planned GPU (beside a 21476 MiB replica) holds 23663 MiB more, with 929 left;
    # the empty GPU of the node listed first would leave 22405: KAI's binpack takes the former.
    first = pod("beside", "L40S", {KAI_GPU_MEMORY: "21476"}, {})
    second = pod("next", "L40S", {KAI_GPU_MEMORY: "23663"}, {})
    assert bind("L40S", ["l40s-0", "l40s-1"], first, second).node == "l40s-1"


def test_a_hami_pod_is_bound_on_the_gpu_with_the_least_memory_left_that_holds_it() -> None:
    first = pod("beside", "H200-141GB", BINPACK, {"nvidia.com/gpu": "1", HAMI_GPU_MEMORY: "30000"})
    second = pod("next", "H200-141GB", BINPACK, {"nvidia.com/gpu": "1", HAMI_GPU_MEMORY: "100000"})
    assert bind("H200-141GB", ["h200-0", "h200-1"], first, second).node == "h200-1"


def test_egs_hami_pods_ask_hami_to_binpack_nodes_and_gpus() -> None:
    placement = Placement(
        "chat", 0, "llama-3.1-8b-instruct", "bf16", "bf16", 1.0, "H200-141GB", "hami", 1, 20_000,
        (Worker("h200-0", (0,)),),
    )  # fmt: skip
    workload = next(o for o in manifests(Plan((placement,)), REGISTRY, CATALOG) if o["kind"] == "Deployment")
    annotations = workload["spec"]["template"]["metadata"]["annotations"]
    assert {k: annotations.get(k) for k in BINPACK} == BINPACK
