"""What a failed POST left behind (`_Admissions.left`: an endpoint created whose delete failed too) is remembered
only while it may still be taken: before, an entry stayed for good once its endpoint was deleted, re-made or
given a status, and the map grew without limit."""

from __future__ import annotations

from autoscaler import endpoint as ie
from autoscaler.adapters.api import _Admissions
from autoscaler.adapters.kubernetes import ConflictError
from localplay.kube_standin import KubeCluster
from tests.test_api_replicas import SPEC, replica
from tests.test_endpoint_api import ENDPOINTS, kube  # noqa: F401 (the fixture)


def left_behind(kube: KubeCluster, name: str) -> _Admissions:  # noqa: F811
    """A replica whose POST of `name` created it and failed to delete it again."""
    admissions = replica(kube)
    kube.put(ENDPOINTS, ie.manifest("team-a", name, SPEC))
    uid = (kube.get(ENDPOINTS, "team-a", name) or {})["metadata"]["uid"]
    kube.fail("DELETE", 503, path_part="/inferenceendpoints")
    admissions.undo("team-a", name, uid)
    assert admissions.left == {("team-a", name): uid}
    return admissions


def test_a_leftover_deleted_and_its_name_created_again_is_forgotten(kube: KubeCluster) -> None:  # noqa: F811
    admissions = left_behind(kube, "chat")
    kube.delete(ENDPOINTS, "team-a", "chat")
    admissions.admit(ie.manifest("team-a", "chat", SPEC))
    assert admissions.left == {}


def test_a_leftover_the_controller_gave_a_status_is_forgotten(kube: KubeCluster) -> None:  # noqa: F811
    admissions = left_behind(kube, "chat")
    kube.patch(ENDPOINTS, "team-a", "chat", {"status": {"phase": "Pending"}})
    try:
        admissions.admit(ie.manifest("team-a", "chat", SPEC))
    except ConflictError:
        pass
    else:
        raise AssertionError("a POST of a name that exists with a status is a conflict")
    assert admissions.left == {}


def test_a_leftover_deleted_through_the_api_is_forgotten(kube: KubeCluster) -> None:  # noqa: F811
    admissions = left_behind(kube, "chat")
    admissions.forget(("team-a", "chat"))
    assert admissions.left == {}
