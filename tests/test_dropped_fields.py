"""A field the controller applied and no longer intends is removed: its status or object is written again.

The loop skipped a write when every field it intends was already there, so a field it stopped writing stayed
for good: churn seed 800 (eleventh session) read two endpoints as changing shape for half an
hour after their changes ended, their `status.shapeChange` left behind; a workload's annotation of the GPUs
its replicas could not bind to (`egs.io/taken`) would stay the same way. A field another manager wrote (the
API's answer, a user's label) is not the controller's to remove, and costs no write.
"""

from __future__ import annotations

from typing import Any

from autoscaler.adapters.kubernetes import Cluster
from autoscaler.controller import Controller
from localplay.kube_standin import KubeCluster
from tests.test_controller import ENDPOINTS, FixedSignals, chat_deployment, controller
from tests.test_decide import endpoint, h100


def _status(kube: KubeCluster) -> dict[str, Any]:
    return kube.get(ENDPOINTS, "team-a", "chat")["status"]  # type: ignore[index,no-any-return]


def _settled(kube: KubeCluster) -> Controller:
    """A controller that has run one loop for the chat endpoint on one H100 node."""
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    ctl = controller(kube, FixedSignals(demand=3.0))
    ctl.reconcile()
    return ctl


def test_a_status_field_the_controller_applied_and_no_longer_intends_is_removed(kube: KubeCluster) -> None:
    ctl = _settled(kube)
    # What a loop during a shape change applied: the status as now, and the record of the workload it replaced.
    Cluster(kube.api_client()).apply_status("team-a", "chat", {**_status(kube), "shapeChange": {"replacing": ["x"]}})
    assert ctl.reconcile().writes == 1
    assert "shapeChange" not in _status(kube)
    assert ctl.reconcile().writes == 0


def test_a_status_field_another_manager_wrote_costs_no_write(kube: KubeCluster) -> None:
    ctl = _settled(kube)
    api = Cluster(kube.api_client(), field_manager="egs-api")
    api.apply_status("team-a", "chat", {"estimatedReadyTime": "2027-01-15T08:00:00Z"})
    assert (ctl.reconcile().writes, _status(kube)["estimatedReadyTime"]) == (0, "2027-01-15T08:00:00Z")


def test_a_workload_field_the_controller_applied_and_no_longer_intends_is_removed(kube: KubeCluster) -> None:
    ctl = _settled(kube)
    deployment = chat_deployment(kube)
    meta = {k: deployment["metadata"][k] for k in ("name", "namespace", "labels", "ownerReferences")}
    taken = {"egs.io/taken": '[{"gpus":[0],"node":"gpu-0"}]'}
    applied = {**deployment, "metadata": {**meta, "annotations": {**deployment["metadata"]["annotations"], **taken}}}
    Cluster(kube.api_client()).apply(applied)  # what an earlier loop applied
    assert chat_deployment(kube)["metadata"]["annotations"]["egs.io/taken"]
    assert ctl.reconcile().writes == 1
    assert "egs.io/taken" not in chat_deployment(kube)["metadata"]["annotations"]
    assert ctl.reconcile().writes == 0
    # A label another manager added stays, and costs no write.
    Cluster(kube.api_client(), field_manager="kubectl").apply(
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {**meta, "labels": {"team": "a"}}}
    )
    assert (ctl.reconcile().writes, chat_deployment(kube)["metadata"]["labels"]["team"]) == (0, "a")
