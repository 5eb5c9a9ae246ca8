"""The controller keeps its word (DESIGN.md, "Reconcile state"), as decide-step scenarios over loops.

Each test applies a decision to a small cluster as kube-scheduler and the kubelet would (`applied`: the
workloads written, a pod bound per planned replica, ready or not), changes one thing, and decides again.
Covers: incumbents keep their node, class and variant; what replaced workloads held is neither free
nor counted ready, and goes once the replacement serves; promises; the stabilization window;
consolidation. The controller's side: it deletes what the decision no longer intends.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import pytest

from autoscaler import endpoint as ie
from autoscaler.config import parse_config
from autoscaler.decide import ConsolidationSettings, Decision, Observation, decide, rfc3339
from autoscaler.decide.state import Workload
from autoscaler.decide.status import endpoint_decision
from common.errors import InputError
from localplay.kube_standin import KubeCluster
from scheduler.manifests import validate
from scheduler.plan import Placement, Worker
from tests.test_controller import DEPLOYMENTS, ENDPOINTS, FixedSignals, controller
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, h100, signals, training, workload

WORKLOADS = ("Deployment", "LeaderWorkerSet")
AT = (SETTINGS, REGISTRY, CATALOG, NOW)


def node(name: str, product: str, gpus: int) -> dict[str, Any]:
    labels = {"nvidia.com/gpu.product": product, "nvidia.com/gpu.count": str(gpus)}
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {"nvidia.com/gpu": str(gpus)}},
    }


def l40s(name: str, gpus: int = 1) -> dict[str, Any]:
    return node(name, "NVIDIA-L40S", gpus)


def applied(decision: Decision, ready: bool = True) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The endpoints' objects of `decision` as the cluster holds them once applied, and their pods: one
    bound to the node planned for each replica, Ready when `ready`."""
    owned, pods = [], []
    for intended in decision.objects:
        if intended["metadata"].get("namespace") == SETTINGS.namespace or intended["kind"] == "PriorityClass":
            continue
        obj = copy.deepcopy(intended)
        owned.append(obj)
        if obj["kind"] not in WORKLOADS:
            continue
        replicas = obj["spec"]["replicas"]
        obj["status"] = {"readyReplicas": replicas if ready else 0}
        planned = json.loads(obj["metadata"]["annotations"]["egs.io/placement"])
        template = obj["spec"]["template"]
        for i, replica in enumerate(planned):
            pods.append(
                {
                    "metadata": {
                        "name": f"{obj['metadata']['name']}-{i}",
                        "namespace": obj["metadata"]["namespace"],
                        "labels": template["metadata"]["labels"],
                    },
                    "spec": {"nodeName": replica["workers"][0][0], "containers": template["spec"]["containers"]},
                    "status": {
                        "phase": "Running",
                        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
                    },
                }
            )
    return owned, pods


def observed(decision: Decision, endpoints: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`endpoints` with the statuses `decision` wrote."""
    out = []
    for ep in endpoints:
        meta = ep["metadata"]
        status = decision.statuses.get((meta["namespace"], meta["name"]))
        out.append({**ep, "status": status} if status else ep)
    return out


def workloads(decision: Decision, name: str) -> dict[str, dict[str, Any]]:
    return {
        o["metadata"]["name"]: o
        for o in decision.objects
        if o["kind"] in WORKLOADS and o["metadata"]["annotations"].get("egs.io/request-name") == name
    }


def test_a_running_replica_keeps_its_class_when_an_unrelated_endpoint_goes() -> None:
    # One L40S GPU (the cheaper class) and an H100 node: one endpoint gets the L40S, the other an H100.
    nodes = [l40s("l40s-0"), h100("gpu-0")]
    eps = [endpoint("alpha"), endpoint("beta")]
    first = decide(Observation(nodes, eps, signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    classes = {d.name: str(d.gpu_class) for d in first.endpoints}
    assert sorted(classes.values()) == ["H100-80GB", "L40S"]
    on_h100 = next(name for name, c in classes.items() if c == "H100-80GB")
    owned, pods = applied(first)
    # The endpoint on the L40S is deleted: its pods go, and the L40S is free.
    rest = [e for e in observed(first, eps) if e["metadata"]["name"] == on_h100]
    pods = [p for p in pods if p["metadata"]["labels"]["egs.io/request"] == on_h100]
    second = decide(Observation(nodes, rest, owned, signals(), pods=pods), SETTINGS, REGISTRY, CATALOG, NOW + 60)
    assert second.endpoints[0].gpu_class == "H100-80GB"
    assert workloads(second, on_h100) == workloads(first, on_h100)  # nothing rewritten, nothing restarted
    assert all(d[3] not in workloads(first, on_h100) for d in second.deletions)


def test_a_replaced_workload_holds_its_gpus_and_serves_until_its_replacement_does() -> None:
    nodes = [l40s("l40s-0"), h100("gpu-0")]
    eps = [endpoint(gpuClasses=["H100-80GB"])]
    first = decide(Observation(nodes, eps, signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    old = set(workloads(first, "chat"))
    owned, pods = applied(first)
    # The user moves the endpoint to the L40S: a new generation of its spec.
    moved = observed(first, [endpoint(gpuClasses=["L40S"])])
    moved[0]["metadata"]["generation"] = 4
    second = decide(Observation(nodes, moved, owned, signals(), pods=pods), SETTINGS, REGISTRY, CATALOG, NOW + 60)
    chat = second.endpoints[0]
    # The H100 replica is not the new shape's, but serves (and counts) until it does.
    assert (chat.gpu_class, chat.ready_replicas, chat.phase, chat.shape_change) == ("L40S", 1, "Ready", tuple(old))
    assert not set(workloads(second, "chat")) & old
    assert second.deletions == ()  # make-before-break: the old replica serves until the new one does
    assert [g.holders for g in second.inventory.node("gpu-0").gpus][:1] == [1]  # its GPU is not free
    # The L40S replica is ready: the H100 workload goes.
    owned_new, pods_new = applied(second)
    third = decide(
        Observation(nodes, observed(second, moved), owned + owned_new, signals(), pods=pods + pods_new),
        SETTINGS,
        REGISTRY,
        CATALOG,
        NOW + 120,
    )
    assert (third.endpoints[0].phase, third.endpoints[0].ready_replicas) == ("Ready", 1)
    assert {d[3] for d in third.deletions} == old


def test_an_endpoint_scaled_to_nothing_or_gone_leaves_nothing_behind() -> None:
    first = decide(Observation([h100("gpu-0")], [endpoint()], signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    owned, pods = applied(first)
    gone = decide(Observation([h100("gpu-0")], [], owned, signals(), pods=pods), SETTINGS, REGISTRY, CATALOG, NOW)
    assert sorted((d[1], d[3]) for d in gone.deletions) == [
        ("Deployment", "chat-bf16-h100-80gb"),
        ("PodDisruptionBudget", "chat"),
        ("Service", "chat"),
    ]


def test_the_controller_deletes_the_workloads_of_an_endpoint_that_is_gone(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    left = workload("gone", 1, ready=1)
    left["metadata"]["labels"] = {"app.kubernetes.io/managed-by": "egs"}
    kube.put(DEPLOYMENTS, left)
    outcome = controller(kube, FixedSignals(demand=1.0)).reconcile()
    assert outcome.errors == []
    assert kube.get(DEPLOYMENTS, "team-a", "gone-bf16-h100-80gb") is None
    assert kube.get(DEPLOYMENTS, "team-a", "chat-bf16-h100-80gb") is not None
    assert len(kube.requests("DELETE")) == 1


def test_a_dip_in_demand_scales_down_only_after_the_stabilization_window() -> None:
    nodes = [h100("gpu-0")]
    high = decide(Observation(nodes, [endpoint()], signals=signals(demand=5.0)), SETTINGS, REGISTRY, CATALOG, NOW)
    assert high.endpoints[0].replicas == 3  # ceil(5 x 1.2 / 2)
    owned, pods = applied(high)

    def at(t: float, demand: float, before: Decision) -> Decision:
        # Each loop reads only what the cluster holds: the statuses written before (a restart loses nothing).
        eps = observed(before, [endpoint()])
        sig = {k: replace(v, sampled_at=t - 10) for k, v in signals(demand=demand).items()}
        return decide(Observation(nodes, eps, owned, sig, pods=pods), SETTINGS, REGISTRY, CATALOG, t)

    dip = at(NOW + 30, 1.0, high)
    assert dip.endpoints[0].replicas == 3  # the dip is inside the window: no replica removed
    later = at(NOW + 30 + 299, 1.0, dip)
    assert later.endpoints[0].replicas == 3
    done = at(NOW + 30 + 300, 1.0, later)
    assert done.endpoints[0].replicas == 1
    # Up is at once, whatever the window holds.
    assert at(NOW + 60, 9.0, dip).endpoints[0].replicas == 6


def test_the_window_is_configured_in_the_controllers_file() -> None:
    assert parse_config({"scaleDownStabilizationSeconds": 60})[0].scale_down_stabilization_s == 60
    assert parse_config({})[0].scale_down_stabilization_s == 300
    with pytest.raises(InputError, match="scaleDownStabilizationSeconds"):
        parse_config({"scaleDownStabilizationSeconds": "soon"})
    with pytest.raises(InputError, match="scaleDownStabilizationSeconds"):
        parse_config({"scaleDownStabilizationSeconds": -1})


def promised(
    name: str, answer: str, gpu_class: str, eta: float | None = None, generation: int = 3, **spec: Any
) -> dict[str, Any]:
    """An endpoint as the API left it: its answer recorded as the promise, for the spec's `generation`."""
    promise: dict[str, Any] = {
        "answer": answer,
        "variant": "bf16",
        "gpuClass": gpu_class,
        "observedGeneration": generation,
    }
    status: dict[str, Any] = {"phase": "Provisioning" if eta else "Pending", "promise": promise}
    if eta is not None:
        promise["estimatedReadyTime"] = status["estimatedReadyTime"] = rfc3339(eta)
    obj: dict[str, Any] = endpoint(name, status=status, **spec)
    return obj


def test_a_201_keeps_the_capacity_it_was_promised_against_endpoints_placed_with_it() -> None:
    # `alpha` was created with kubectl (no promise) and sorts first; the API answered `chat` 201 on the L40S.
    eps = [endpoint("alpha"), promised("chat", "Created", "L40S")]
    decision = decide(Observation([l40s("l40s-0")], eps, signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    chat = next(d for d in decision.endpoints if d.name == "chat")
    assert (chat.gpu_class, chat.variant, chat.placed, chat.waiting) == ("L40S", "bf16", 1, 0)
    assert decision.statuses[("team-a", "chat")]["promise"]["answer"] == "Created"
    assert decision.events == ()


def test_a_202_keeps_its_eta_when_its_replica_is_placed_on_a_node_that_exists() -> None:
    eps = [promised("chat", "Accepted", "H100-80GB", eta=NOW + 900)]
    decision = decide(Observation([h100("gpu-0")], eps, signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    chat = decision.endpoints[0]
    assert (chat.phase, chat.placed, chat.eta) == ("Pending", 1, NOW + 900)
    assert decision.statuses[("team-a", "chat")]["estimatedReadyTime"] == rfc3339(NOW + 900)


def test_a_promise_is_revised_only_with_a_reason_and_an_event() -> None:
    # A 202 whose ETA has passed while its replica still waits: a new estimate, said why.
    late = decide(
        Observation([], [promised("chat", "Accepted", "H100-80GB", eta=NOW - 10)], signals=signals()),
        SETTINGS,
        REGISTRY,
        CATALOG,
        NOW,
    )
    status = late.statuses[("team-a", "chat")]
    condition = next(c for c in status["conditions"] if c["type"] == "PromiseKept")
    assert (condition["status"], condition["reason"]) == ("False", "Overdue")
    assert late.endpoints[0].eta is not None and late.endpoints[0].eta > NOW
    assert status["promise"]["estimatedReadyTime"] == status["estimatedReadyTime"]
    assert [(e.type, e.reason, e.regarding.name) for e in late.events] == [("Warning", "Overdue", "chat")]
    # A 201 whose L40S went: it waits for a node now, and says so.
    gone = decide(
        Observation([], [promised("chat", "Created", "L40S")], signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW
    )
    assert gone.endpoints[0].phase == "Provisioning"
    assert [e.reason for e in gone.events] == ["CapacityGone"]
    assert gone.statuses[("team-a", "chat")]["promise"]["answer"] == "Accepted"


def test_an_endpoint_that_stays_overdue_is_not_revised_again_each_loop() -> None:
    # A 202 whose replica was placed on a node that exists but does not get ready: once its ETA has
    # passed it is revised once, with a reason; a quiet loop after that writes nothing and says nothing.
    eps = [promised("chat", "Accepted", "H100-80GB", eta=NOW - 10)]
    nodes = [h100("gpu-0")]
    first = decide(Observation(nodes, eps, signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    assert [e.reason for e in first.events] == ["Overdue"]
    owned, pods = applied(first, ready=False)
    decisions = [first]
    for at in (NOW + 180, NOW + 360):  # each past the revised ETA
        obs = Observation(nodes, observed(decisions[-1], eps), owned, signals(age_s=NOW - at + 10), pods=pods)
        decisions.append(decide(obs, SETTINGS, REGISTRY, CATALOG, at))
    second, third = decisions[1:]
    assert second.endpoints[0].phase != "Ready"
    assert second.events == third.events == ()
    key = ("team-a", "chat")
    assert second.statuses[key]["promise"] == first.statuses[key]["promise"]
    assert json.dumps(third.statuses[key], sort_keys=True) == json.dumps(second.statuses[key], sort_keys=True)
    assert json.dumps(third.objects, sort_keys=True) == json.dumps(second.objects, sort_keys=True)


def test_the_controller_records_a_revised_promise_as_an_event(kube: KubeCluster) -> None:
    kube.put(ENDPOINTS, promised("chat", "Accepted", "H100-80GB", eta=NOW - 10, generation=1))  # kmock's first
    outcome = controller(kube, FixedSignals(demand=1.0)).reconcile()
    assert outcome.errors == []
    events = kube.all("events.k8s.io/v1/events")
    assert [(e["reason"], e["regarding"]["name"]) for e in events] == [("Overdue", "chat")]
    status = kube.get(ENDPOINTS, "team-a", "chat")["status"]  # type: ignore[index]
    assert status["estimatedReadyTime"] > rfc3339(NOW)


@pytest.mark.parametrize(("lo", "limit"), [(2, {"minAvailable": 2}), (0, {"maxUnavailable": 1})])
def test_each_endpoint_has_a_disruption_budget_at_its_minimum(lo: int, limit: dict[str, int]) -> None:
    obs = Observation([h100("gpu-0")], [endpoint(lo=lo)], signals=signals())
    (pdb,) = [o for o in decide(obs, SETTINGS, REGISTRY, CATALOG, NOW).objects if o["kind"] == "PodDisruptionBudget"]
    selector = {"egs.io/request": "chat", "app.kubernetes.io/component": "server"}
    assert pdb["spec"] == {**limit, "selector": {"matchLabels": selector}}
    assert pdb["metadata"]["ownerReferences"][0]["uid"] == "uid-chat"
    validate(pdb)


CONSOLIDATING = replace(SETTINGS, consolidation=ConsolidationSettings(enabled=True))


def test_consolidation_moves_an_endpoint_to_a_cheaper_class_make_before_break() -> None:
    # The L40S was taken by a training job when `chat` came: it runs on an H100 ($6.88/h).
    nodes = [l40s("l40s-0"), h100("gpu-0")]
    first = decide(Observation(nodes, [endpoint()], signals=signals(), pods=[training("l40s-0", 1)]), *AT)
    assert first.endpoints[0].gpu_class == "H100-80GB"
    owned, pods = applied(first)
    eps = observed(first, [endpoint()])
    # The job ends. Without consolidation the replica stays where it serves.
    assert decide(Observation(nodes, eps, owned, signals(), pods=pods), *AT).objects == first.objects
    moved = decide(Observation(nodes, eps, owned, signals(), pods=pods), CONSOLIDATING, *AT[1:])
    chat = moved.endpoints[0]
    assert (chat.gpu_class, chat.ready_replicas) == ("L40S", 1)  # the H100 replica serves it meanwhile
    assert moved.deletions == ()  # the H100 replica serves until the L40S one does
    assert moved.statuses[("team-a", "chat")]["consolidation"]["replacing"] == ["chat-bf16-h100-80gb"]
    assert [e.reason for e in moved.events] == ["Consolidating"]
    # Next loop (a restart, say): the move is read back; the old replica is no incumbent, still holds its GPU.
    owned_new, pods_new = applied(moved, ready=False)
    eps = observed(moved, eps)
    later = decide(Observation(nodes, eps, owned + owned_new, signals(), pods=pods + pods_new), CONSOLIDATING, *AT[1:])
    assert (later.endpoints[0].gpu_class, later.deletions, later.events) == ("L40S", (), ())
    assert later.inventory.node("gpu-0").gpus[0].holders == 1
    # The L40S replica serves: the H100 one goes.
    owned_new, pods_new = applied(moved, ready=True)
    eps = observed(later, eps)
    done = decide(Observation(nodes, eps, owned + owned_new, signals(), pods=pods + pods_new), CONSOLIDATING, *AT[1:])
    assert [d[3] for d in done.deletions] == ["chat-bf16-h100-80gb"]
    assert done.endpoints[0].phase == "Ready"


def conditions(decision: Decision, name: str = "chat") -> dict[str, tuple[str, str, str]]:
    status = decision.statuses[("team-a", name)]
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}


def test_an_endpoint_being_moved_stays_ready_on_the_replicas_it_replaces_and_says_where_it_moves() -> None:
    # Make-before-break: the H100 replica serves every request until the L40S one does. The status counted
    # the L40S workload alone (0 ready, Pending, Ready False): every move flapped a served endpoint.
    nodes = [l40s("l40s-0"), h100("gpu-0")]
    first = decide(Observation(nodes, [endpoint()], signals=signals(), pods=[training("l40s-0", 1)]), *AT)
    owned, pods = applied(first)
    eps = observed(first, [endpoint()])
    moved = decide(Observation(nodes, eps, owned, signals(), pods=pods), CONSOLIDATING, *AT[1:])
    owned_new, pods_new = applied(moved, ready=False)
    eps = observed(moved, eps)
    later = decide(Observation(nodes, eps, owned + owned_new, signals(), pods=pods + pods_new), CONSOLIDATING, *AT[1:])
    for loop in (moved, later):
        status = loop.statuses[("team-a", "chat")]
        assert (status["phase"], status["readyReplicas"], status["desiredReplicas"]) == ("Ready", 1, 1)
        assert conditions(loop)["Ready"][0] == "True"
        state, reason, message = conditions(loop)["Consolidating"]
        assert (state, reason) == ("True", "MovingToCheaperShape")
        assert message.startswith("moving to bf16 on L40S: 0 of 1 new replicas ready")
    # The L40S replica serves: the counts are its own, and the condition goes with the move.
    owned_new, pods_new = applied(moved, ready=True)
    done = decide(
        Observation(nodes, observed(later, eps), owned + owned_new, signals(), pods=pods + pods_new),
        CONSOLIDATING,
        *AT[1:],
    )
    assert (done.endpoints[0].phase, done.endpoints[0].ready_replicas) == ("Ready", 1)
    assert "Consolidating" not in conditions(done)
    # A spec changed mid-move (a new generation): the replaced replica is the old spec's, and serves (counted)
    # until the new spec's does, a change of shape now, not a move.
    changed = observed(later, eps)
    changed[0]["metadata"]["generation"] = 4
    owned_new, pods_new = applied(moved, ready=False)
    obs = Observation(nodes, changed, owned + owned_new, signals(), pods=pods + pods_new)
    respec = decide(obs, CONSOLIDATING, *AT[1:])
    assert (respec.endpoints[0].ready_replicas, respec.endpoints[0].phase) == (1, "Ready")
    assert respec.endpoints[0].shape_change == ("chat-bf16-h100-80gb",)
    assert conditions(respec)["Progressing"][:2] == ("True", "ChangingShape")
    assert "Consolidating" not in conditions(respec)


def test_a_moved_endpoint_whose_new_replicas_wait_for_a_node_is_ready_while_the_replaced_ones_serve() -> None:
    ep = ie.parse(endpoint(), checked=True)
    new = Placement("chat", 0, ep.model, "bf16", "bf16", 1.0, "L40S", "exclusive", 1, 1000, (Worker("new", (0,)),))
    moving = endpoint_decision(ep, (1, None), [], [new], [], Workload(1, 0), NOW + 300, Workload(1, 1))
    assert (moving.phase, moving.ready_replicas, moving.moving) == (
        "Ready",
        1,
        "moving to bf16 on L40S: 0 of 1 new replicas ready; the replaced ones serve until they are",
    )
    # Without a move, only the intended (waiting) replica counts.
    waiting = endpoint_decision(ep, (1, None), [], [new], [], Workload(1, 0), NOW + 300)
    assert (waiting.phase, waiting.ready_replicas, waiting.moving) == ("Provisioning", 0, None)


def test_consolidation_keeps_to_its_budget_and_its_threshold() -> None:
    nodes = [l40s("l40s-0", gpus=2), h100("gpu-0")]
    eps = [endpoint("alpha"), endpoint("beta")]
    busy = [training("l40s-0", 2)]
    first = decide(Observation(nodes, eps, signals=signals(), pods=busy), *AT)
    owned, pods = applied(first)
    eps = observed(first, eps)
    picky = replace(CONSOLIDATING, consolidation=ConsolidationSettings(enabled=True, min_saving_fraction=0.9))
    assert decide(Observation(nodes, eps, owned, signals(), pods=pods), picky, *AT[1:]).events == ()
    moved = decide(Observation(nodes, eps, owned, signals(), pods=pods), CONSOLIDATING, *AT[1:])
    assert sorted(d.gpu_class or "" for d in moved.endpoints) == ["H100-80GB", "L40S"]  # one move an interval
    # Within the interval the other stays, even with room for it.
    again = decide(Observation(nodes, observed(moved, eps), owned, signals(), pods=pods), CONSOLIDATING, *AT[1:])
    assert [e.reason for e in again.events] == []
    assert sorted(d.gpu_class or "" for d in again.endpoints) == ["H100-80GB", "L40S"]


def test_consolidation_is_configured_in_the_controllers_file() -> None:
    raw = {"enabled": True, "minSavingFraction": 0.3, "maxDisruptionsPerInterval": 2, "interval": 900}
    assert parse_config({"consolidation": raw})[0].consolidation == ConsolidationSettings(True, 0.3, 2, 900.0)
    assert parse_config({})[0].consolidation.enabled is False
    with pytest.raises(InputError, match=r"consolidation.enabled"):
        parse_config({"consolidation": {"enabled": "yes"}})
    with pytest.raises(InputError, match="minSavingFraction"):
        parse_config({"consolidation": {"minSavingFraction": 1.5}})


def test_an_incumbent_keeps_its_gpus_before_other_pods_are_counted() -> None:
    # Where a pod of another workload sits on a node is not in the pod: it is counted on what the
    # incumbents leave, never on them (here a training pod listed as asking for all eight GPUs).
    first = decide(Observation([h100("gpu-0")], [endpoint()], signals=signals()), *AT)
    owned, pods = applied(first)
    eps = observed(first, [endpoint()])
    later = decide(Observation([h100("gpu-0")], eps, owned, signals(), pods=[*pods, training("gpu-0", 8)]), *AT)
    assert later.objects == first.objects
    assert (later.endpoints[0].placed, later.endpoints[0].waiting) == (1, 0)


def test_more_replicas_of_a_running_endpoint_take_its_shape_where_it_fits() -> None:
    nodes = [h100("gpu-0")]
    first = decide(Observation(nodes, [endpoint()], signals=signals()), *AT)
    owned, pods = applied(first)
    # A cheaper L40S joins, and demand asks for a second replica: it goes beside the first, on an H100.
    more = decide(
        Observation([*nodes, l40s("l40s-0")], observed(first, [endpoint()]), owned, signals(3.0), pods=pods), *AT
    )
    assert (more.endpoints[0].replicas, more.endpoints[0].placed) == (2, 2)
    assert set(workloads(more, "chat")) == set(workloads(first, "chat"))


def test_a_replica_moved_off_gpus_kube_scheduler_found_taken_is_not_put_back_on_them_next_loop() -> None:
    # One DPX-partitioned MI300X whose partition the plan counts free but kube-scheduler cannot bind
    # (the churn play's never-Ready MI300X endpoints): the replica is placed there, its pod is
    # Unschedulable, so it is moved to wait for a node; the new pod is not (yet) Unschedulable, and
    # the next loop places it on the partition again: the Deployment flips every loop.
    from scheduler.synthetic import gpu_node

    settings = replace(SETTINGS, classes={"MI300X": SETTINGS.classes["H100-80GB"]})
    nodes = [gpu_node("mi300x-dpx-0", CATALOG.get("MI300X"), 1, partition="dpx_nps1")]
    eps = [endpoint("chat")]
    prev = decide(Observation(nodes, eps, signals=signals()), settings, REGISTRY, CATALOG, NOW)
    shapes = []
    for at in (NOW + 20, NOW + 40, NOW + 60):
        owned, pods = applied(prev, ready=False)
        for p in pods:
            on_partition = not p["spec"].pop("nodeName").startswith("egs-provisioning")
            unschedulable = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]
            p["status"] = {"phase": "Pending", "conditions": unschedulable if on_partition else []}
        obs = Observation(nodes, observed(prev, eps), owned, signals(age_s=NOW - at + 10), pods=pods)
        prev = decide(obs, settings, REGISTRY, CATALOG, at)
        shapes.append(
            [o["metadata"]["annotations"].get("egs.io/sharing") for o in prev.objects if o["kind"] == "Deployment"]
        )
    assert shapes[1] == shapes[2]
