"""Replicas whose node went keep their workload's shape where it still fits (churn, 200 endpoints, seed 217).

When a Node is deleted its pods go, and the workload's controller makes them again at once, pending,
in the same workload. The decide step read the endpoint as running nothing and placed its replicas
afresh, in the cheapest shape: a second workload in another class, while kube-scheduler bound the
re-created pods in the old one on another node of its class. Both served, and the old one, Ready,
went (4 Ready replicas of three endpoints moved twice, MI325X to A100 and L40S). The replicas now take
their workload's shape where it fits, as more replicas of a running endpoint do; elsewhere only when
it does not.
"""

from __future__ import annotations

import copy
from typing import Any

from autoscaler.decide import Observation, decide
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, h100, signals
from tests.test_reconcile_state import applied, l40s, observed, workloads


def recreated(pod: dict[str, Any]) -> dict[str, Any]:
    """The pod its workload makes again once its node is deleted: not bound yet."""
    again = copy.deepcopy(pod)
    again["metadata"]["name"] += "-again"
    del again["spec"]["nodeName"]
    again["status"] = {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False"}]}
    return again


def lose_node(nodes: list[dict[str, Any]], room: bool) -> tuple[Any, Any]:
    """The endpoint placed on H100, its node deleted, a cheaper L40S joined; decided again."""
    first = decide(Observation(nodes, [endpoint()], signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    assert first.endpoints[0].gpu_class == "H100-80GB"
    owned, pods = applied(first)
    lost = pods[0]["spec"]["nodeName"]
    left = [n for n in nodes if n["metadata"]["name"] != lost]
    if not room:
        left = [n for n in left if "H100" not in n["metadata"]["labels"]["nvidia.com/gpu.product"]]
    eps = observed(first, [endpoint()])
    obs = Observation([*left, l40s("l40s-0")], eps, owned, signals(), pods=[recreated(p) for p in pods])
    return first, decide(obs, SETTINGS, REGISTRY, CATALOG, NOW + 60)


def test_replicas_whose_node_was_deleted_stay_in_their_shape_on_another_node_of_their_class() -> None:
    first, second = lose_node([h100("gpu-0"), h100("gpu-1")], room=True)
    assert (second.endpoints[0].gpu_class, second.endpoints[0].placed) == ("H100-80GB", 1)
    assert set(workloads(second, "chat")) == set(workloads(first, "chat"))  # no second workload
    assert second.deletions == ()


def test_replicas_whose_class_has_no_room_left_are_placed_elsewhere() -> None:
    first, second = lose_node([h100("gpu-0")], room=False)
    assert (second.endpoints[0].gpu_class, second.endpoints[0].placed) == ("L40S", 1)
    assert set(workloads(second, "chat")).isdisjoint(workloads(first, "chat"))
