"""Handing the Lease back after a renewal whose answer was lost (autoscaler/leader.py, `Elector.release`).

Covers: a renewal the API server applied but whose answer never came (the read after it failing too) moves
the Lease's version past the one the leader last wrote; its SIGTERM's hand-back then still frees the Lease
for the next replica, and one that another replica took meanwhile is left to it. Skips the processes
(tests/test_handover.py, the churn benchmark's handover).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autoscaler.adapters.kubernetes import Cluster, TemporaryKubernetesError
from autoscaler.leader import LEASE_NAME, Elector
from localplay.kube_standin import KubeCluster
from tests.clock import Clock
from tests.test_leader import LEASES, NAMESPACE, NOW, elector, lease


class LostAnswers:
    """The real adapter, but while `lose` is set a write is applied and its answer lost, and reads fail."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster, self.lose = cluster, False

    def lease(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        if self.lose:
            raise TemporaryKubernetesError("read Lease: timed out")
        return self.cluster.lease(namespace, name)

    def take_lease(
        self,
        namespace: str,
        name: str,
        spec: Mapping[str, Any],
        read: Mapping[str, Any] | None,
        annotations: Mapping[str, str] | None = None,
    ) -> Mapping[str, Any]:
        written = self.cluster.take_lease(namespace, name, spec, read, annotations)
        if self.lose:
            raise TemporaryKubernetesError("take Lease: timed out")
        return written


def renewed_unseen(kube: KubeCluster, clock: Clock) -> Elector:
    """Replica a, leading, after a renewal the API server applied and a never heard back about."""
    store = LostAnswers(Cluster(kube.api_client()))
    a = Elector(store, NAMESPACE, "a", clock=clock, wall=lambda: NOW + clock.t)
    assert a.step()
    before = kube.get(LEASES, NAMESPACE, LEASE_NAME)
    store.lose, clock.t = True, 2.0
    assert a.step()  # still within its renew deadline
    store.lose = False
    after = kube.get(LEASES, NAMESPACE, LEASE_NAME)
    assert before is not None and after is not None
    assert after["metadata"]["resourceVersion"] != before["metadata"]["resourceVersion"]
    return a


def test_a_lease_renewed_without_an_answer_is_still_handed_back_and_the_next_replica_takes_it_at_once(
    kube: KubeCluster,
) -> None:
    clock = Clock()
    a = renewed_unseen(kube, clock)
    a.release()
    assert lease(kube)["holderIdentity"] == ""
    assert elector(kube, "b", clock).step()  # at its first retry, not a whole Lease later


def test_a_lease_another_replica_took_after_a_renewal_without_an_answer_is_not_handed_back(
    kube: KubeCluster,
) -> None:
    clock = Clock()
    a = renewed_unseen(kube, clock)
    kube.patch(LEASES, NAMESPACE, LEASE_NAME, {"spec": {"holderIdentity": "b"}})  # b took it meanwhile
    a.release()
    assert lease(kube)["holderIdentity"] == "b"
