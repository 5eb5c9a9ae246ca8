"""The stand-in bumps an object's `generation` where its spec changed, and only there, as a real API server does:
through the API (an apply) and through the stand-in's own patch (a user's or a controller's change in a play).
The controller reads a spec changed since its last status from `generation` against `observedGeneration`.
A patch of an object deleted since its writer read it leaves it gone."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.adapters.kubernetes import Cluster
from localplay.kube_standin import KubeCluster
from tests.test_standin_apply import DEPLOYMENTS, _deployment, _stored


def _generation(kube: KubeCluster) -> int:
    return int(_stored(kube)["metadata"]["generation"])


def test_the_generation_moves_with_the_spec_alone(kube: KubeCluster) -> None:
    controller = Cluster(kube.api_client())
    pod: dict[str, Any] = {"containers": [{"name": "vllm", "image": "vllm:1"}]}
    controller.apply(_deployment({"app": "chat"}, pod))
    assert _generation(kube) == 1
    controller.apply(_deployment({"app": "chat", "tier": "a"}, pod))  # metadata only
    assert _generation(kube) == 1
    controller.apply(_deployment({"app": "chat"}, {"containers": [{"name": "vllm", "image": "vllm:2"}]}))
    assert _generation(kube) == 2
    kube.patch(DEPLOYMENTS, "team-a", "chat", {"status": {"replicas": 1}})
    assert _generation(kube) == 2
    kube.patch(DEPLOYMENTS, "team-a", "chat", {"spec": {"replicas": 3}})
    assert _generation(kube) == 3


def test_a_patch_of_an_object_deleted_since_it_was_read_leaves_it_gone(kube: KubeCluster) -> None:
    """A play lists the Deployments, the controller deletes one, the play writes its counts: a real API server
    answers that write 404 and the object stays deleted (the play once died on it mid-run)."""
    controller = Cluster(kube.api_client())
    controller.apply(_deployment({"app": "chat"}, {"containers": [{"name": "vllm", "image": "vllm:1"}]}))
    listed = kube.all(DEPLOYMENTS)
    kube.delete(DEPLOYMENTS, "team-a", "chat")
    for d in listed:
        kube.patch(DEPLOYMENTS, d["metadata"]["namespace"], d["metadata"]["name"], {"status": {"replicas": 1}})
    assert kube.get(DEPLOYMENTS, "team-a", "chat") is None


def test_a_patch_of_an_object_never_stored_is_an_error(kube: KubeCluster) -> None:
    """A misspelt name in a test's or a play's set-up must not pass as a patch that did nothing."""
    with pytest.raises(KeyError):
        kube.patch(DEPLOYMENTS, "team-a", "no-such-workload", {"status": {"replicas": 1}})
