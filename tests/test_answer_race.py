"""An answer of `egs api` against a controller loop in flight: a 201 is never demoted by a decision made
from a listing older than it.

The race (churn seed 4): a loop lists the InferenceEndpoints, the API answers a new endpoint 201 on warm
GPUs, and the loop, deciding without that endpoint, gives the same GPUs to another replica and applies it;
kube-scheduler binds that replica, which then keeps its place, and the next loop finds the 201's room
taken and revises its promise (`CapacityGone`). Covers: the answer made mid-loop, through the real API
and the real controller on kmock, with kube-scheduler played between the loops; the loop that saw no new
endpoint reads nothing more. Skips: an answer made between the controller's last check and its apply.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Collection
from typing import Any

from fastapi.testclient import TestClient

from autoscaler.adapters.api import Services, create_app
from autoscaler.adapters.kubernetes import Cluster
from autoscaler.controller import Controller, owned_kinds
from localplay.kube_standin import KubeCluster
from scheduler.synthetic import gpu_node
from tests.clock import Clock
from tests.test_controller import DEPLOYMENTS, ENDPOINTS, SETTINGS, FixedSignals
from tests.test_decide import CATALOG, NOW, REGISTRY, endpoint
from tests.test_endpoint_api import body, post
from tests.test_endpoint_api import kube as kube  # kmock, as the API's tests start it


class MidLoop(Cluster):
    """The controller's adapter, running `then` right after a loop has listed everything (once, or each
    time when `always`)."""

    def __init__(self, *args: Any, then: Callable[[], None], always: bool = False, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.then: Callable[[], None] | None = then
        self.always = always
        self.endpoint_lists = 0

    def endpoints(self, namespace: str | None = None) -> list[dict[str, Any]]:
        self.endpoint_lists += 1
        return super().endpoints(namespace)

    def owned(self, kinds: Collection[str] | None = None) -> list[dict[str, Any]]:
        owned = super().owned(kinds)  # the loop's last list (`Controller._observe`, `_observed_again`)
        then = self.then
        self.then = then if self.always else None
        if then is not None:
            then()
        return owned


def leading(kube: KubeCluster, then: Callable[[], None], always: bool = False) -> tuple[Controller, MidLoop]:
    """A controller replica that leads, on a `MidLoop` adapter running `then` mid-loop."""
    cluster = MidLoop(kube.api_client(), owned_kinds=owned_kinds(SETTINGS), then=then, always=always)
    ctl = Controller(cluster, FixedSignals(demand=1.0), SETTINGS, REGISTRY, CATALOG, "a", clock=Clock(NOW))
    ctl.elector.step()
    return ctl, cluster


def one_gpu(name: str) -> dict[str, Any]:
    return gpu_node(name, CATALOG.get("H100-80GB"), 1)


def answered(api: TestClient, name: str) -> dict[str, Any]:
    """The API's answer to a new endpoint of one replica, with its status code."""
    answer = post(api, body(name, replicas={"min": 1, "max": 1}))
    assert answer.status_code in (201, 202), answer.text
    return {"status": answer.status_code, **answer.json()}


def answered_on(kube: KubeCluster, name: str) -> set[str]:
    stored = kube.get(ENDPOINTS, "team-a", name)
    assert stored is not None
    return {w["node"] for p in stored["status"]["promise"]["placements"] for w in p["workers"]}


def schedule(kube: KubeCluster) -> None:
    """kube-scheduler and the ReplicaSets, played: each replica a Deployment plans on a Node that is there
    gets its pod, bound to that node (not Ready yet: its model loads)."""
    nodes = {n["metadata"]["name"] for n in kube.all("v1/nodes")}
    bound = {p["metadata"]["name"] for p in kube.all("v1/pods")}
    for deployment in kube.all(DEPLOYMENTS):
        meta = deployment["metadata"]
        if meta["namespace"] != "team-a":
            continue
        template = copy.deepcopy(deployment["spec"]["template"])
        for i, replica in enumerate(json.loads(meta["annotations"]["egs.io/placement"])):
            node, name = replica["workers"][0][0], f"{meta['name']}-{i}"
            if node in nodes and name not in bound:
                pod = {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {"name": name, "namespace": "team-a", "labels": template["metadata"]["labels"]},
                    "spec": {**template["spec"], "nodeName": node},
                    "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]},
                }
                kube.put("v1/pods", pod)


def test_a_201_answered_while_a_loop_is_in_flight_is_not_demoted_by_it(kube: KubeCluster) -> None:
    kube.put("v1/nodes", one_gpu("gpu-0"))
    kube.put("v1/nodes", one_gpu("gpu-1"))
    # The API's capacity is built at its first POST: gamma takes one GPU, one is left warm.
    api = TestClient(create_app(Services(Cluster(kube.api_client()), SETTINGS, REGISTRY, CATALOG, clock=lambda: NOW)))
    assert answered(api, "gamma")["status"] == 201
    # alpha, created with kubectl, has no promise: the API's capacity (built before it) does not count it.
    kube.put(ENDPOINTS, endpoint("alpha", lo=1, hi=1))
    answers: list[dict[str, Any]] = []
    ctl, _ = leading(kube, then=lambda: answers.append(answered(api, "beta")))

    # The loop lists gamma and alpha; beta is answered 201 on the GPU left before the loop acts.
    first = ctl.reconcile()
    assert first.errors == []
    assert answers[0]["status"] == 201
    beta_on = answered_on(kube, "beta")
    assert beta_on.isdisjoint(answered_on(kube, "gamma"))
    schedule(kube)
    second = ctl.reconcile()
    assert second.errors == []

    beta = kube.get(ENDPOINTS, "team-a", "beta")
    assert beta is not None
    status = beta["status"]
    assert status["promise"]["answer"] == "Created", status
    assert status["phase"] != "Provisioning", status
    assert not [c for c in status.get("conditions", ()) if c.get("reason") == "CapacityGone"]
    pods = {p["metadata"]["labels"]["egs.io/request"]: p["spec"]["nodeName"] for p in kube.all("v1/pods")}
    assert pods.get("beta") in beta_on  # beta's pod is bound on the GPU it was answered
    assert "alpha" not in pods  # alpha, which nobody was told anything, waits for a node


def test_a_loop_that_applies_nothing_new_lists_the_endpoints_once(kube: KubeCluster) -> None:
    kube.put("v1/nodes", one_gpu("gpu-0"))
    kube.put(ENDPOINTS, endpoint("alpha", lo=1, hi=1))
    ctl, cluster = leading(kube, then=lambda: None)
    ctl.reconcile()  # alpha's workload is new: checked once more before it is applied
    assert cluster.endpoint_lists == 2
    schedule(kube)
    quiet = ctl.reconcile()
    assert (quiet.writes, quiet.errors) == (0, [])
    assert cluster.endpoint_lists == 3


def test_endpoints_created_during_every_listing_delay_a_loop_by_one_decision_at_most(kube: KubeCluster) -> None:
    kube.put("v1/nodes", one_gpu("gpu-0"))
    kube.put(ENDPOINTS, endpoint("alpha", lo=1, hi=1))
    posted = iter(range(100))
    ctl, cluster = leading(
        kube, then=lambda: kube.put(ENDPOINTS, endpoint(f"ep-{next(posted)}", lo=1, hi=1)), always=True
    )
    outcome = ctl.reconcile()
    assert outcome.errors == []
    assert cluster.endpoint_lists == 2  # listed, then checked once: ep-0 found, decided again, and acted
    written = {d["metadata"]["annotations"].get("egs.io/request-name") for d in kube.all(DEPLOYMENTS)}
    assert {"alpha", "ep-0"} <= written
    assert "ep-1" not in written  # created during the second listing: it waits for the next loop
