"""A 201 whose answered GPUs cannot be held is placed afresh, and its promise follows, with a reason.

Covers: the endpoint API answered 201 on gpu-0; before the controller's loop a pod of another workload
took gpu-0. The replica is placed again in the shape answered, on gpu-1, and its workload is written
preferring gpu-1 (for good: a changed preference restarts pods). Before, the promise went on naming
gpu-0, so once gpu-0 came free the plan put the replica back there while its pod preferred gpu-1. Now
the promise moves to gpu-1 in that loop (PromiseKept False, `PlacementTaken`, an Event), and the plan
stays where the pod goes.
"""

from __future__ import annotations

from typing import Any

from autoscaler.decide import Decision, Observation, answer_status, decide
from autoscaler.decide.workloads import PREFERRED
from autoscaler.events import find_condition
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, h100, signals, training
from tests.test_reconcile_state import applied, observed

NODES = [h100("gpu-0"), h100("gpu-1")]


def nodes_of(decision: Decision) -> list[str]:
    return [w.node for p in decision.placed.placements if p.request == "chat" for w in p.workers]


def preferred(decision: Decision) -> list[Any]:
    (workload,) = [o for o in decision.objects if o["kind"] == "Deployment" and o["metadata"]["namespace"] == "team-a"]
    terms = workload["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][PREFERRED]
    return [v for t in terms for e in t["preference"]["matchExpressions"] for v in e["values"]]


def test_a_201_placed_afresh_moves_its_promise_where_its_workload_prefers() -> None:
    answer = decide(Observation(NODES, [endpoint()], signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    placed = [p for p in answer.placed.placements if p.request == "chat"]
    assert nodes_of(answer) == ["gpu-0"]
    answered = {**endpoint(), "status": answer_status(answer.endpoints[0], 3, placed)}
    # Another workload's pod took every GPU of gpu-0 before the controller's loop.
    first = decide(Observation(NODES, [answered], signals=signals(), pods=[training("gpu-0", 8)]), SETTINGS,
                   REGISTRY, CATALOG, NOW + 30)  # fmt: skip
    assert nodes_of(first) == ["gpu-1"] and preferred(first) == ["gpu-1"]
    chat = first.endpoints[0]
    assert (chat.phase, chat.waiting) == ("Pending", 0)  # still served now, as answered
    status = first.statuses[("team-a", "chat")]
    assert [w["node"] for p in status["promise"]["placements"] for w in p["workers"]] == ["gpu-1"]
    assert status["promise"]["answer"] == "Created"
    kept = find_condition(status["conditions"], "PromiseKept")
    assert kept is not None and (kept["status"], kept["reason"]) == ("False", "PlacementTaken")
    assert "gpu-0 [0]" in kept["message"] and "gpu-1 [0]" in kept["message"]
    assert [(e.type, e.reason) for e in first.events] == [("Warning", "PlacementTaken")]
    # The other pod is gone and chat's pod not bound yet: the plan stays where the workload prefers.
    owned, pods = applied(first, ready=False)
    for pod in pods:
        pod["spec"].pop("nodeName")
        pod["status"] = {"phase": "Pending"}
    second = decide(Observation(NODES, observed(first, [answered]), owned, signals(), pods=pods), SETTINGS, REGISTRY,
                    CATALOG, NOW + 60)  # fmt: skip
    assert nodes_of(second) == ["gpu-1"] and preferred(second) == ["gpu-1"]
    assert second.events == () and second.statuses == first.statuses
