"""A shape change of an endpoint's own spec is made before it breaks: the new shape's workload takes a name of
its own, and the old one keeps serving, counted ready, until the new one's replicas are Ready, then goes.

Rendered under the old workload's name (a model changed, its variant of the same name on the same class), the
old Deployment's pod template was rewritten: its rollout (maxSurge 0, the GPU pod cannot surge on a full
node) took the serving pod down before the new one served.
"""

from __future__ import annotations

from typing import Any

from autoscaler.decide import Decision, Observation, decide
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint
from tests.test_reconcile_state import applied, l40s, observed, workloads

NODES = [l40s("l40s-0"), l40s("l40s-1")]
NEW_MODEL = "mistral-7b-instruct-v0.3"


def step(nodes: list[dict[str, Any]], eps: list[dict[str, Any]], owned: list[dict[str, Any]],
         pods: list[dict[str, Any]], at: float) -> Decision:  # fmt: skip
    return decide(Observation(nodes, eps, owned, None, pods=pods), SETTINGS, REGISTRY, CATALOG, at)


def conditions(decision: Decision, name: str = "alpha") -> dict[str, tuple[str, str]]:
    status = decision.statuses[("team-a", name)]
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def changed_model(decision: Decision, eps: list[dict[str, Any]], model: str, generation: int) -> list[dict[str, Any]]:
    out = observed(decision, eps)
    out[0] = {**out[0], "spec": {**out[0]["spec"], "model": model}, "metadata": {**out[0]["metadata"]}}
    out[0]["metadata"]["generation"] = generation
    return out


def test_a_model_change_on_the_same_class_keeps_the_serving_workload_until_the_new_one_serves() -> None:
    eps = [endpoint("alpha")]
    first = step(NODES, eps, [], [], NOW)
    old = workloads(first, "alpha")
    assert [w["metadata"]["annotations"]["egs.io/gpu-class"] for w in old.values()] == ["L40S"]
    owned, pods = applied(first)
    # The user makes it serve another model; its variant has the same name, and the other L40S is free.
    changed = changed_model(first, eps, NEW_MODEL, 4)
    second = step(NODES, changed, owned, pods, NOW + 60)
    new = workloads(second, "alpha")
    assert [w["metadata"]["annotations"]["egs.io/gpu-class"] for w in new.values()] == ["L40S"]
    # The serving Deployment is not rewritten (its template would roll its one pod down first).
    assert not set(new) & set(old)
    assert second.deletions == ()
    status = second.statuses[("team-a", "alpha")]
    assert (status["phase"], status["readyReplicas"]) == ("Ready", 1)  # the old model's replica serves meanwhile
    assert conditions(second)["Progressing"] == ("True", "ChangingShape")
    # The new pod is bound, not Ready: the status has caught up with the spec; the old one still serves.
    new_owned, new_pods = applied(second, ready=False)
    owned_now = [*owned, *(o for o in new_owned if o["metadata"]["name"] in new)]
    third = step(NODES, observed(second, changed), owned_now, [*pods, *new_pods], NOW + 120)
    assert set(workloads(third, "alpha")) == set(new)
    assert third.deletions == ()
    status = third.statuses[("team-a", "alpha")]
    assert (status["phase"], status["readyReplicas"]) == ("Ready", 1)
    assert conditions(third)["Progressing"] == ("True", "ChangingShape")
    # The new pod is Ready: the old workload goes, and the counts are the new shape's.
    new_owned, new_pods = applied(second, ready=True)
    owned_now = [*owned, *(o for o in new_owned if o["metadata"]["name"] in new)]
    fourth = step(NODES, observed(third, changed), owned_now, [*pods, *new_pods], NOW + 180)
    assert sorted(d[3] for d in fourth.deletions) == sorted(old)
    assert set(workloads(fourth, "alpha")) == set(new)
    assert conditions(fourth)["Progressing"] == ("False", "AllReplicasReady")
    # Recorded until it is gone (a delete that failed must not make its pods incumbents again), then not.
    gone = [o for o in owned_now if o["metadata"]["name"] not in old]
    left = [p for p in [*pods, *new_pods] if p["metadata"]["labels"]["egs.io/workload"] not in old]
    fifth = step(NODES, observed(fourth, changed), gone, left, NOW + 240)
    assert (fifth.deletions, set(workloads(fifth, "alpha"))) == ((), set(new))
    assert "shapeChange" not in fifth.statuses[("team-a", "alpha")]


def test_a_change_while_another_is_under_way_leaks_no_workload() -> None:
    nodes = [*NODES, l40s("l40s-2")]
    eps = [endpoint("alpha")]
    first = step(nodes, eps, [], [], NOW)
    (old,) = workloads(first, "alpha")
    owned, pods = applied(first)
    second = step(nodes, changed_model(first, eps, NEW_MODEL, 4), owned, pods, NOW + 60)
    (new,) = workloads(second, "alpha")
    new_owned, new_pods = applied(second, ready=False)
    owned += [o for o in new_owned if o["metadata"]["name"] == new]
    pods += [p for p in new_pods if p["metadata"]["labels"]["egs.io/workload"] == new]
    # Before the new model serves, the user changes it again, to a third model: the second shape serves nothing
    # and goes at once; the first still serves, recorded, until the third's replicas are Ready.
    third_model = changed_model(second, eps, "phi-3-mini-4k-instruct", 5)
    third = step(nodes, third_model, owned, pods, NOW + 120)
    (newer,) = workloads(third, "alpha")
    assert newer not in (old, new)
    assert [d[3] for d in third.deletions] == [new]
    assert third.statuses[("team-a", "alpha")]["shapeChange"] == {"replacing": [old]}
    assert (third.endpoints[0].phase, third.endpoints[0].ready_replicas) == ("Ready", 1)
    # Changed back to the first model before anything else serves: its workload is the intended one again,
    # under its name and as it was written, and nothing is replaced.
    back = step(nodes, changed_model(second, eps, first.endpoints[0].model, 6), owned, pods, NOW + 120)
    assert set(workloads(back, "alpha")) == {old}
    assert workloads(back, "alpha")[old]["spec"] == workloads(first, "alpha")[old]["spec"]
    assert [d[3] for d in back.deletions] == [new]
    assert "shapeChange" not in back.statuses[("team-a", "alpha")]
    assert conditions(back)["Progressing"] == ("False", "AllReplicasReady")
