"""The churn play's log times a 202's pods by the endpoint incarnation (uid) its Deployment was written for:
keyed by the endpoint's name, a reposted endpoint's first 202 was logged with its second incarnation's
pods ("pods N s, bound N s" measured from the wrong POST)."""

from __future__ import annotations

import random
from typing import Any, cast

from benchmarks.churnkit.kinds import DEPLOYMENTS, NODES
from benchmarks.churnkit.play import Play
from localplay.kube_standin import KubeCluster
from scheduler.synthetic import gpu_node
from tests.test_churn_play import Deployments, DropsWrites
from tests.test_decide import CATALOG, REGISTRY


class Cluster(DropsWrites, Deployments):
    """What `Play.step` reads and writes of the cluster, in memory: one node of two H100s and, once served,
    endpoint team/ep's Deployment of one replica (`Deployments`); the writes are dropped."""

    def __init__(self) -> None:
        super().__init__("H100-80GB", "nvidia.com/gpu")
        self.node = gpu_node("h100-0", CATALOG.get("H100-80GB"), 2)

    def all(self, kind: str) -> list[dict[str, Any]]:
        if kind == NODES:
            return [self.node]
        return super().all(kind) if kind == DEPLOYMENTS and self.replicas else []

    def serve(self, uid: str | None) -> None:
        """Endpoint team/ep's one replica, written for its incarnation `uid`; None: the endpoint deleted, its
        Deployment and pods garbage-collected."""
        self.uid, self.replicas = uid, 0 if uid is None else 1


def test_a_reposted_endpoints_pods_are_timed_apart_from_its_first_incarnations() -> None:
    cluster = Cluster()
    play = Play(cast(KubeCluster, cluster), CATALOG, REGISTRY, random.Random(0), 20.0)
    cluster.serve("uid-1")
    play.step(10.0)
    cluster.serve(None)  # deleted
    play.step(30.0)
    cluster.serve("uid-2")  # posted again: the controller writes its Deployment anew
    play.step(50.0)
    assert play.seen == {"uid-1": (10.0, 10.0), "uid-2": (50.0, 50.0)}
