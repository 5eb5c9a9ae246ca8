"""GPUs kube-scheduler found taken, remembered across loops (DESIGN.md, "Reconcile state"; issue 16).

A replica the plan placed on GPUs that kube-scheduler then found no room on (its pod Unschedulable:
something EGS cannot see holds them) waits for a node; the next loop's new pod is not tried yet, and
nothing but the memory recorded on the workload (`egs.io/taken`) keeps the replica, and new replicas
of other endpoints, off those GPUs. Covers: the memory applies to new endpoints; it is written once
and then stable; it goes when its node goes, when a pod then on the node goes, and when the replica's
pod is bound. Each scenario runs decide loop after loop on a cluster applied as `test_reconcile_state`
applies it, with a kube-scheduler that refuses the nodes named.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import Any

from autoscaler.decide import Decision, Observation, decide
from scheduler.synthetic import gpu_node
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, signals, training
from tests.test_reconcile_state import applied, node, observed

H100 = "NVIDIA-H100-80GB-HBM3"
TAKEN = "egs.io/taken"
AT = (SETTINGS, REGISTRY, CATALOG, NOW)
UNSCHEDULABLE = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}


def next_loop(
    prev: Decision,
    nodes: list[dict[str, Any]],
    eps: list[dict[str, Any]],
    at: float,
    refuses: Collection[str] = (),
    joined: str | None = None,
    more_pods: Sequence[dict[str, Any]] = (),
) -> Decision:
    """Decide again once `prev` is applied: a pod planned on a node in `refuses` is Unschedulable; one
    planned on a node being provisioned is bound to `joined` when it is given, else not tried yet."""
    owned, pods = applied(prev, ready=False)
    for p in pods:
        planned = p["spec"].pop("nodeName")
        if planned.startswith("egs-provisioning") and joined:
            p["spec"]["nodeName"] = joined
        elif planned in refuses or planned.startswith("egs-provisioning"):
            untried = planned not in refuses
            unschedulable = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
            p["status"] = {"phase": "Pending", "conditions": [] if untried else [unschedulable]}
        else:
            p["spec"]["nodeName"] = planned
    obs = Observation(nodes, observed(prev, eps), owned, signals(age_s=NOW - at + 10), pods=[*pods, *more_pods])
    return decide(obs, SETTINGS, REGISTRY, CATALOG, at)


def planned_nodes(decision: Decision, name: str) -> list[str]:
    """The nodes the endpoint's workloads plan its replicas on."""
    return [
        replica["workers"][0][0]
        for o in decision.objects
        if o["kind"] == "Deployment" and o["metadata"]["annotations"].get("egs.io/request-name") == name
        for replica in json.loads(o["metadata"]["annotations"]["egs.io/placement"])
    ]


def taken(decision: Decision, name: str) -> list[dict[str, Any]]:
    """The GPUs found taken that the endpoint's workloads record."""
    return [
        record
        for o in decision.objects
        if o["kind"] == "Deployment" and o["metadata"]["annotations"].get("egs.io/request-name") == name
        for record in json.loads(o["metadata"]["annotations"].get(TAKEN, "[]"))
    ]


def stuck_on(nodes: list[dict[str, Any]], more_pods: Sequence[dict[str, Any]] = ()) -> Decision:
    """`chat` placed on gpu-0, then found no room there by kube-scheduler: it waits for a node."""
    eps = [endpoint("chat")]
    first = decide(Observation(nodes, eps, signals=signals(), pods=list(more_pods)), *AT)
    assert planned_nodes(first, "chat") == ["gpu-0"]
    stuck = next_loop(first, nodes, eps, NOW + 20, refuses={"gpu-0"}, more_pods=more_pods)
    assert planned_nodes(stuck, "chat") != ["gpu-0"]
    return stuck


def test_a_new_endpoint_is_not_placed_on_gpus_kube_scheduler_found_taken() -> None:
    nodes = [node("gpu-0", H100, 1)]
    stuck = stuck_on(nodes)
    # `code` was answered 201 on an H100 (its replicas are placed first): gpu-0 looks free, but is not.
    promise = {"answer": "Created", "variant": "bf16", "gpuClass": "H100-80GB", "observedGeneration": 3}
    eps = [endpoint("chat"), endpoint("code", status={"promise": promise})]
    later = next_loop(stuck, nodes, eps, NOW + 40)
    assert "gpu-0" not in planned_nodes(later, "code") + planned_nodes(later, "chat")
    assert [t["node"] for t in taken(later, "chat")] == ["gpu-0"]


def test_the_memory_is_written_once_and_a_quiet_loop_rewrites_nothing() -> None:
    nodes = [node("gpu-0", H100, 1)]
    stuck = stuck_on(nodes)
    assert taken(stuck, "chat") == [{"node": "gpu-0", "gpus": [0], "pods": []}]
    later = next_loop(stuck, nodes, [endpoint("chat")], NOW + 40)
    again = next_loop(later, nodes, [endpoint("chat")], NOW + 60)
    assert later.objects == stuck.objects
    assert again.objects == stuck.objects


def test_gpus_found_taken_are_tried_again_once_their_node_has_gone_and_come_back() -> None:
    nodes = [node("gpu-0", H100, 1)]
    eps = [endpoint("chat")]
    still = next_loop(stuck_on(nodes), nodes, eps, NOW + 40)
    assert planned_nodes(still, "chat") != ["gpu-0"]
    # The node goes (a replaced VM, say) and comes back under its name: what held its GPUs went with it.
    gone = next_loop(still, [], eps, NOW + 60)
    assert taken(gone, "chat") == []
    back = next_loop(gone, nodes, eps, NOW + 80)
    assert planned_nodes(back, "chat") == ["gpu-0"]


def test_gpus_found_taken_are_tried_again_once_a_pod_then_on_their_node_is_gone() -> None:
    # A training job holds one of gpu-0's two GPUs; kube-scheduler finds the other taken too.
    nodes = [node("gpu-0", H100, 2)]
    job = training("gpu-0", 1)
    stuck = stuck_on(nodes, more_pods=[job])
    assert taken(stuck, "chat") == [{"node": "gpu-0", "gpus": [1], "pods": ["ml/train-gpu-0"]}]
    eps = [endpoint("chat")]
    still = next_loop(stuck, nodes, eps, NOW + 40, more_pods=[job])
    assert planned_nodes(still, "chat") != ["gpu-0"]
    # The job ends: whatever it was, what held the GPU may have gone with it.
    freed = next_loop(still, nodes, eps, NOW + 60)
    assert planned_nodes(freed, "chat") == ["gpu-0"]


def test_gpus_found_taken_are_forgotten_once_the_replica_is_bound() -> None:
    nodes = [node("gpu-0", H100, 1)]
    eps = [endpoint("chat")]
    stuck = stuck_on(nodes)
    waiting = next_loop(stuck, nodes, eps, NOW + 40)
    assert planned_nodes(waiting, "chat") != ["gpu-0"]
    # A node joins and kube-scheduler binds the waiting pod there: nothing waits, the memory goes.
    nodes = [*nodes, node("gpu-1", H100, 1)]
    bound = next_loop(waiting, nodes, eps, NOW + 60, joined="gpu-1")
    assert (bound.endpoints[0].placed, taken(bound, "chat")) == (1, [])
    more = [*eps, endpoint("code")]
    later = next_loop(bound, nodes, more, NOW + 80, refuses={"gpu-0"})
    assert planned_nodes(later, "code") == ["gpu-0"]


def test_a_record_of_gpus_found_taken_that_cannot_be_read_is_left_out() -> None:
    # Hand-edited, or written by another version: a readable record holds, the rest is tried again.
    nodes = [node("gpu-0", H100, 1)]
    readable = taken(stuck_on(nodes), "chat")
    assert readable
    for text, kept in (("{oops", []), ('{"node": "gpu-0"}', []), (json.dumps([*readable, {"node": 7}, 7]), readable)):
        stuck = stuck_on(nodes)
        for o in stuck.objects:
            if TAKEN in o["metadata"].get("annotations", {}):
                o["metadata"]["annotations"][TAKEN] = text
        later = next_loop(stuck, nodes, [endpoint("chat")], NOW + 40)
        assert taken(later, "chat") == kept


def test_a_replica_keeps_its_place_where_the_apply_left_annotations_of_the_shape_it_had_before() -> None:
    # An apply that merges annotations (the stand-in's; or another field manager's) leaves the
    # partition's `mig-profile` and the dropped `taken` on the workload once it holds whole GPUs.
    settings = replace(SETTINGS, classes={"MI300X": SETTINGS.classes["H100-80GB"]})
    at = (settings, REGISTRY, CATALOG)
    nodes = [gpu_node("mi300x-dpx-0", CATALOG.get("MI300X"), 1, partition="dpx_nps1")]
    eps = [endpoint("chat")]
    history = [decide(Observation(nodes, eps, signals=signals()), *at, NOW)]
    owned, pods = applied(history[0], ready=False)
    for p in pods:
        p["spec"].pop("nodeName")
        p["status"] = {"phase": "Pending", "conditions": [UNSCHEDULABLE]}
    history.append(decide(Observation(nodes, observed(history[0], eps), owned, signals(), pods=pods), *at, NOW + 20))
    assert [t["node"] for t in taken(history[1], "chat")] == ["mi300x-dpx-0"]
    # A node of whole MI300X GPUs joins and the waiting pod is bound there; the partition frees.
    nodes = [*nodes, gpu_node("mi300x-new-0", CATALOG.get("MI300X"), 8)]
    for at_s in (NOW + 40, NOW + 60):
        owned, pods = applied(history[-1], ready=True)
        for p in pods:
            p["spec"]["nodeName"] = "mi300x-new-0"
        for workload in owned:
            name, merged = workload["metadata"]["name"], dict[str, str]()
            for before in history:
                merged |= next(
                    (o["metadata"]["annotations"] for o in before.objects if o["metadata"]["name"] == name), {}
                )
            workload["metadata"]["annotations"] = merged
        obs = Observation(nodes, observed(history[-1], eps), owned, signals(age_s=NOW - at_s + 10), pods=pods)
        history.append(decide(obs, *at, at_s))
    assert planned_nodes(history[2], "chat") == planned_nodes(history[3], "chat") == ["mi300x-new-0"]
    assert history[3].objects == history[2].objects
    assert history[3].inventory.node("mi300x-dpx-0").mig[0].used == 0  # the record left behind is not read
