"""A change of the spec that rewrites the workload's pod template but keeps its shape (the same variant, class,
tensor parallelism and VRAM: here twice the sequences at half the context, the same KV cache) is made before it
breaks, as a shape change is: the new template takes a workload of its own, and the old one serves until it does.

Under the old name, the Deployment's template was rewritten in place, and its rollout (maxSurge 0) took the one
serving pod down for a whole model load.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import replace
from typing import Any

import pytest

from autoscaler.decide import Decision, Observation, decide
from autoscaler.decide.workloads import TEMPLATE, template_hash
from tests.test_consolidation_within_class import loop, two_half_empty_nodes
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, signals
from tests.test_reconcile_state import applied, l40s, observed, workloads
from tests.test_shape_change import NODES, conditions, step

TRADED = {"concurrency": 32, "contextTokens": 4096}
"""Twice the sequences, half the context: the KV cache, so the VRAM and the shape, stay; the vLLM args do not."""


def respecified(eps: list[dict[str, Any]], generation: int, **spec: Any) -> list[dict[str, Any]]:
    """The endpoint with `spec` changed by its user (a new generation; the status is the controller's last); a
    field given as None is removed."""
    out = copy.deepcopy(eps)
    out[0]["spec"] = {k: v for k, v in (out[0]["spec"] | spec).items() if v is not None}
    out[0]["metadata"]["generation"] = generation
    return out


def served(**spec: Any) -> tuple[list[dict[str, Any]], Decision, list[dict[str, Any]], list[dict[str, Any]]]:
    """alpha (with `spec`) after its first loop on NODES: its endpoints, the loop's decision, and the workload and
    pod that loop made, as the cluster holds them (the pod Ready)."""
    eps = [endpoint("alpha", **spec)]
    first = step(NODES, eps, [], [], NOW)
    return (eps, first, *applied(first))


def with_successor(
    decision: Decision, name: str, owned: list[dict[str, Any]], pods: list[dict[str, Any]], ready: bool
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The cluster's objects and pods once `decision`'s new workload `name` is applied beside `owned`."""
    new_owned, new_pods = applied(decision, ready=ready)
    return [*owned, *(o for o in new_owned if o["metadata"]["name"] == name)], [*pods, *new_pods]


def _args(workload: dict[str, Any]) -> list[str]:
    return list(workload["spec"]["template"]["spec"]["containers"][0]["args"])


def _scaled_by_the_autoscaler(owned: list[dict[str, Any]], replicas: int) -> None:
    """The endpoint's Deployments scaled to `replicas` by an HPA (which owns the field from then on)."""
    for w in owned:
        if w["kind"] == "Deployment":
            w["spec"]["replicas"] = replicas
            w["metadata"]["managedFields"] = [
                {"manager": "egs-controller", "operation": "Apply", "fieldsV1": {"f:spec": {"f:template": {}}}},
                {
                    "manager": "kube-controller-manager",
                    "operation": "Update",
                    "fieldsV1": {"f:spec": {"f:replicas": {}}},
                },
            ]


def test_a_template_change_of_one_shape_keeps_the_serving_workload_until_the_new_one_serves() -> None:
    eps, first, owned, pods = served()
    old = workloads(first, "alpha")
    changed = respecified(observed(first, eps), 4, **TRADED)
    second = step(NODES, changed, owned, pods, NOW + 60)
    new = workloads(second, "alpha")
    (old_name, before), (new_name, after) = *old.items(), *new.items()
    shape = [k for k in before["metadata"]["annotations"] if k != TEMPLATE and k != "egs.io/placement"]
    assert [before["metadata"]["annotations"][k] for k in shape] == [after["metadata"]["annotations"][k] for k in shape]
    assert "--max-num-seqs" in _args(after) and _args(after) != _args(before)
    # The serving Deployment is not rewritten: its template would roll its one pod down first.
    assert new_name != old_name and second.deletions == ()
    status = second.statuses[("team-a", "alpha")]
    assert (status["phase"], status["readyReplicas"]) == ("Ready", 1)
    assert status["shapeChange"] == {"replacing": [old_name]}
    assert conditions(second)["Progressing"] == ("True", "ChangingShape")
    # The new pod is Ready: the old workload goes.
    owned_now, pods_now = with_successor(second, new_name, owned, pods, ready=True)
    third = step(NODES, observed(second, changed), owned_now, pods_now, NOW + 120)
    assert [d[3] for d in third.deletions] == [old_name]
    assert set(workloads(third, "alpha")) == {new_name}
    assert conditions(third)["Progressing"] == ("False", "AllReplicasReady")


def test_a_spec_change_that_leaves_the_template_keeps_the_workload() -> None:
    eps, first, owned, pods = served()
    changed = respecified(observed(first, eps), 4, replicas={"min": 1, "max": 4})
    second = step(NODES, changed, owned, pods, NOW + 60)
    assert set(workloads(second, "alpha")) == set(workloads(first, "alpha"))
    assert "shapeChange" not in second.statuses[("team-a", "alpha")]


def test_a_workload_that_records_no_template_keeps_its_name_on_a_spec_change() -> None:
    # Written before EGS recorded templates: its template is unknown, and it is taken as the same (as before).
    eps, first, owned, pods = served()
    for w in owned:
        w["metadata"].get("annotations", {}).pop(TEMPLATE, None)
    second = step(NODES, respecified(observed(first, eps), 4, **TRADED), owned, pods, NOW + 60)
    assert set(workloads(second, "alpha")) == set(workloads(first, "alpha"))


@pytest.mark.parametrize("scaling", ["hpa", "keda"])
def test_the_workload_a_template_change_makes_starts_with_the_replicas_its_autoscaler_set(scaling: str) -> None:
    eps, first, owned, pods = served(scaling=scaling)
    _scaled_by_the_autoscaler(owned, 2)
    # EGS's own count from the demand is 1: the new workload starts with the autoscaler's 2, not with it.
    room = [*NODES, l40s("l40s-2")]
    low = signals(demand=0.5, age_s=-50)
    changed = respecified(observed(first, eps), 4, **TRADED)
    again = Observation(room, changed, owned, low, pods=pods)
    second = decide(again, SETTINGS, REGISTRY, CATALOG, NOW + 60)
    (old_name,), ((new_name, new),) = workloads(first, "alpha"), workloads(second, "alpha").items()
    assert new_name != old_name
    assert new["spec"]["replicas"] == 2
    # A user's HPA names the old workload and stops scaling once it goes: the rename says so, once. KEDA's
    # ScaledObjects are the controller's, and follow.
    renamed = [e for e in second.events if e.reason == "WorkloadRenamed"]
    if scaling == "hpa":
        [event] = renamed
        assert (event.type, event.regarding.name) == ("Warning", "alpha")
        assert f"{old_name} is replaced by {new_name}" in event.note
    else:
        assert renamed == []
    owned_now, pods_now = with_successor(second, new_name, owned, pods, ready=False)
    later = replace(again, endpoints=observed(second, changed), owned=owned_now, pods=pods_now)
    third = decide(later, SETTINGS, REGISTRY, CATALOG, NOW + 120)
    assert third.statuses[("team-a", "alpha")]["shapeChange"] == {"replacing": [old_name]}  # still under way
    assert [e for e in third.events if e.reason == "WorkloadRenamed"] == []


def test_the_template_hash_is_blind_to_the_name_and_nodes_and_sees_the_pods() -> None:
    first = step(NODES, [endpoint("alpha")], [], [], NOW)
    (rendered,) = workloads(first, "alpha").values()
    moved = copy.deepcopy(rendered)
    template = moved["spec"]["template"]
    template["metadata"]["labels"]["egs.io/workload"] = "alpha-bf16-l40s-2"
    affinity = template["spec"]["affinity"]["nodeAffinity"]
    affinity["preferredDuringSchedulingIgnoredDuringExecution"] = [
        {"weight": 100, "preference": {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                                             "values": ["l40s-1"]}]}}
    ]  # fmt: skip
    for term in affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]:
        term["matchExpressions"].append({"key": "kubernetes.io/hostname", "operator": "In", "values": ["l40s-1"]})
    assert template_hash(moved) == template_hash(rendered) == rendered["metadata"]["annotations"][TEMPLATE]
    template["spec"]["containers"][0]["image"] = "vllm/vllm-openai:next"
    assert template_hash(moved) != template_hash(rendered)


def test_a_change_back_before_the_new_template_serves_keeps_the_workload_that_serves() -> None:
    eps, first, owned, pods = served()
    (old_name,) = workloads(first, "alpha")
    changed = respecified(observed(first, eps), 4, **TRADED)
    second = step(NODES, changed, owned, pods, NOW + 60)
    (new_name,) = workloads(second, "alpha")
    owned_now, pods_now = with_successor(second, new_name, owned, pods, ready=False)
    back = respecified(observed(second, changed), 5, concurrency=None, contextTokens=None)
    third = step([*NODES, l40s("l40s-2")], back, owned_now, pods_now, NOW + 120)
    assert set(workloads(third, "alpha")) == {old_name}  # not a third workload of the template it serves with
    assert [d[3] for d in third.deletions] == [new_name]
    # Nothing is replaced any more: a shapeChange left naming the serving workload would delete it next loop.
    assert "shapeChange" not in third.statuses[("team-a", "alpha")]
    assert conditions(third)["Progressing"] == ("False", "AllReplicasReady")


def test_the_successor_asks_for_no_more_than_its_planned_pods_while_a_new_endpoints_pod_is_unbound() -> None:
    # beta is new, placed on l40s-2 with no pod bound yet: alpha asks for no pod that waits for a node, lest
    # kube-scheduler bind it to the GPU beta's 201 was answered on (churn seed 4). Its successor's carried count
    # (the autoscaler's 2) is capped by that as its planned count is.
    eps, first, owned, pods = served(scaling="hpa")
    _scaled_by_the_autoscaler(owned, 2)
    beta = endpoint("beta")
    beta["metadata"]["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW + 50))
    changed = [*respecified(observed(first, eps), 4, **TRADED), beta]
    low = signals(demand=0.5, age_s=-50)
    room = [*NODES, l40s("l40s-2")]
    second = decide(Observation(room, changed, owned, low, pods=pods), SETTINGS, REGISTRY, CATALOG, NOW + 60)
    assert workloads(second, "beta")  # placed, its pod not bound
    (old_name,), ((new_name, new),) = workloads(first, "alpha"), workloads(second, "alpha").items()
    assert new_name != old_name
    planned = json.loads(new["metadata"]["annotations"]["egs.io/placement"])
    assert new["spec"]["replicas"] == len(planned) == 1


def test_a_consolidation_move_of_an_hpa_endpoint_says_which_workload_replaces_the_one_its_hpa_names() -> None:
    nodes, eps, owned, pods = two_half_empty_nodes()
    for ep in eps:
        ep["spec"]["scaling"] = "hpa"
    moved = loop(nodes, eps, owned, pods)
    [who] = [e.regarding.name for e in moved.events if e.reason == "Consolidating"]
    [event] = [e for e in moved.events if e.reason == "WorkloadRenamed"]
    assert event.regarding.name == who
    assert f"{who}-bf16-l40s is replaced by {who}-bf16-l40s-2" in event.note
