"""A pod holds its GPUs until its object is gone, in the API's capacity as in the controller's plan (issue 16).

An incumbent the plan no longer keeps (a scale-down's surplus replica, a consolidation move's old one) runs
until its workload is rewritten and its pod has terminated: the controller places no new replica on its GPUs,
so the API's capacity (`autoscaler.admission.capacity`) must not offer them either: before, it took them free.
Churn seed 2400: the API answered two 201s on the four H100 GPUs of team-a/ep-12's running pod (not yet
deleted; most likely freed by a move of ep-12 to an MI300X in the API's own decide step), which the controller
kept off them, and both were demoted. A pod that is terminating, or whose endpoint is gone, is no incumbent
and holds what it asks already (`autoscaler.pods.pod_allocations`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from autoscaler.admission import capacity
from autoscaler.decide import Decision, Observation, decide
from tests.test_consolidation_settled import chat_moved
from tests.test_consolidation_within_class import moves
from tests.test_decide import CATALOG, NOW, endpoint, signals
from tests.test_reconcile_state import CONSOLIDATING, applied, node, observed
from tests.test_stuck_replicas import AT, H100


def free_gpus(decision: Decision, name: str) -> int:
    return sum(1 for n in capacity(decision, CATALOG).free if n.node == name for g in n.gpus if g.holders == 0)


def running_two(then: dict[str, Any]) -> Decision:
    """`chat` runs two replicas on gpu-0's two GPUs; decided again as `then` (its spec now)."""
    nodes = [node("gpu-0", H100, 2)]
    first = decide(Observation(nodes, [endpoint("chat", lo=2, hi=2)], signals=signals(), pods=[]), *AT)
    owned, pods = applied(first)
    assert len(pods) == 2
    obs = Observation(nodes, observed(first, [then]), owned, signals(), pods=pods)
    calm = replace(AT[0], scale_down_stabilization_s=0.0)  # the scale-down taken at once
    return decide(obs, calm, *AT[1:3], NOW + 20)


def test_a_scale_downs_surplus_replica_holds_its_gpu_until_its_pod_is_gone() -> None:
    decision = running_two(endpoint("chat", lo=1, hi=1))
    assert sum(len(p.workers) for p in decision.placed.placements) == 1  # one replica kept
    assert free_gpus(decision, "gpu-0") == 0


def test_kept_replicas_hold_their_gpus_once() -> None:
    assert free_gpus(running_two(endpoint("chat", lo=2, hi=2)), "gpu-0") == 0


def test_a_moved_endpoints_old_replica_holds_its_gpu_while_it_serves() -> None:
    # chat moves off gpu-0's H100 to the L40S beside it; its old replica serves until the new one does.
    decision = chat_moved(CONSOLIDATING.consolidation.consolidate_after_s + 10)
    assert moves(decision) == ["chat"]
    gpus = len(next(n for n in decision.inventory if n.node == "gpu-0").gpus)
    assert free_gpus(decision, "gpu-0") == gpus - 1


def test_a_deleted_endpoints_terminating_pods_hold_their_gpus_until_gone() -> None:
    # Held before this change too: a guard on the rule for the pods of an endpoint deleted.
    nodes = [node("gpu-0", H100, 2)]
    first = decide(Observation(nodes, [endpoint("chat", lo=2, hi=2)], signals=signals(), pods=[]), *AT)
    owned, pods = applied(first)
    for pod in pods:
        pod["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert free_gpus(decide(Observation(nodes, [], owned, signals(), pods=pods), *AT[:3], NOW + 20), "gpu-0") == 0
    assert free_gpus(decide(Observation(nodes, [], [], signals(), pods=[]), *AT[:3], NOW + 20), "gpu-0") == 2
