"""The endpoint API: every status code through FastAPI's test client, over kmock and the real adapter.

Covers 201 (warm capacity), 202 with Location and estimatedReadyTime (a node must be provisioned),
200 for one and the list, 204 on delete, 400 (not JSON), 401 (no or unknown token), 403 (RBAC says
no), 404, 409 (the name exists), 422 naming the field (request model, CRD schema, unknown model,
no GPU class can serve it), 503 (the API server fails). A refused request changes nothing.
The schemathesis run against the real `egs api` process is in test_endpoint_api_fuzz.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from autoscaler import endpoint as ie
from autoscaler.adapters.api import Services, _Admissions, create_app
from autoscaler.adapters.kubernetes import Cluster
from localplay.kube_standin import KubeCluster
from tests.test_decide import CATALOG, MODEL, REGISTRY, SETTINGS, endpoint, h100, training

ENDPOINTS = "egs.dev/v1alpha1/inferenceendpoints"
ALICE = {"Authorization": "Bearer t-alice"}
BOB = {"Authorization": "Bearer t-bob"}
NOW = 1_800_000_000.0


@pytest.fixture
def kube() -> Iterator[KubeCluster]:
    cluster = KubeCluster().start()
    cluster.emulator.tokens |= {"t-alice": ("alice", ("team-a",)), "t-bob": ("bob", ())}
    for verb in ("create", "get", "list", "delete"):
        cluster.emulator.grants.add(("alice", verb, "team-a"))
    cluster.emulator.grants.add(("bob", "get", "team-a"))
    yield cluster
    cluster.stop()


@pytest.fixture
def api(kube: KubeCluster) -> TestClient:
    services = Services(Cluster(kube.api_client()), SETTINGS, REGISTRY, CATALOG, clock=lambda: NOW)
    return TestClient(create_app(services))


def body(name: str = "chat", **fields: Any) -> dict[str, Any]:
    return {"name": name, "model": MODEL, "qualityFloor": 0.99, "replicas": {"min": 1, "max": 4}, **fields}


def post(api: TestClient, payload: Any, headers: dict[str, str] = ALICE, ns: str = "team-a") -> Any:
    return api.post(f"/v1/namespaces/{ns}/endpoints", json=payload, headers=headers)


def test_201_when_warm_capacity_serves_it_now(kube: KubeCluster, api: TestClient) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    answer = post(api, body())
    assert answer.status_code == 201, answer.text
    assert answer.headers["Location"] == "/v1/namespaces/team-a/endpoints/chat"
    assert answer.json()["gpuClass"] == "H100-80GB"
    assert answer.json()["estimatedReadyTime"] is None
    stored = kube.get(ENDPOINTS, "team-a", "chat")
    assert stored is not None and stored["spec"]["model"] == MODEL
    promise = stored["status"]["promise"]  # what the controller keeps: this variant and class, serving now
    assert (promise["answer"], promise["gpuClass"], promise["variant"]) == ("Created", "H100-80GB", "bf16")


def test_202_with_an_eta_when_a_node_must_be_provisioned(kube: KubeCluster, api: TestClient) -> None:
    answer = post(api, body())
    assert answer.status_code == 202, answer.text
    assert answer.headers["Location"] == "/v1/namespaces/team-a/endpoints/chat"
    eta = answer.json()["estimatedReadyTime"]
    assert eta is not None and eta > "2027-01-15T08:00:00Z"  # NOW is 2027-01-15T08:00:00Z
    assert answer.json()["phase"] == "Provisioning"
    stored = kube.get(ENDPOINTS, "team-a", "chat")
    assert stored is not None and stored["status"]["estimatedReadyTime"] == eta  # the controller keeps it
    assert stored["status"]["promise"]["answer"] == "Accepted"
    assert stored["status"]["promise"]["estimatedReadyTime"] == eta


def test_get_list_and_delete(kube: KubeCluster, api: TestClient) -> None:
    assert post(api, body()).status_code == 202
    one = api.get("/v1/namespaces/team-a/endpoints/chat", headers=ALICE)
    assert one.status_code == 200 and one.json()["model"] == MODEL
    listed = api.get("/v1/namespaces/team-a/endpoints", headers=ALICE)
    assert listed.status_code == 200 and [e["name"] for e in listed.json()["items"]] == ["chat"]
    assert api.delete("/v1/namespaces/team-a/endpoints/chat", headers=ALICE).status_code == 204
    assert api.get("/v1/namespaces/team-a/endpoints/chat", headers=ALICE).status_code == 404
    assert api.delete("/v1/namespaces/team-a/endpoints/chat", headers=ALICE).status_code == 404


def test_409_when_the_name_exists(kube: KubeCluster, api: TestClient) -> None:
    assert post(api, body()).status_code == 202
    again = post(api, body(qualityFloor=1.0))
    assert again.status_code == 409 and again.json()["field"] == "name"
    assert kube.get(ENDPOINTS, "team-a", "chat")["spec"]["qualityFloor"] == 0.99  # type: ignore[index]


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Basic abc"}, 401), ({"Authorization": "Bearer nobody"}, 401), (BOB, 403)],
)
def test_401_and_403_come_from_kubernetes(
    kube: KubeCluster, api: TestClient, headers: dict[str, str], status: int
) -> None:
    answer = post(api, body(), headers=headers)
    assert answer.status_code == status
    if status == 401:
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert kube.get(ENDPOINTS, "team-a", "chat") is None


def test_403_in_another_namespace(kube: KubeCluster, api: TestClient) -> None:
    assert post(api, body(), ns="team-b").status_code == 403
    assert api.get("/v1/namespaces/team-a/endpoints", headers=BOB).status_code == 403  # bob may get, not list
    assert api.get("/v1/namespaces/team-a/endpoints/x", headers=BOB).status_code == 404


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (body(qualityFloor=1.5), "qualityFloor"),
        (body(replicas={"min": 1}), "replicas.max"),
        (body(replicas={"min": 5, "max": 2}), "replicas.min"),
        (body(scaling="vpa"), "scaling"),
        (body(colour="blue"), "colour"),
        (body(name="Not_A_Name"), "name"),
        (body(model="no-such-model"), "model"),
        (body(gpuClasses=["L4"], contextTokens=131072, concurrency=64), "gpuClasses"),
    ],
)
def test_422_names_the_field_and_changes_nothing(
    kube: KubeCluster, api: TestClient, payload: dict[str, Any], field: str
) -> None:
    answer = post(api, payload)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    assert answer.json()["detail"].startswith(f"{field}: ")
    assert kube.all(ENDPOINTS) == []


def test_400_when_the_body_is_not_json(kube: KubeCluster, api: TestClient) -> None:
    answer = api.post(
        "/v1/namespaces/team-a/endpoints", content=b"{not json", headers={**ALICE, "Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert kube.all(ENDPOINTS) == []


def test_503_when_the_api_server_fails(kube: KubeCluster, api: TestClient) -> None:
    kube.fail("POST", 503, path_part="/inferenceendpoints")
    answer = post(api, body())
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "10"
    assert kube.all(ENDPOINTS) == []


def test_403_quoting_the_policy_when_a_quota_or_webhook_refuses_the_endpoint(
    kube: KubeCluster, api: TestClient
) -> None:
    """A namespace's ResourceQuota refuses the create: the user hears 403 and why (not a 503 to retry, which
    would say the API's own credentials fail), and nothing is created."""
    quota = (
        'inferenceendpoints.egs.dev "chat" is forbidden: exceeded quota: team-a, requested: count/inferenceendpoints'
        ".egs.dev=1, used: count/inferenceendpoints.egs.dev=2, limited: count/inferenceendpoints.egs.dev=2"
    )
    kube.fail("POST", 403, path_part="/inferenceendpoints", message=quota)
    answer = post(api, body())
    assert answer.status_code == 403 and "Retry-After" not in answer.headers
    assert "exceeded quota: team-a" in answer.json()["detail"]
    assert kube.all(ENDPOINTS) == []


def test_the_openapi_document_declares_every_answer(api: TestClient) -> None:
    document = api.get("/openapi.json").json()
    post_op = document["paths"]["/v1/namespaces/{namespace}/endpoints"]["post"]
    assert {"201", "202", "400", "401", "403", "409", "422", "503"} <= set(post_op["responses"])
    assert "EndpointRequest" in document["components"]["schemas"]


def test_reviews_are_reused_for_seconds_and_a_grant_counts_once_a_denial_expires(kube: KubeCluster) -> None:
    clock = [NOW]
    services = Services(Cluster(kube.api_client()), SETTINGS, REGISTRY, CATALOG, clock=lambda: clock[0])
    api = TestClient(create_app(services))
    assert api.get("/v1/namespaces/team-a/endpoints", headers=BOB).status_code == 403
    kube.emulator.grants.add(("bob", "list", "team-a"))
    assert api.get("/v1/namespaces/team-a/endpoints", headers=BOB).status_code == 403  # the denial is reused
    clock[0] += 3  # past Limits.denial_ttl_s
    assert api.get("/v1/namespaces/team-a/endpoints", headers=BOB).status_code == 200
    reviews = [r for r in kube.requests("POST") if r.url.path.endswith("reviews")]
    for _ in range(5):
        assert api.get("/v1/namespaces/team-a/endpoints", headers=BOB).status_code == 200
    assert [r for r in kube.requests("POST") if r.url.path.endswith("reviews")] == reviews


def builds(kube: KubeCluster) -> int:
    """The capacities built: each lists the pods (every POST lists the nodes, workloads and endpoints)."""
    return sum(1 for r in kube.requests("GET") if r.url.path == "/api/v1/pods")


def test_posts_take_the_capacity_one_after_another_without_deciding_again(kube: KubeCluster, api: TestClient) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    codes = [post(api, body(f"e{i}", replicas={"min": 1, "max": 1})).status_code for i in range(9)]
    assert codes == [201] * 8 + [202]  # one GPU each on an 8-GPU node
    assert builds(kube) == 1  # the capacity was built once, not for every POST


def test_a_node_that_joins_is_seen_by_the_next_post(kube: KubeCluster, api: TestClient) -> None:
    assert post(api, body("a")).status_code == 202
    kube.put("v1/nodes", h100("gpu-0"))
    assert post(api, body("b")).status_code == 201
    assert builds(kube) == 2


def _after_a_201_and_another_writer(kube: KubeCluster) -> tuple[list[float], Services, TestClient]:
    """An API on a settable clock that answered "a" 201 on one H100 node, then "x" (7 GPUs) written by
    someone else (kubectl, another API replica) that its capacity does not know yet."""
    clock = [NOW]
    services = Services(Cluster(kube.api_client()), SETTINGS, REGISTRY, CATALOG, clock=lambda: clock[0])
    api = TestClient(create_app(services))
    kube.put("v1/nodes", h100("gpu-0"))
    assert post(api, body("a")).status_code == 201
    kube.put(ENDPOINTS, endpoint("x", lo=7, hi=7))
    return clock, services, api


def test_other_changes_are_seen_once_the_capacity_is_rebuilt_and_a_delete_at_once(kube: KubeCluster) -> None:
    clock, services, api = _after_a_201_and_another_writer(kube)
    assert post(api, body("b")).status_code == 201  # within the TTL the capacity does not know "x"
    clock[0] += services.capacity_ttl_s
    post(api, body("c"))  # answered from the old capacity while a new one is built
    deadline = time.monotonic() + 10
    while builds(kube) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert post(api, body("d")).status_code == 202  # "x" holds the rest of the node
    for name in ("x", "c"):
        assert api.delete(f"/v1/namespaces/team-a/endpoints/{name}", headers=ALICE).status_code == 204
    assert post(api, body("e")).status_code == 201  # the next POST after a delete builds it again


def test_a_post_after_a_quiet_while_is_not_answered_from_a_capacity_that_old(kube: KubeCluster) -> None:
    # Found by the churn benchmark's reading: the first POST after a quiet while was answered from the
    # capacity of the last burst, however old (only a node change or a delete built it again), so a 201
    # could promise GPUs that an endpoint written meanwhile holds, and be reported Provisioning later.
    clock, services, api = _after_a_201_and_another_writer(kube)
    clock[0] += 2 * services.capacity_ttl_s  # nothing rebuilt it meanwhile: no POST came
    assert post(api, body("b")).status_code == 202  # "x" holds the rest of the node
    assert builds(kube) == 2


def test_endpoints_admitted_while_the_capacity_is_rebuilt_are_not_forgotten(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    services = Services(Cluster(kube.api_client()), SETTINGS, REGISTRY, CATALOG, clock=lambda: NOW)
    admissions = _Admissions(services)
    spec = body(replicas={"min": 8, "max": 8})
    del spec["name"]
    decision, created, _ = admissions.admit(ie.manifest("team-a", "a", spec))
    assert decision.serves_now and created is not None
    # The rebuild's listing began before "a" was stored: it must take "a"'s GPUs itself.
    key = next(k for k in kube.emulator.objects if k[2] == "a")
    kube._call(lambda: kube.emulator.objects[key].delete())
    admissions._rebuild()
    assert admissions.capacity is not None and "team-a/a" in admissions.capacity.endpoints
    assert not any(g.holders == 0 for g in admissions.capacity.free.node("gpu-0").gpus)


def test_a_ttl_of_zero_builds_the_capacity_for_every_post(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    services = Services(Cluster(kube.api_client()), SETTINGS, REGISTRY, CATALOG, capacity_ttl_s=0)
    api = TestClient(create_app(services))
    assert [post(api, body(f"e{i}")).status_code for i in range(3)] == [201] * 3
    assert builds(kube) == 3


def test_gpus_another_workload_holds_are_not_offered(kube: KubeCluster, api: TestClient) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put("v1/pods", training("gpu-0", 8))
    assert post(api, body()).status_code == 202
