"""A status applied without a field it applied before loses that field, as on a real API server.

The stand-in merged each status apply into the stored status, so the `promise` the controller drops once
an endpoint is Ready stayed: every endpoint ever answered read as still keeping a promise, and
consolidation never moved one (churn seed 618). A merge patch of the status still merges.
"""

from __future__ import annotations

from kubernetes import client

from autoscaler.adapters.kubernetes import Cluster
from localplay.kube_standin import KubeCluster
from tests.test_controller import ENDPOINTS

PROMISED = {"phase": "Provisioning", "promise": {"answer": "Accepted", "eta": "2026-01-01T00:00:00Z"}}


def _status(kube: KubeCluster) -> dict[str, object]:
    return kube.get(ENDPOINTS, "team-a", "chat")["status"]  # type: ignore[index,no-any-return]


def test_a_second_status_apply_without_the_promise_drops_it(kube: KubeCluster) -> None:
    cluster = Cluster(kube.api_client())
    kube.put(ENDPOINTS, {"metadata": {"name": "chat", "namespace": "team-a"}, "spec": {}})
    cluster.apply_status("team-a", "chat", PROMISED)
    assert _status(kube) == PROMISED
    cluster.apply_status("team-a", "chat", {"phase": "Ready"})
    assert _status(kube) == {"phase": "Ready"}


def test_a_merge_patch_of_the_status_keeps_the_fields_it_does_not_name(kube: KubeCluster) -> None:
    cluster = Cluster(kube.api_client())
    kube.put(ENDPOINTS, {"metadata": {"name": "chat", "namespace": "team-a"}, "spec": {}})
    cluster.apply_status("team-a", "chat", PROMISED)
    custom = client.CustomObjectsApi(kube.api_client())
    custom.patch_namespaced_custom_object_status(
        "egs.dev", "v1alpha1", "team-a", "inferenceendpoints", "chat", {"status": {"phase": "Ready"}}
    )
    assert _status(kube) == {**PROMISED, "phase": "Ready"}
