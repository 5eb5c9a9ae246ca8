"""Two replicas of `egs api` (the chart runs two behind one Service) never answer the same GPU.

Found by churn `--api-replicas 2` (seed 501): each replica answers from a capacity of its own, rebuilt once it
is `capacity_ttl_s` old or the nodes change, so a GPU the other replica answered meanwhile still counted free:
both answered 201 on the same H100 GPUs from capacities built at once (4 201s demoted, 12 pods of 201s bound off
their answer). Every POST now admits the endpoints created since its capacity's listing that it did not admit
itself, each held to its answer. A POST admitted between the other replica's listing and its create (churn seed
464: answers 13-51 ms apart on the same room) lists the endpoints again after its create, and where the other's
answer takes its GPUs, its own is re-made and annotated before the client hears it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from autoscaler import endpoint as ie
from autoscaler.adapters.api import Services, _Admissions
from autoscaler.adapters.kubernetes import Cluster
from autoscaler.decide import PROMISE_ANNOTATION
from localplay.kube_standin import KubeCluster
from scheduler.synthetic import gpu_node
from tests.test_endpoint_api import kube as kube  # kmock, as the API's tests start it
from tests.test_promises_kept import CATALOG, REGISTRY, SETTINGS

NOW = 1_800_000_000.0
SPEC = {"model": "llama-3.1-8b-instruct", "qualityFloor": 0.95, "replicas": {"min": 1, "max": 1}}


class Interleaved(Cluster):
    """The cluster as one replica reaches it, where another replica's POST runs just before its first create."""

    def __init__(self, kube: KubeCluster, before: Callable[[], object]) -> None:
        super().__init__(kube.api_client())
        self.before: list[Callable[[], object]] = [before]

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        while self.before:
            self.before.pop()()
        return super().create(obj)


def replica(kube: KubeCluster, cluster: Cluster | None = None) -> _Admissions:
    """One `egs api` process's admissions; the clock stands still, so its capacity is never too old."""
    services = Services(cluster or Cluster(kube.api_client()), SETTINGS, REGISTRY, CATALOG, clock=lambda: NOW)
    return _Admissions(services)


def gpus(promise: Mapping[str, Any]) -> list[tuple[str, int]]:
    return [(w["node"], g) for p in promise.get("placements", ()) for w in p["workers"] for g in w["gpus"]]


def test_a_gpu_one_replica_answered_is_not_answered_again_by_the_other(kube: KubeCluster) -> None:
    kube.put("v1/nodes", gpu_node("h100-0", CATALOG.get("H100-80GB"), 2))
    first, second = replica(kube), replica(kube)
    answered, _, _ = first.admit(ie.manifest("team-a", "one", SPEC))  # its capacity: both GPUs free
    assert answered.serves_now
    answered, _, _ = second.admit(ie.manifest("team-b", "two", SPEC))  # built now: one taken, the other answered
    assert answered.serves_now
    third, created, _ = first.admit(ie.manifest("team-a", "three", SPEC))
    assert created is not None
    assert not third.serves_now  # both GPUs are answered: no 201 on either
    assert first.capacity is not None
    assert [g.holders for g in first.capacity.free.node("h100-0").gpus] == [1, 1]


@pytest.mark.parametrize("gpus_free", [2, 1])
def test_a_post_admitted_before_the_other_replica_s_create_is_answered_again_before_its_client_hears(
    kube: KubeCluster, gpus_free: int
) -> None:
    kube.put("v1/nodes", gpu_node("h100-0", CATALOG.get("H100-80GB"), gpus_free))
    first = replica(kube)
    answers: list[Any] = []
    # The second lists (the GPUs free) and admits; then the first lists, admits and creates before its create.
    second = replica(kube, Interleaved(kube, lambda: answers.append(first.admit(ie.manifest("team-a", "one", SPEC)))))
    two, created, status = second.admit(ie.manifest("team-b", "two", SPEC))
    ((one, _, one_status),) = answers
    assert one.serves_now
    assert two.serves_now == (gpus_free == 2)  # on the other GPU, or a 202 where there is none
    answered = gpus(one_status["promise"]) + gpus(status["promise"])
    assert len(answered) == gpus_free and len(set(answered)) == gpus_free, answered  # no GPU answered twice
    assert created is not None
    stored = kube.get("egs.dev/v1alpha1/inferenceendpoints", "team-b", "two") or {}
    assert json.loads(stored["metadata"]["annotations"][PROMISE_ANNOTATION]) == status["promise"]
    assert created["metadata"]["annotations"] == stored["metadata"]["annotations"]
    # Later answers count both, as they were answered: no 201 is left on the node.
    three, _, _ = first.admit(ie.manifest("team-a", "three", SPEC))
    assert not three.serves_now


def test_the_api_writes_an_endpoint_under_a_field_manager_of_its_own(kube: KubeCluster) -> None:
    # Under the controller's name (egs-controller), the answer annotated would be the controller's own field, which
    # its next apply of the endpoint without it would drop.
    kube.put("v1/nodes", gpu_node("h100-0", CATALOG.get("H100-80GB"), 2))
    first = replica(kube)
    second = replica(kube, Interleaved(kube, lambda: first.admit(ie.manifest("team-a", "one", SPEC))))
    second.admit(ie.manifest("team-b", "two", SPEC))  # its answer re-made: the annotation patched
    (annotated,) = [r for r in kube.requests("PATCH") if r.url.path.endswith("/inferenceendpoints/two")]
    assert annotated.params.get("fieldManager") == "egs-api"
    stored = kube.get("egs.dev/v1alpha1/inferenceendpoints", "team-b", "two") or {}
    assert stored.get("spec") == SPEC  # the apply of the annotation took only the annotation
