"""A status decided for one endpoint is not written onto another of the same name.

Covers the adapter's status write with the endpoint's uid (a precondition the API server's storage
checks, taught to the stand-in): an endpoint deleted and posted again between the controller's read and
its write keeps the status the API answered it (churn seed 4: a loop that read the deleted one wrote its
202 promise over the new one's 201, which was then placed as the 202 and reported demoted); the
controller passes the uid it read.
"""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.adapters.kubernetes import Cluster, NotFoundError
from localplay.kube_standin import KubeCluster
from tests.test_controller import ENDPOINTS, FixedSignals, controller
from tests.test_decide import endpoint


def test_a_status_for_a_deleted_endpoint_is_refused_on_the_one_posted_again(kube: KubeCluster) -> None:
    cluster = Cluster(kube.api_client())
    kube.put(ENDPOINTS, {"metadata": {"name": "chat", "namespace": "team-a"}, "spec": {}})
    old = kube.get(ENDPOINTS, "team-a", "chat")["metadata"]["uid"]  # type: ignore[index]
    kube.delete(ENDPOINTS, "team-a", "chat")
    answered = {"phase": "Pending", "promise": {"answer": "Created"}}
    kube.put(ENDPOINTS, {"metadata": {"name": "chat", "namespace": "team-a"}, "spec": {}, "status": answered})
    new = kube.get(ENDPOINTS, "team-a", "chat")["metadata"]["uid"]  # type: ignore[index]
    assert new != old
    with pytest.raises(NotFoundError):  # that endpoint is gone: nothing to retry
        cluster.apply_status("team-a", "chat", {"phase": "Provisioning", "promise": {"answer": "Accepted"}}, old)
    assert len(kube.requests("PATCH")) == 1, "a uid that conflicts conflicts again: written once, not retried"
    assert kube.get(ENDPOINTS, "team-a", "chat")["status"] == answered  # type: ignore[index]
    cluster.apply_status("team-a", "chat", {"phase": "Ready"}, new)
    assert kube.get(ENDPOINTS, "team-a", "chat")["status"]["phase"] == "Ready"  # type: ignore[index]


def test_the_controller_writes_a_status_to_the_endpoint_it_read(kube: KubeCluster) -> None:
    kube.put(ENDPOINTS, endpoint())
    ctl = controller(kube, FixedSignals(demand=1.0))
    ctl.reconcile()
    uid = kube.get(ENDPOINTS, "team-a", "chat")["metadata"]["uid"]  # type: ignore[index]
    bodies: list[Any] = [r.data for r in kube.requests("PATCH") if r.url.path.endswith("/chat/status")]
    assert bodies and all(b["metadata"]["uid"] == uid for b in bodies)
