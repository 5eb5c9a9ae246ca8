"""A 202 whose replicas are partly placed on warm GPUs records where, as a 201 does, so that a capacity
rebuilt (`egs api`'s, the controller's loop) holds them there rather than placing them again, maybe
elsewhere. Found offline on churn seed 404's burst: its answer recorded no placements (never seen to miss
a target)."""

from __future__ import annotations

from typing import Any

from autoscaler.admission import admit, capacity
from autoscaler.decide import Observation, answer_status, decide
from scheduler.synthetic import gpu_node
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, training

NODES = [gpu_node("h100-a", CATALOG.get("H100-80GB"), 2), gpu_node("h100-b", CATALOG.get("H100-80GB"), 1)]


def answered_202() -> dict[str, Any]:
    """An endpoint of two replicas answered while other workloads held GPU 0 of h100-a and all of h100-b:
    one replica placed on GPU 1 of h100-a, one waits for a node; with the status that answered it."""
    others = [training("h100-a", 1), training("h100-b", 1)]
    answered = capacity(
        decide(Observation(NODES, [], [], signals={}, pods=others), SETTINGS, REGISTRY, CATALOG, NOW), CATALOG
    )
    posted = endpoint("burst", lo=2, hi=2)
    posted["metadata"]["generation"] = 1
    admitted = admit(answered, posted, SETTINGS, REGISTRY, CATALOG, NOW)
    return {**posted, "status": answer_status(admitted.decision, 1, admitted.placed)}


def placed(obs: Observation) -> list[tuple[str, tuple[int, ...]]]:
    return sorted(
        (w.node, w.gpus) for p in decide(obs, SETTINGS, REGISTRY, CATALOG, NOW).placed.placements for w in p.workers
    )


def test_a_202s_warm_replica_is_recorded_and_kept_where_it_was_answered_when_the_capacity_is_rebuilt() -> None:
    burst = answered_202()
    assert (burst["status"]["phase"], burst["status"]["promise"]["answer"]) == ("Provisioning", "Accepted")
    assert [p["workers"] for p in burst["status"]["promise"]["placements"]] == [[{"node": "h100-a", "gpus": [1]}]]
    # Rebuilt once the other workloads went (placed afresh, its replicas spread over h100-a GPU 0 and h100-b).
    assert placed(Observation(NODES, [burst], [], signals={})) == [("h100-a", (0,)), ("h100-a", (1,))]


def test_a_202s_recorded_replica_whose_gpu_was_taken_since_is_placed_again() -> None:
    burst = answered_202()
    taken = {**training("h100-a", 2), "metadata": {"name": "train-a2", "namespace": "ml"}}
    assert placed(Observation(NODES, [burst], [], signals={}, pods=[taken])) == [("h100-b", (0,))]
