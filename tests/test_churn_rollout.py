"""Churn's play rolls a Deployment's changed template as its strategy says (`localplay.rollout`): it rolled every
change as a surge (a new pod beside every Ready old one, until the new one was Ready), a rollout EGS never asks
for. EGS writes `maxSurge: 0, maxUnavailable: 1` (`scheduler.manifests`): an old pod goes before a new one is
made, and with two replicas one serves the template before while the other loads the new one.
"""

from __future__ import annotations

import random
from typing import Any, cast

from benchmarks.churnkit.kinds import DEPLOYMENTS, NODES
from benchmarks.churnkit.play import Play
from localplay.kube_standin import KubeCluster
from scheduler.synthetic import gpu_node
from tests.test_churn_play import DropsWrites
from tests.test_decide import CATALOG, REGISTRY

EGS = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}


class Deployment:
    """The one list `Play._wanted` reads: endpoint team/ep's Deployment, its template serving `model`."""

    def __init__(self, replicas: int, strategy: dict[str, Any] | None = None) -> None:
        self.replicas, self.strategy, self.model = replicas, strategy, "mistral-7b-instruct-v0.3"

    def all(self, kind: str) -> list[dict[str, Any]]:
        annotations = {
            "egs.io/request-name": "ep",
            "egs.io/model": self.model,
            "egs.io/variant": "int4",
            "egs.io/gpu-class": "A10G",
        }
        container = {"name": "vllm", "args": [self.model], "resources": {"requests": {"nvidia.com/gpu": "1"}}}
        spec: dict[str, Any] = {"replicas": self.replicas, "template": {"spec": {"containers": [container]}}}
        if self.strategy is not None:
            spec["strategy"] = self.strategy
        meta = {"name": "ep-int4-a10g", "namespace": "team", "annotations": annotations, "resourceVersion": "1"}
        return [{"metadata": meta, "spec": spec}]


def serving(play: Play, now: float) -> list[str]:
    """The models of the pods the play's Deployment controller keeps and makes at `now`, its pods as they are."""
    play.pods = play._wanted(now)
    return sorted(p.template["spec"]["containers"][0]["args"][0][:4] for p in play.pods.values())


def run(play: Play, now: float) -> None:
    """Every pod bound, and Ready (loaded) by `now`."""
    for i, pod in enumerate(sorted(play.pods.values(), key=lambda p: p.name)):
        if not pod.node:
            pod.node, pod.bound_at = f"a10g-{i}", now
        pod.ready = True


def test_egs_rollout_of_one_replica_removes_the_old_pod_before_the_new_one_is_made() -> None:
    deployment = Deployment(1, EGS)
    play = Play(cast(KubeCluster, deployment), CATALOG, REGISTRY, random.Random(0), 20.0)
    assert serving(play, 0.0) == ["mist"]
    run(play, 1.0)
    deployment.model = "phi-3-mini-4k-instruct"
    assert serving(play, 2.0) == ["phi-"]


def test_egs_rollout_of_two_replicas_keeps_one_old_pod_serving_until_a_new_one_is_ready() -> None:
    deployment = Deployment(2, EGS)
    play = Play(cast(KubeCluster, deployment), CATALOG, REGISTRY, random.Random(0), 20.0)
    serving(play, 0.0)
    run(play, 1.0)
    deployment.model = "phi-3-mini-4k-instruct"
    assert serving(play, 2.0) == ["mist", "phi-"]
    assert serving(play, 3.0) == ["mist", "phi-"]  # the new pod not Ready: the old one serves on
    run(play, 4.0)
    assert serving(play, 5.0) == ["phi-", "phi-"]


def test_a_deployment_that_names_no_strategy_rolls_as_kubernetes_defaults_a_surge_of_one() -> None:
    deployment = Deployment(1)
    play = Play(cast(KubeCluster, deployment), CATALOG, REGISTRY, random.Random(0), 20.0)
    serving(play, 0.0)
    run(play, 1.0)
    deployment.model = "phi-3-mini-4k-instruct"
    assert serving(play, 2.0) == ["mist", "phi-"]
    run(play, 3.0)
    assert serving(play, 4.0) == ["phi-"]


class Cluster(DropsWrites, Deployment):
    """What `Play.step` reads and writes of the cluster, in memory: one 2-GPU A10G node beside the Deployment;
    the writes are dropped."""

    def all(self, kind: str) -> list[dict[str, Any]]:
        if kind == NODES:
            return [gpu_node("a10g-0", CATALOG.get("A10G"), 2)]
        return super().all(kind) if kind == DEPLOYMENTS else []


def test_the_plays_step_rolls_egs_one_replica_with_the_old_pod_gone_before_the_new_one() -> None:
    # The tests above read `Play._wanted`; this one runs the step, where the surge rollout lived (before, the
    # old pod served on beside the new one until it was Ready).
    cluster = Cluster(1, EGS)
    play = Play(cast(KubeCluster, cluster), CATALOG, REGISTRY, random.Random(0), 20.0)
    play.step(0.0)
    play.step(3600.0)
    assert [(p.template["spec"]["containers"][0]["args"][0][:4], p.ready) for p in play.pods.values()] == [
        ("mist", True)
    ]
    cluster.model = "phi-3-mini-4k-instruct"
    play.step(3601.0)
    assert sorted(p.template["spec"]["containers"][0]["args"][0][:4] for p in play.pods.values()) == ["phi-"]
