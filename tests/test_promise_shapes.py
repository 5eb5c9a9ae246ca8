"""A 201 answered in two shapes keeps both: a replica whose GPUs were taken is placed again in its own shape.

Found by the churn benchmark (`--seed 4`, and `--seed 19 --endpoints 30`): the endpoint API may place one
endpoint's replicas in two shapes (bf16 on an MI300X partition, fp8 on an L40S through KAI). kube-scheduler,
which picks nodes itself, bound another endpoint's pods on the partition the 201 was answered on; the
controller then placed that replica again in the shape of the replica it still held (fp8 on L40S, full),
after the 202s, which took the partitions left free, and the 201 was reported Provisioning.
"""

from __future__ import annotations

from typing import Any

from autoscaler import endpoint as ie
from autoscaler.decide import Observation, decide
from scheduler.synthetic import gpu_node
from tests.test_decide import NOW
from tests.test_promises_kept import CATALOG, REGISTRY, SETTINGS

MODEL = "qwen2.5-14b-instruct"
NODES = [
    gpu_node("l40s-kai-0", CATALOG.get("L40S"), 1),
    gpu_node("mi300x-dpx-0", CATALOG.get("MI300X"), 1, partition="dpx_nps1"),
    gpu_node("mi300x-dpx-1", CATALOG.get("MI300X"), 1, partition="dpx_nps1"),
]


def replica(variant: str, gpu_class: str, node: str) -> dict[str, Any]:
    """One replica of a promise, as `status.promise.placements` records it."""
    shape: dict[str, Any] = {"sharing": "kai", "vramMiBPerGpu": 40833}
    worker: dict[str, Any] = {"node": node, "gpus": [0]}
    if gpu_class == "MI300X":
        shape = {"sharing": "partition", "vramMiBPerGpu": 55553}
        worker = {"node": node, "gpus": [], "profile": "dpx_nps1", "resource": "amd.com/gpu"}
    return {"variant": variant, "gpuClass": gpu_class, "tensorParallel": 1, **shape, "workers": [worker]}


def answered(name: str, replicas: int, promise: dict[str, Any]) -> dict[str, Any]:
    spec = {"model": MODEL, "qualityFloor": 1.0, "replicas": {"min": replicas, "max": replicas + 2}}
    obj = ie.manifest("team-c", name, spec)
    obj["metadata"]["generation"] = 1
    return {**obj, "status": {"phase": "Provisioning", "promise": {**promise, "observedGeneration": 1}}}


def test_a_201_replica_whose_gpus_were_taken_is_placed_again_in_its_own_shape_before_the_202s() -> None:
    two_shapes = answered(
        "ep-11",
        2,
        {
            "answer": "Created",
            "variant": "bf16",
            "gpuClass": "MI300X",
            "placements": [replica("bf16", "MI300X", "mi300x-dpx-0"), replica("fp8", "L40S", "l40s-kai-0")],
        },
    )
    # A 202 waiting for MI300X partitions: it would take both of those left free.
    waiting = answered("ep-20", 2, {"answer": "Accepted", "variant": "bf16", "gpuClass": "MI300X"})
    # Something kube-scheduler bound where the 201's MI300X replica was answered: both partitions of dpx-0.
    two = {"amd.com/gpu": "2"}
    taken = {
        "metadata": {"name": "other-0", "namespace": "team-a"},
        "spec": {
            "nodeName": "mi300x-dpx-0",
            "containers": [{"name": "c", "resources": {"requests": two, "limits": two}}],
        },
        "status": {"phase": "Running"},
    }
    obs = Observation(NODES, [two_shapes, waiting], signals={}, pods=[taken])
    decision = decide(obs, SETTINGS, REGISTRY, CATALOG, NOW)
    by_name = {d.name: d for d in decision.endpoints}
    assert (by_name["ep-11"].placed, by_name["ep-11"].waiting) == (2, 0)
    placed = [p for p in decision.placed.placements if p.request == "ep-11"]
    shapes = sorted((p.variant, p.gpu_class, p.workers[0].node) for p in placed)
    assert shapes == [("bf16", "MI300X", "mi300x-dpx-1"), ("fp8", "L40S", "l40s-kai-0")]
    assert by_name["ep-20"].waiting == 1  # the 202 has the other partition and waits for a node for the rest
