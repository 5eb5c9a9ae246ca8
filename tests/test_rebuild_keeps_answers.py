"""`egs api` rebuilds the capacity it answers from in the background; the POSTs answered while it was being
built, after it listed the endpoints, are admitted again on it, each held to its answer.

Found by churn seed 404 (120 endpoints POSTed in one burst): the answers kept for that were the objects as
POSTed, without the `metadata.generation` the API server gives a new object, so their promise (made for
generation 1) was read as void; the 201s were placed afresh on the rebuilt capacity, the GPUs they were
answered on counted free, and later POSTs were answered 201 on them (pods bound off their answer, a 201
served in a class it was never answered in).
"""

from __future__ import annotations

from typing import Any

from autoscaler import endpoint as ie
from autoscaler.adapters.api import Services, _Admissions
from autoscaler.adapters.kubernetes import Cluster
from localplay.kube_standin import KubeCluster
from scheduler.synthetic import gpu_node
from tests.test_endpoint_api import kube as kube  # kmock, as the API's tests start it
from tests.test_promises_kept import CATALOG, REGISTRY, SETTINGS

NOW = 1_800_000_000.0


class ListedEarlier(Cluster):
    """The cluster, whose list of endpoints is the one `earlier` holds while it is set: a read made before."""

    earlier: list[dict[str, Any]] | None = None

    def endpoints(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return super().endpoints(namespace) if self.earlier is None else self.earlier


def test_a_201_answered_while_the_capacity_is_rebuilt_keeps_its_gpus_in_the_rebuilt_one(kube: KubeCluster) -> None:
    kube.put("v1/nodes", gpu_node("h100-0", CATALOG.get("H100-80GB"), 1))
    cluster = ListedEarlier(kube.api_client())
    admissions = _Admissions(Services(cluster, SETTINGS, REGISTRY, CATALOG, clock=lambda: NOW))
    cluster.earlier = cluster.endpoints()  # the rebuild's list, made before the POST below
    spec = {"model": "llama-3.1-8b-instruct", "qualityFloor": 0.95, "replicas": {"min": 1, "max": 2}}
    decision, created, _ = admissions.admit(ie.manifest("team-a", "chat", spec))
    assert created is not None
    assert (decision.phase, decision.gpu_class) == ("Pending", "H100-80GB")  # answered 201 on the H100
    # A cheaper node joins before the rebuild reads the nodes: placed afresh, chat would go there.
    kube.put("v1/nodes", gpu_node("l40s-0", CATALOG.get("L40S"), 1))
    admissions.rebuilding = True
    admissions._rebuild()
    assert admissions.capacity is not None
    assert [g.holders for g in admissions.capacity.free.node("h100-0").gpus] == [1]
    assert [g.holders for g in admissions.capacity.free.node("l40s-0").gpus] == [0]


def test_a_201_answered_while_the_capacity_is_rebuilt_is_not_adopted_again_by_the_next_post(kube: KubeCluster) -> None:
    """Kept without the uid the server gave it, the answer read as another replica's at the next POST: its GPUs
    counted twice, that POST was answered a node to provision with an H100 free."""
    for name in ("h100-0", "h100-1"):
        kube.put("v1/nodes", gpu_node(name, CATALOG.get("H100-80GB"), 1))
    cluster = ListedEarlier(kube.api_client())
    admissions = _Admissions(Services(cluster, SETTINGS, REGISTRY, CATALOG, clock=lambda: NOW))
    cluster.earlier = cluster.endpoints()  # the rebuild's list, made before the POST below
    spec = {"model": "llama-3.1-8b-instruct", "qualityFloor": 0.95, "replicas": {"min": 1, "max": 2}}
    first, _, _ = admissions.admit(ie.manifest("team-a", "chat", spec))
    assert (first.phase, first.gpu_class) == ("Pending", "H100-80GB")
    admissions.rebuilding = True
    admissions._rebuild()
    cluster.earlier = None
    second, _, _ = admissions.admit(ie.manifest("team-a", "chat-2", spec))
    assert (second.phase, second.gpu_class) == ("Pending", "H100-80GB")  # on the other H100, answered 201
