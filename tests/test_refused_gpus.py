"""The GPUs a stuck replica's plan is kept off are those kube-scheduler could have refused (issue 16).

A replica whose pod kube-scheduler found no node for waits, and the GPUs the plan put it on are
withheld from everyone else: kube-scheduler found them taken. A replica planned in another class than
its pending pod selects was never tried there; its GPUs are free, and the API's capacity must offer
them (churn seed 1: a free MI300X GPU withheld for an H100 replica, a 202 on a fresh order).
"""

from __future__ import annotations

from typing import Any

from autoscaler.admission import capacity
from autoscaler.decide import Decision, Observation, decide
from tests.test_decide import CATALOG, NOW, endpoint, signals
from tests.test_reconcile_state import applied, node, observed
from tests.test_stuck_replicas import AT, H100, UNSCHEDULABLE

A100 = "NVIDIA-A100-SXM4-80GB"


def free_gpus(decision: Decision, name: str) -> int:
    return sum(1 for n in capacity(decision, CATALOG).free if n.node == name for g in n.gpus if g.holders == 0)


def second_replica_stuck_once(joined: dict[str, Any]) -> Decision:
    """`chat` runs one replica on gpu-0; its second's pod, for an H100 node, is Unschedulable; `joined` joins."""
    nodes, eps = [node("gpu-0", H100, 1)], [endpoint("chat", lo=2)]
    first = decide(Observation(nodes, eps, signals=signals(), pods=[]), *AT)
    owned, (running, pending) = applied(first, ready=False)
    pending["spec"] = {**pending["spec"], "nodeSelector": {"nvidia.com/gpu.product": H100}}
    del pending["spec"]["nodeName"]
    pending["status"] = {"phase": "Pending", "conditions": [UNSCHEDULABLE]}
    obs = Observation([*nodes, joined], observed(first, eps), owned, signals(), pods=[running, pending])
    return decide(obs, *AT[:3], NOW + 20)


def test_a_stuck_replica_planned_in_another_class_leaves_its_gpus_free() -> None:
    # The plan puts the second replica on the A100 that joined; its pod selects H100 and never tried it.
    assert free_gpus(second_replica_stuck_once(node("a100-0", A100, 1)), "a100-0") == 1


def test_a_stuck_replica_planned_in_its_own_class_keeps_those_gpus_off() -> None:
    assert free_gpus(second_replica_stuck_once(node("gpu-1", H100, 1)), "gpu-1") == 0
