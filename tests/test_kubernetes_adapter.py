"""The Kubernetes adapter through the official client against kmock (localplay/kube_standin.py).

Covers: reads of nodes, endpoints, owned objects and pending GPU pods; server-side apply creating
and then updating under one field manager; the status subresource; deletes of absent objects;
409 retried and then raised; 5xx, refused connections and 4xx mapped to the adapter's errors;
the Lease written with optimistic concurrency; TokenReview and SubjectAccessReview.
Skips: watches (the controller polls) and everything kmock cannot answer (admission, RBAC itself).
"""

from __future__ import annotations

import pytest

from autoscaler.adapters.kubernetes import (
    APPLY,
    FIELD_MANAGER,
    Cluster,
    ConflictError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    PolicyRefusedError,
    TemporaryKubernetesError,
)
from common.errors import InputError, SetupError
from localplay.kube_standin import KubeCluster

DEPLOYMENTS = "apps/v1/deployments"


@pytest.fixture
def cluster(kube: KubeCluster) -> Cluster:
    return Cluster(kube.api_client())


def _deployment(name: str = "chat", replicas: int = 1, managed: bool = True) -> dict[str, object]:
    labels = {"app.kubernetes.io/managed-by": "egs"} if managed else {"app": "other"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "team-a", "labels": labels},
        "spec": {"replicas": replicas},
    }


def _pod(name: str, phase: str, resources: dict[str, str]) -> dict[str, object]:
    container = {"name": "c", "image": "i", "resources": {"limits": resources}}
    return {
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {"containers": [container]},
        "status": {"phase": phase},
    }


def test_apply_creates_then_updates_under_one_field_manager(kube: KubeCluster, cluster: Cluster) -> None:
    created = cluster.apply(_deployment(replicas=1))
    assert created["metadata"]["uid"]
    updated = cluster.apply(_deployment(replicas=3))
    assert updated["spec"]["replicas"] == 3
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]
    patches = kube.requests("PATCH")
    assert len(patches) == 2
    for request in patches:
        assert request.headers["Content-Type"] == APPLY
        assert request.params == {"fieldManager": FIELD_MANAGER, "force": "true", "fieldValidation": "Strict"}
    assert cluster.writes == 2


def test_owned_lists_only_what_egs_manages(kube: KubeCluster, cluster: Cluster) -> None:
    cluster.apply(_deployment("mine"))
    cluster.apply(_deployment("theirs", managed=False))
    owned = cluster.owned()
    assert [(o["kind"], o["metadata"]["name"]) for o in owned] == [("Deployment", "mine")]


def test_reads_nodes_endpoints_and_gpu_pods(kube: KubeCluster, cluster: Cluster) -> None:
    kube.put("v1/nodes", {"metadata": {"name": "gpu-0", "labels": {"nvidia.com/gpu.count": "8"}}})
    kube.put("egs.dev/v1alpha1/inferenceendpoints", {"metadata": {"name": "chat", "namespace": "team-a"}, "spec": {}})
    kube.put("v1/pods", _pod("waits-for-gpu", "Pending", {"nvidia.com/gpu": "1"}))
    kube.put("v1/pods", _pod("waits-for-cpu", "Pending", {"cpu": "1"}))
    kube.put("v1/pods", _pod("runs", "Running", {"amd.com/gpu": "1"}))
    assert [n["metadata"]["name"] for n in cluster.nodes()] == ["gpu-0"]
    assert [e["metadata"]["name"] for e in cluster.endpoints("team-a")] == ["chat"]
    assert cluster.endpoints("team-b") == []
    kube.put("v1/pods", _pod("done", "Succeeded", {"nvidia.com/gpu": "1"}))
    assert [p["metadata"]["name"] for p in cluster.gpu_pods()] == ["runs", "waits-for-gpu"]  # as listed: by name


def test_gpu_pods_include_kai_shared_and_partitioned_ones(kube: KubeCluster, cluster: Cluster) -> None:
    """KAI Scheduler's pods ask for no GPU resource (only its `gpu-memory` annotation), and AMD's mixed
    naming asks `amd.com/<mode>`: both were left out, so neither held VRAM nor counted as stuck (issue 16)."""
    kai = _pod("kai-shared", "Running", {})
    kube.put(
        "v1/pods",
        {**kai, "metadata": {"name": "kai-shared", "namespace": "team-a", "annotations": {"gpu-memory": "20480"}}},
    )
    kube.put("v1/pods", _pod("partition", "Pending", {"amd.com/cpx_nps4": "1"}))
    assert sorted(p["metadata"]["name"] for p in cluster.gpu_pods()) == ["kai-shared", "partition"]


def test_gpu_pods_read_each_pod_once_as_of_one_moment(kube: KubeCluster) -> None:
    """A pod starts its containers (Pending to Running) while the pods are read: with a list per phase, one
    between the two was read in both (its GPUs held twice, by the decide step's incumbents or as another
    team's), and one bound meanwhile, still Pending, in neither. One list reads them as of one moment."""

    class Busy(Cluster):
        """The cluster moves on right after the first list of pods is answered."""

        moved = False

        def _list(self, kind, namespace=None, labels="", fields=""):
            listed = super()._list(kind, namespace, labels, fields)
            if kind.plural == "pods" and not self.moved:
                self.moved = True
                kube.put("v1/pods", _pod("loading", "Running", {"nvidia.com/gpu": "1"}))
                kube.put("v1/pods", _pod("bound-meanwhile", "Pending", {"nvidia.com/gpu": "1"}))
            return listed

    kube.put("v1/pods", _pod("loading", "Pending", {"nvidia.com/gpu": "1"}))
    kube.put("v1/pods", _pod("done", "Failed", {"nvidia.com/gpu": "1"}))
    assert [p["metadata"]["name"] for p in Busy(kube.api_client()).gpu_pods()] == ["loading"]
    assert kube.requests("GET")[-1].params == {"fieldSelector": "status.phase!=Succeeded,status.phase!=Failed"}


def test_status_is_written_to_the_subresource_only(kube: KubeCluster, cluster: Cluster) -> None:
    kube.put("egs.dev/v1alpha1/inferenceendpoints", {"metadata": {"name": "chat", "namespace": "team-a"}, "spec": {}})
    cluster.apply_status("team-a", "chat", {"phase": "Provisioning", "desiredReplicas": 2})
    stored = kube.get("egs.dev/v1alpha1/inferenceendpoints", "team-a", "chat")
    assert stored is not None
    assert stored["status"] == {"phase": "Provisioning", "desiredReplicas": 2}
    assert kube.requests("PATCH")[0].url.path.endswith("/inferenceendpoints/chat/status")


def test_a_conflict_is_retried_then_raised(kube: KubeCluster, cluster: Cluster) -> None:
    kube.fail("PATCH", 409, times=2)
    assert cluster.apply(_deployment())["spec"]["replicas"] == 1
    kube.fail("PATCH", 409, times=cluster.conflict_retries + 1)
    with pytest.raises(ConflictError, match="409"):
        cluster.apply(_deployment(replicas=2))
    assert kube.get(DEPLOYMENTS, "team-a", "chat")["spec"]["replicas"] == 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, TemporaryKubernetesError),
        (503, TemporaryKubernetesError),
        (429, TemporaryKubernetesError),
        (422, InvalidError),
        (403, ForbiddenError),
        (404, NotFoundError),
    ],
)
def test_api_errors_map_to_what_the_caller_does_next(
    kube: KubeCluster, cluster: Cluster, status: int, error: type[Exception]
) -> None:
    kube.fail("PATCH", status)
    with pytest.raises(error, match=f"apply Deployment team-a/chat: {status}"):
        cluster.apply(_deployment())
    assert kube.get(DEPLOYMENTS, "team-a", "chat") is None


QUOTA = (
    'deployments.apps "chat" is forbidden: exceeded quota: team-a, requested: count/deployments.apps=1, '
    "used: count/deployments.apps=4, limited: count/deployments.apps=4"
)
WEBHOOK = 'admission webhook "validation.gatekeeper.sh" denied the request: [no-gpu] GPUs are not allowed here'
RBAC = (
    'deployments.apps "chat" is forbidden: User "system:serviceaccount:egs:egs" cannot patch resource '
    '"deployments" in API group "apps" in the namespace "team-a"'
)


@pytest.mark.parametrize(
    ("message", "error"), [(QUOTA, PolicyRefusedError), (WEBHOOK, PolicyRefusedError), (RBAC, ForbiddenError)]
)
def test_a_403_from_admission_is_the_objects_and_rbacs_is_the_callers(
    kube: KubeCluster, cluster: Cluster, message: str, error: type[Exception]
) -> None:
    """A quota or a webhook refuses one object (an `InputError`, reported on it); only RBAC's 403 says the
    process's own credentials lack something (a `SetupError`, which a controller exits on)."""
    kube.fail("PATCH", 403, message=message)
    with pytest.raises(error, match=message[:40]) as raised:
        cluster.apply(_deployment())
    assert isinstance(raised.value, InputError if error is PolicyRefusedError else SetupError)


def test_an_unreachable_server_is_temporary() -> None:
    from kubernetes import client

    from localplay.localstack import free_port

    config = client.Configuration()
    config.host = f"http://127.0.0.1:{free_port()}"
    config.retries = 0
    with pytest.raises(TemporaryKubernetesError):
        Cluster(client.ApiClient(config), timeout_s=2).nodes()


def test_deleting_an_absent_object_is_quiet(kube: KubeCluster, cluster: Cluster) -> None:
    cluster.apply(_deployment())
    cluster.delete("apps/v1", "Deployment", "team-a", "chat")
    cluster.delete("apps/v1", "Deployment", "team-a", "chat")
    assert kube.get(DEPLOYMENTS, "team-a", "chat") is None


def test_deleting_an_owner_collects_what_it_owns(kube: KubeCluster, cluster: Cluster) -> None:
    owner = cluster.create(
        {
            "apiVersion": "egs.dev/v1alpha1",
            "kind": "InferenceEndpoint",
            "metadata": {"name": "chat", "namespace": "team-a"},
        }
    )
    owned = _deployment()
    owned["metadata"]["ownerReferences"] = [  # type: ignore[index]
        {"apiVersion": "egs.dev/v1alpha1", "kind": "InferenceEndpoint", "name": "chat", "uid": owner["metadata"]["uid"]}
    ]
    cluster.apply(owned)
    cluster.delete("egs.dev/v1alpha1", "InferenceEndpoint", "team-a", "chat")
    assert kube.get(DEPLOYMENTS, "team-a", "chat") is None


def test_the_lease_has_one_writer_when_two_race(kube: KubeCluster, cluster: Cluster) -> None:
    assert cluster.lease("egs", "controller") is None
    cluster.take_lease("egs", "controller", {"holderIdentity": "a"}, None)
    with pytest.raises(ConflictError):
        cluster.take_lease("egs", "controller", {"holderIdentity": "b"}, None)
    read = cluster.lease("egs", "controller")
    cluster.take_lease("egs", "controller", {"holderIdentity": "b"}, read)
    with pytest.raises(ConflictError):
        cluster.take_lease("egs", "controller", {"holderIdentity": "c"}, read)  # read is stale now
    assert cluster.lease("egs", "controller")["spec"]["holderIdentity"] == "b"  # type: ignore[index]


def test_token_and_access_reviews(kube: KubeCluster, cluster: Cluster) -> None:
    kube.emulator.tokens["t-alice"] = ("alice", ("team-a",))
    kube.emulator.grants.add(("alice", "create", "team-a"))
    assert cluster.review_token("t-nobody") is None
    assert cluster.review_token("t-alice") == ("alice", ("team-a",))
    assert cluster.review_access("alice", ("team-a",), "create", "team-a")
    assert not cluster.review_access("alice", ("team-a",), "create", "team-b")
    assert not cluster.review_access("alice", ("team-a",), "delete", "team-a")
