"""Two POSTs of one name at once (a client that retries on its own timeout, a double submit).

Kubernetes' create is not idempotent: the second is refused 409 AlreadyExists. The endpoint API takes
the object a failed POST left behind (same spec, no status yet) as its own, so that a client retrying
after a 503 is answered as the first try would have been. A POST still in flight leaves the same object
(created, its status not yet written): the second POST was answered 201 or 202 from the capacity less
the first's GPUs, a promise of its own, written over the first's status, and the first's GPUs taken
twice from the capacity the next POSTs are answered from. At another replica of the API (the chart runs
two), which never knew the first POST was in flight, the same held until a replica took as its own only
what a POST of its own left behind.
"""

from __future__ import annotations

import threading
from typing import Any

from fastapi.testclient import TestClient

from autoscaler.adapters.api import Services, create_app
from autoscaler.adapters.kubernetes import Cluster
from localplay.kube_standin import KubeCluster
from scheduler.synthetic import gpu_node
from tests.test_decide import CATALOG, REGISTRY, SETTINGS
from tests.test_endpoint_api import ALICE, ENDPOINTS, NOW, body, kube  # noqa: F401 (the fixture)


class HeldStatus(Cluster):
    """The adapter, whose first status write waits until `release` is set (a slow API server)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.writing, self.release = threading.Event(), threading.Event()

    def apply_status(self, namespace: str, name: str, status: Any, uid: str = "") -> dict[str, Any]:
        if not self.writing.is_set():
            self.writing.set()
            assert self.release.wait(10)
        return super().apply_status(namespace, name, status, uid)


def test_a_second_post_of_a_name_whose_first_post_is_in_flight_is_refused_409(kube: KubeCluster) -> None:  # noqa: F811
    kube.put("v1/nodes", gpu_node("gpu-0", CATALOG.get("H100-80GB"), 1))
    cluster = HeldStatus(kube.api_client())
    app = create_app(Services(cluster, SETTINGS, REGISTRY, CATALOG, clock=lambda: NOW))
    answers: list[Any] = []
    first = threading.Thread(target=lambda: answers.append(
        TestClient(app).post("/v1/namespaces/team-a/endpoints", json=body(), headers=ALICE)
    ))  # fmt: skip
    first.start()
    assert cluster.writing.wait(10)  # created, its status not written yet
    second = TestClient(app).post("/v1/namespaces/team-a/endpoints", json=body(), headers=ALICE)
    cluster.release.set()
    first.join(10)
    assert answers[0].status_code == 201, answers[0].text
    assert second.status_code == 409 and second.json()["field"] == "name"
    stored = kube.get(ENDPOINTS, "team-a", "chat")
    assert stored is not None and stored["status"]["promise"]["answer"] == "Created"
    # The one GPU is the first POST's: another endpoint is not served now.
    assert TestClient(app).post("/v1/namespaces/team-a/endpoints", json=body("other"), headers=ALICE).status_code == 202


def test_a_post_of_the_same_spec_at_another_replica_while_the_first_is_in_flight_is_refused_409(
    kube: KubeCluster,  # noqa: F811
) -> None:
    # Two replicas of the API behind one Service (the chart runs two): the second took the first's object,
    # created and its status not written yet, for one a failed POST of the same spec left behind, and answered too.
    kube.put("v1/nodes", gpu_node("gpu-0", CATALOG.get("H100-80GB"), 2))
    cluster = HeldStatus(kube.api_client())
    first = create_app(Services(cluster, SETTINGS, REGISTRY, CATALOG, clock=lambda: NOW))
    second = create_app(Services(Cluster(kube.api_client()), SETTINGS, REGISTRY, CATALOG, clock=lambda: NOW))
    answers: list[Any] = []
    posting = threading.Thread(target=lambda: answers.append(
        TestClient(first).post("/v1/namespaces/team-a/endpoints", json=body(), headers=ALICE)
    ))  # fmt: skip
    posting.start()
    assert cluster.writing.wait(10)  # created, its status not written yet
    again = TestClient(second).post("/v1/namespaces/team-a/endpoints", json=body(), headers=ALICE)
    cluster.release.set()
    posting.join(10)
    assert answers[0].status_code == 201, answers[0].text
    assert again.status_code == 409 and again.json()["field"] == "name", again.text
    stored = kube.get(ENDPOINTS, "team-a", "chat")
    assert stored is not None and stored["status"]["phase"] == answers[0].json()["phase"]
    # The second GPU is still free at the second replica: its answer took none.
    other = TestClient(second).post("/v1/namespaces/team-a/endpoints", json=body("other"), headers=ALICE)
    assert other.status_code == 201, other.text


class RepostedMeanwhile(Cluster):
    """The adapter, where the endpoint is deleted and posted again (by another client) between the API's
    create and its status write: the name now holds another endpoint."""

    kube: KubeCluster

    def apply_status(self, namespace: str, name: str, status: Any, uid: str = "") -> dict[str, Any]:
        self.kube.delete(ENDPOINTS, namespace, name)
        other = {"name": name, "namespace": namespace}
        self.kube.put(ENDPOINTS, {"apiVersion": "egs.dev/v1alpha1", "kind": "InferenceEndpoint", "metadata": other})
        return super().apply_status(namespace, name, status, uid)


def test_the_apis_answer_is_not_written_on_an_endpoint_posted_again_before_its_status(kube: KubeCluster) -> None:  # noqa: F811
    kube.put("v1/nodes", gpu_node("gpu-0", CATALOG.get("H100-80GB"), 1))
    cluster = RepostedMeanwhile(kube.api_client())
    cluster.kube = kube
    app = create_app(Services(cluster, SETTINGS, REGISTRY, CATALOG, clock=lambda: NOW))
    answer = TestClient(app).post("/v1/namespaces/team-a/endpoints", json=body(), headers=ALICE)
    assert answer.status_code == 404, answer.text  # what it created is gone: no promise to answer
    stored = kube.get(ENDPOINTS, "team-a", "chat")
    assert stored is not None and "status" not in stored, "the other endpoint keeps a status of its own"
