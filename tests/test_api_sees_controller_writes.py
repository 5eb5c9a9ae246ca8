"""`egs api` answers from a capacity that has seen the controller's own writes: a 201 is never given room the
controller placed a replica on after the capacity was built.

The window (left open by tests/test_answer_race.py): the API answers from a capacity it rebuilds every
`--capacity-ttl`; the controller, between two rebuilds, applies a workload that places a replica anew where
the capacity counts the GPUs free (a scale-up on demand, which the API, reading no metrics, never plans; an
endpoint created with kubectl). kube-scheduler binds that replica, the API answers the next POST 201 on the
same GPUs, and the next loop finds the 201's room held and revises its promise (`CapacityGone`). Covers:
both through the real API and the real controller on the Kubernetes stand-in, with kube-scheduler played;
a workload the controller writes as the capacity planned it (an answer's) builds nothing again. Skips: an
answer made between the controller's last listing and its apply (docs/benchmark-notes.md, "The answer's
three windows", says why it stays open).
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from autoscaler.adapters.api import Services, create_app
from autoscaler.adapters.kubernetes import Cluster
from localplay.kube_standin import KubeCluster
from scheduler.synthetic import gpu_node
from tests.test_answer_race import answered, schedule
from tests.test_controller import ENDPOINTS, SETTINGS, FixedSignals, controller
from tests.test_decide import CATALOG, NOW, REGISTRY, endpoint
from tests.test_endpoint_api import body, post
from tests.test_endpoint_api import kube as kube  # kmock, as the API's tests start it


class Builds(Cluster):
    """The API's adapter, counting the capacity's builds (each lists the GPU pods once; a POST lists the endpoints)."""

    builds = 0

    def gpu_pods(self) -> list[dict[str, Any]]:
        self.builds += 1
        return super().gpu_pods()


def api_on(kube: KubeCluster) -> tuple[TestClient, Builds]:
    """The API, its clock stopped: its capacity never ages, so only what it sees of the cluster rebuilds it."""
    cluster = Builds(kube.api_client())
    return TestClient(create_app(Services(cluster, SETTINGS, REGISTRY, CATALOG, clock=lambda: NOW))), cluster


def demoted(kube: KubeCluster, name: str) -> list[dict[str, Any]]:
    stored = kube.get(ENDPOINTS, "team-a", name)
    assert stored is not None
    status = stored["status"]
    return [c for c in status.get("conditions", ()) if c.get("reason") == "CapacityGone"] + (
        [status] if status.get("phase") == "Provisioning" and status["promise"]["answer"] == "Created" else []
    )


def test_no_201_is_answered_on_room_a_scale_up_took_after_the_capacity_was_built(kube: KubeCluster) -> None:
    kube.put("v1/nodes", gpu_node("gpu-0", CATALOG.get("H100-80GB"), 2))
    api, _ = api_on(kube)
    assert post(api, body("alpha", replicas={"min": 1, "max": 2})).status_code == 201  # the capacity is built
    ctl = controller(kube, FixedSignals(demand=3.0))  # two replicas' demand: the controller scales alpha up
    assert ctl.reconcile().errors == []
    schedule(kube)
    assert ctl.reconcile().errors == []

    beta = answered(api, "beta")
    schedule(kube)
    assert ctl.reconcile().errors == []
    assert beta["status"] == 202  # both GPUs serve alpha: beta waits for a node
    assert demoted(kube, "beta") == []


def test_no_201_is_answered_on_room_given_to_an_endpoint_created_with_kubectl(kube: KubeCluster) -> None:
    kube.put("v1/nodes", gpu_node("gpu-0", CATALOG.get("H100-80GB"), 1))
    kube.put("v1/nodes", gpu_node("gpu-1", CATALOG.get("H100-80GB"), 1))
    api, _ = api_on(kube)
    assert answered(api, "gamma")["status"] == 201  # the capacity is built: one GPU left
    kube.put(ENDPOINTS, endpoint("alpha", lo=1, hi=1))  # no answer, no promise: the capacity knows nothing of it
    ctl = controller(kube, FixedSignals(demand=1.0))
    assert ctl.reconcile().errors == []  # alpha gets the GPU left

    beta = answered(api, "beta")
    schedule(kube)
    assert ctl.reconcile().errors == []
    assert beta["status"] == 202
    assert demoted(kube, "beta") == []


def test_workloads_written_as_the_capacity_planned_them_build_nothing_again(kube: KubeCluster) -> None:
    kube.put("v1/nodes", gpu_node("gpu-0", CATALOG.get("H100-80GB"), 4))
    api, cluster = api_on(kube)
    assert answered(api, "alpha")["status"] == 201
    ctl = controller(kube, FixedSignals(demand=1.0))
    assert ctl.reconcile().errors == []  # alpha's workload, on the GPU it was answered
    schedule(kube)
    assert answered(api, "beta")["status"] == 201
    assert ctl.reconcile().errors == []
    assert answered(api, "gamma")["status"] == 201
    assert cluster.builds == 1


def test_workloads_of_endpoints_the_other_api_replica_answered_build_nothing_again(kube: KubeCluster) -> None:
    # The chart runs two replicas: the workloads written for the other one's answers are counted as answers (it
    # adopts them first), not taken for the controller placing replicas of its own.
    kube.put("v1/nodes", gpu_node("gpu-0", CATALOG.get("H100-80GB"), 4))
    (first, first_cluster), (second, _) = api_on(kube), api_on(kube)
    assert answered(first, "alpha")["status"] == 201
    assert answered(second, "beta")["status"] == 201
    ctl = controller(kube, FixedSignals(demand=1.0))
    assert ctl.reconcile().errors == []  # alpha's and beta's workloads, on the GPUs they were answered
    assert answered(first, "gamma")["status"] == 201
    assert first_cluster.builds == 1
