"""The churn play's log times a 202's pods by the endpoint incarnation (uid) its Deployment was written for:
keyed by the endpoint's name, a reposted endpoint's first 202 was logged with its second incarnation's
pods ("pods N s, bound N s" measured from the wrong POST)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, cast

from benchmarks.churn import DEPLOYMENTS, NODES, Play
from localplay.kube_standin import KubeCluster
from scheduler.catalog import Catalog
from scheduler.registry import Registry
from scheduler.synthetic import gpu_node

REPO = Path(__file__).resolve().parent.parent
CATALOG = Catalog.load()
REGISTRY = Registry.load(REPO / "examples" / "models.yaml", CATALOG)


class Cluster:
    """What `Play.step` reads and writes of the cluster, in memory: the writes are dropped."""

    def __init__(self) -> None:
        self.objects: dict[str, list[dict[str, Any]]] = {NODES: [gpu_node("h100-0", CATALOG.get("H100-80GB"), 2)]}

    def all(self, kind: str) -> list[dict[str, Any]]:
        return self.objects.get(kind, [])

    def put(self, kind: str, obj: dict[str, Any]) -> None:
        pass

    def patch(self, kind: str, namespace: str | None, name: str, body: dict[str, Any]) -> None:
        pass

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        pass

    def serve(self, uid: str) -> None:
        """One Deployment of endpoint team/ep, written for its incarnation `uid`, and nothing else."""
        annotations = {
            "egs.io/request-name": "ep",
            "egs.io/model": "llama-3.1-8b-instruct",
            "egs.io/variant": "bf16",
            "egs.io/gpu-class": "H100-80GB",
        }
        owner = {"apiVersion": "egs.dev/v1alpha1", "kind": "InferenceEndpoint", "name": "ep", "uid": uid}
        resources = {"nvidia.com/gpu": "1"}
        container = {"name": "vllm", "resources": {"requests": resources, "limits": resources}}
        tolerations = [{"key": "nvidia.com/gpu", "operator": "Exists"}]
        template = {"spec": {"containers": [container], "tolerations": tolerations}}
        meta = {"name": "ep-bf16", "namespace": "team", "annotations": annotations, "ownerReferences": [owner]}
        self.objects[DEPLOYMENTS] = [{"metadata": meta, "spec": {"replicas": 1, "template": template}}]


def test_a_reposted_endpoints_pods_are_timed_apart_from_its_first_incarnations() -> None:
    cluster = Cluster()
    play = Play(cast(KubeCluster, cluster), CATALOG, REGISTRY, random.Random(0), 20.0)
    cluster.serve("uid-1")
    play.step(10.0)
    cluster.objects[DEPLOYMENTS] = []  # deleted: its Deployment and pods garbage-collected
    play.step(30.0)
    cluster.serve("uid-2")  # posted again: the controller writes its Deployment anew
    play.step(50.0)
    assert play.seen == {"uid-1": (10.0, 10.0), "uid-2": (50.0, 50.0)}
