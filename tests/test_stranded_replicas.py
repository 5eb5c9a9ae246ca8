"""A new endpoint is answered from GPUs that a replacement for a pod stranded on a node not Ready holds in the plan.

Until Kubernetes evicts a pod from a node that is not Ready (the node's Ready transition plus the pod's
toleration of the node's NoExecute taint, 300 s by default) the pod counts towards its workload's replicas,
so no pod is made for the replica the decide step places anew in its stead (in the same workload). The
endpoint API, answering from what the plan left, counted those GPUs as held and told a new endpoint to wait
for a node that was never needed; kube-scheduler bound its pod there seconds later (churn seed 3: a 202
promised 692 s, Ready 76 s after its POST). A replacement in another shape is a new workload whose pod is
made at once: it holds its GPUs.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from autoscaler.adapters.api import Services, _Admissions
from autoscaler.adapters.kubernetes import Cluster
from autoscaler.admission import Admitted, admit, capacity, workload_pods
from autoscaler.decide import Decision, Observation, answer_status, decide, rfc3339
from autoscaler.pods import DEFAULT_TOLERATION_S, stranded
from localplay.kube_standin import KubeCluster
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, h100, signals
from tests.test_reconcile_state import applied, l40s, observed

ENDPOINTS = "egs.dev/v1alpha1/inferenceendpoints"
WENT = NOW + 30.0
"""When the node serving `alpha` stopped being Ready."""


def not_ready(node: dict[str, Any], since: float | None = WENT, status: str = "Unknown") -> dict[str, Any]:
    out = copy.deepcopy(node)
    condition: dict[str, Any] = {"type": "Ready", "status": status}
    if since is not None:
        condition["lastTransitionTime"] = rfc3339(since)
    out["status"]["conditions"] = [condition]
    return out


def alpha_on_a_lost_node(others: list[dict[str, Any]]) -> tuple[Observation, str]:
    """`alpha` served on a one-GPU L40S node beside `others`, and that node gone NotReady at `WENT`: the
    cluster as observed then, and the lost node's name."""
    nodes = [l40s("l40s-0"), *others]
    eps = [endpoint("alpha")]
    first = decide(Observation(nodes, eps, signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    owned, pods = applied(first)
    assert {p["spec"]["nodeName"] for p in pods} == {"l40s-0"}
    lost = [not_ready(nodes[0]), *others]
    return Observation(lost, observed(first, eps), owned, signals(), pods=pods), "l40s-0"


def answer(obs: Observation, at: float, until: float) -> tuple[Decision, Admitted]:
    """The decision at `at`, and the API's answer to a new endpoint `beta` from it, with the pods stranded until
    `until`."""
    decision = decide(obs, SETTINGS, REGISTRY, CATALOG, at)
    pods = workload_pods(obs.pods, obs.owned, CATALOG, stranded(obs.pods, obs.nodes, until))
    return decision, admit(capacity(decision, CATALOG, pods), endpoint("beta"), SETTINGS, REGISTRY, CATALOG, at)


def nodes_of(decision: Decision, name: str) -> list[str]:
    return [w.node for p in decision.placed.placements if p.request == name for w in p.workers]


def test_a_new_endpoint_is_answered_201_on_the_gpus_planned_for_a_stranded_replica() -> None:
    obs, _ = alpha_on_a_lost_node([l40s("l40s-1")])
    decision, beta = answer(obs, WENT + 60, WENT + 120)
    assert nodes_of(decision, "alpha") == ["l40s-1"]  # the plan puts its replacement there, in its workload
    assert beta.decision.serves_now
    assert [w.node for p in beta.placed for w in p.workers] == ["l40s-1"]
    # Counted as held, as before: beta waits for a node.
    assert not admit(capacity(decision, CATALOG), endpoint("beta"), SETTINGS, REGISTRY, CATALOG, WENT + 60).placed


def test_the_controller_keeps_the_201_and_the_stranded_replica_waits_for_its_eviction() -> None:
    obs, _ = alpha_on_a_lost_node([l40s("l40s-1")])
    _, beta = answer(obs, WENT + 60, WENT + 120)
    answered = {**endpoint("beta"), "status": answer_status(beta.decision, 3, beta.placed)}
    later = decide(replace(obs, endpoints=[*obs.endpoints, answered]), SETTINGS, REGISTRY, CATALOG, WENT + 80)
    by_name = {d.name: d for d in later.endpoints}
    assert (by_name["beta"].placed, nodes_of(later, "beta")) == (1, ["l40s-1"])
    assert (by_name["alpha"].placed, by_name["alpha"].waiting) == (0, 1)


def test_gpus_planned_for_a_stranded_replica_are_held_once_its_eviction_is_near() -> None:
    obs, _ = alpha_on_a_lost_node([l40s("l40s-1")])
    _, beta = answer(obs, WENT + 60, WENT + DEFAULT_TOLERATION_S)
    assert not beta.decision.serves_now


def test_a_replacement_in_another_shape_holds_its_gpus() -> None:
    # No other L40S: alpha's replacement goes to an H100, a new workload whose pod is made at once.
    obs, _ = alpha_on_a_lost_node([h100("gpu-0")])
    decision = decide(obs, SETTINGS, REGISTRY, CATALOG, WENT + 60)
    assert nodes_of(decision, "alpha") == ["gpu-0"]
    pods = workload_pods(obs.pods, obs.owned, CATALOG, stranded(obs.pods, obs.nodes, WENT + 120))
    held = [g.index for g in capacity(decision, CATALOG, pods).free.node("gpu-0").gpus if g.holders]
    assert held == [g.index for g in capacity(decision, CATALOG).free.node("gpu-0").gpus if g.holders] != []


def test_the_endpoint_api_answers_201_there_from_the_cluster(kube: KubeCluster) -> None:
    obs, _ = alpha_on_a_lost_node([l40s("l40s-1")])
    for path, objects in (("v1/nodes", obs.nodes), (ENDPOINTS, obs.endpoints), ("v1/pods", obs.pods)):
        for obj in objects:
            kube.put(path, dict(obj))
    for obj in obs.owned:
        kube.put(f"{obj['apiVersion']}/{obj['kind'].lower()}s", dict(obj))
    services = Services(Cluster(kube.api_client()), SETTINGS, REGISTRY, CATALOG, clock=lambda: WENT + 60)
    decision, created, status = _Admissions(services).admit(endpoint("beta"))
    assert created is not None and decision.serves_now
    assert [w["node"] for r in status["promise"]["placements"] for w in r["workers"]] == ["l40s-1"]


def pod(node: str, name: str = "p", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "team-a"}, "spec": {"nodeName": node, **spec}}


def test_a_pod_is_stranded_until_its_toleration_of_the_nodes_taint_runs_out() -> None:
    down, up = not_ready(l40s("down")), l40s("up")
    assert stranded([pod("down"), pod("up", "q")], [down, up], WENT + 299) == {("team-a", "p")}
    assert stranded([pod("down")], [down], WENT + DEFAULT_TOLERATION_S) == frozenset()
    # Its own toleration of the taint the Ready status stands for (Unknown: unreachable; False: not-ready).
    unreachable = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}
    assert stranded([pod("down", tolerations=[{**unreachable, "tolerationSeconds": 10}])], [down], WENT + 11) == set()
    assert stranded([pod("down", tolerations=[unreachable])], [down], WENT + 1e6) == {("team-a", "p")}  # for good
    kubelet_says = not_ready(l40s("down"), status="False")
    assert stranded([pod("down", tolerations=[{**unreachable, "tolerationSeconds": 10}])], [kubelet_says], WENT + 11)
    # Being deleted (evicted, its replacement made), or on a node whose transition is not known: not stranded.
    deleted = pod("down")
    deleted["metadata"]["deletionTimestamp"] = rfc3339(WENT + 1)
    assert stranded([deleted], [down], WENT + 2) == frozenset()
    assert stranded([pod("down")], [not_ready(l40s("down"), since=None)], WENT) == frozenset()
