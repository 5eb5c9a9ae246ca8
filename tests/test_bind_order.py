"""kube-scheduler's order is not the controller's: a pod that waits for a node never takes a 201's GPUs.

The race (churn seed 4, a reposted 202 beside a reposted 201 on h100-1): the controller placed a 201 on the
GPU it was answered and a 202's first replica on the other warm GPU, its second to wait for a node, and wrote
the 201's Deployment first. kube-scheduler met the 202's pods first (the ReplicaSets make pods concurrently,
and the play's queue follows the Deployments' last writes, its own status writes among them), bound both,
one on the GPU of the 201, and the next loop found the 201's room held by a bound replica and revised its
promise (`CapacityGone`). Covers: the answers through the real API, the loops of the real controller on the
Kubernetes stand-in, kube-scheduler played in the order least kind to the 201; the waiting replica asked for
once the 201's pod is bound. Skips: pods of other workloads than EGS's, which the controller cannot hold back.
"""

from __future__ import annotations

import copy
import time
from typing import Any

from fastapi.testclient import TestClient

from autoscaler.adapters.api import Services, create_app
from autoscaler.adapters.kubernetes import Cluster
from autoscaler.kubetime import parse_time
from autoscaler.pods import requests
from localplay.kube_standin import KubeCluster
from scheduler.synthetic import gpu_node
from tests.clock import Clock
from tests.test_controller import DEPLOYMENTS, ENDPOINTS, SETTINGS, FixedSignals, controller
from tests.test_decide import CATALOG, REGISTRY
from tests.test_endpoint_api import body, post
from tests.test_endpoint_api import kube as kube  # kmock, as the API's tests start it

GPU = "nvidia.com/gpu"
REQUEST = "egs.io/request-name"


def two_gpus(name: str) -> dict[str, Any]:
    return gpu_node(name, CATALOG.get("H100-80GB"), 2)


def schedule(kube: KubeCluster, first: str) -> None:
    """The ReplicaSets and kube-scheduler, played: each Deployment's pods made up to its replicas, those of
    the endpoint `first` first, each bound to a node with GPUs left for it (kube-scheduler binds wherever a
    pod fits), else left Pending."""
    pods = kube.all("v1/pods")
    free = {n["metadata"]["name"]: int(n["status"]["allocatable"][GPU]) for n in kube.all("v1/nodes")}
    for pod in pods:
        free[pod["spec"]["nodeName"]] -= requests(pod).get(GPU, 0)
    names = {p["metadata"]["name"] for p in pods}
    deployments = sorted(endpoint_deployments(kube), key=lambda d: d["metadata"]["annotations"][REQUEST] != first)
    for deployment in deployments:
        template = copy.deepcopy(deployment["spec"]["template"])
        for i in range(deployment["spec"]["replicas"]):
            name = f"{deployment['metadata']['name']}-{i}"
            if name in names:
                continue
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "team-a", "labels": template["metadata"]["labels"]},
                "spec": template["spec"],
                "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]},
            }
            node = next((n for n, left in free.items() if left >= requests(pod).get(GPU, 0)), None)
            if node is not None:
                free[node] -= requests(pod).get(GPU, 0)
                pod["spec"] = {**pod["spec"], "nodeName": node}
            kube.put("v1/pods", pod)


def endpoint_deployments(kube: KubeCluster, endpoint: str | None = None) -> list[dict[str, Any]]:
    """The endpoints' Deployments (not the warm pool's), or one endpoint's."""
    found = [d for d in kube.all(DEPLOYMENTS) if REQUEST in (d["metadata"].get("annotations") or {})]
    return [d for d in found if endpoint in (None, d["metadata"]["annotations"][REQUEST])]


def bound(kube: KubeCluster, endpoint: str) -> list[str]:
    return [
        p["spec"].get("nodeName", "")
        for p in kube.all("v1/pods")
        if p["metadata"]["labels"].get("egs.io/request") == endpoint
    ]


def test_a_pod_that_waits_for_a_node_is_asked_for_only_once_the_201_beside_it_is_bound(kube: KubeCluster) -> None:
    kube.put("v1/nodes", two_gpus("gpu-0"))
    clock = Clock(time.time())  # near the API server's creationTimestamps: both endpoints are new
    cluster = Cluster(kube.api_client())
    api = TestClient(create_app(Services(cluster, SETTINGS, REGISTRY, CATALOG, clock=clock)))
    assert post(api, body("beta", replicas={"min": 1, "max": 1})).status_code == 201  # one GPU of gpu-0
    # gamma: the other GPU of gpu-0, and one on a node to come
    assert post(api, body("gamma", replicas={"min": 2, "max": 2})).status_code == 202
    ctl = controller(kube, FixedSignals(demand=1.0, clock=clock), clock=clock)

    assert ctl.reconcile().errors == []
    schedule(kube, first="gamma")  # kube-scheduler meets gamma's pods before beta's
    assert ctl.reconcile().errors == []

    beta = kube.get(ENDPOINTS, "team-a", "beta")
    assert beta is not None
    status = beta["status"]
    assert status["phase"] != "Provisioning", status
    assert not [c for c in status.get("conditions", ()) if c.get("reason") == "CapacityGone"], status
    assert bound(kube, "beta") == ["gpu-0"]
    # gamma's replica that waits for a node is asked for now that beta's pod is bound: it finds no room.
    assert [d["spec"]["replicas"] for d in endpoint_deployments(kube, "gamma")] == [2]
    schedule(kube, first="gamma")
    assert sorted(bound(kube, "gamma")) == ["", "gpu-0"]
    gamma = kube.get(ENDPOINTS, "team-a", "gamma")
    assert gamma is not None
    assert gamma["status"]["phase"] == "Provisioning"


def test_a_201_whose_pod_is_never_made_holds_the_waiting_pods_of_its_class_two_loops_at_most(
    kube: KubeCluster,
) -> None:
    kube.put("v1/nodes", two_gpus("gpu-0"))
    clock = Clock(time.time())
    api = TestClient(create_app(Services(Cluster(kube.api_client()), SETTINGS, REGISTRY, CATALOG, clock=clock)))
    assert post(api, body("beta", replicas={"min": 1, "max": 1})).status_code == 201
    assert post(api, body("gamma", replicas={"min": 2, "max": 2})).status_code == 202
    ctl = controller(kube, FixedSignals(demand=1.0, clock=clock), clock=clock)
    assert ctl.reconcile().errors == []
    assert [d["spec"]["replicas"] for d in endpoint_deployments(kube, "gamma")] == [1]  # beta's pod is not bound

    # No pod of beta's is ever made (a quota, a webhook refusing it): two loops on, gamma's is asked for. Two
    # loops from beta's creation as the API server dates it (to the second, maybe the second after `clock`'s
    # start): from `clock`'s start, the test failed whenever a second began between it and the POST.
    created = parse_time(kube.get(ENDPOINTS, "team-a", "beta")["metadata"]["creationTimestamp"])  # type: ignore[index]
    clock.t = created + 2 * SETTINGS.eta.step_s
    assert ctl.reconcile().errors == []
    assert [d["spec"]["replicas"] for d in endpoint_deployments(kube, "gamma")] == [2]
