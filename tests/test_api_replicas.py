"""Two replicas of `egs api` (the chart runs two behind one Service) never answer the same GPU.

Found by churn `--api-replicas 2` (seed 501): each replica answers from a capacity of its own, rebuilt once it
is `capacity_ttl_s` old or the nodes change, so a GPU the other replica answered meanwhile still counted free:
both answered 201 on the same H100 GPUs from capacities built at once (4 201s demoted, 12 pods of 201s bound off
their answer). Every POST now admits the endpoints created since its capacity's listing that it did not admit
itself, each held to its answer. Skipped: a POST admitted between the other replica's listing and its create
(milliseconds), which this does not close.
"""

from __future__ import annotations

from autoscaler import endpoint as ie
from autoscaler.adapters.api import Services, _Admissions
from autoscaler.adapters.kubernetes import Cluster
from localplay.kube_standin import KubeCluster
from scheduler.synthetic import gpu_node
from tests.test_endpoint_api import kube as kube  # kmock, as the API's tests start it
from tests.test_promises_kept import CATALOG, REGISTRY, SETTINGS

NOW = 1_800_000_000.0
SPEC = {"model": "llama-3.1-8b-instruct", "qualityFloor": 0.95, "replicas": {"min": 1, "max": 1}}


def replica(kube: KubeCluster) -> _Admissions:
    """One `egs api` process's admissions; the clock stands still, so its capacity is never too old."""
    return _Admissions(Services(Cluster(kube.api_client()), SETTINGS, REGISTRY, CATALOG, clock=lambda: NOW))


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
