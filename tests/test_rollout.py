"""The plays' Deployment controller (`localplay.rollout`): a changed template rolls as the Deployment's strategy
says, as kube-controller-manager rolls it. Churn's play rolled every change as a surge (a new pod beside every
Ready old one), while EGS writes `maxSurge: 0, maxUnavailable: 1`: the old pod goes first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from localplay.demo_cluster import ClusterPlay, PlaySettings
from localplay.kube_standin import KubeCluster
from localplay.rollout import ReplicaSet, Running, Strategy, pod_names, revision, rolled, scaled
from localplay.vllm_standin import VllmStandIn

EGS = Strategy(recreate=False, max_surge=0, max_unavailable=1)
"""What `scheduler.manifests` writes."""


def deployment(replicas: int, model: str = "phi", **strategy: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"replicas": replicas, "template": {"spec": {"containers": [{"args": [model]}]}}}
    if strategy:
        spec["strategy"] = strategy
    return spec


def test_egs_rollout_of_one_replica_removes_the_old_pod_before_it_makes_the_new_one() -> None:
    assert rolled(1, EGS, ReplicaSet(0, 0), [ReplicaSet(1, 1)]) == (1, [0])


def test_egs_rollout_of_two_replicas_keeps_one_serving_until_a_new_pod_is_ready() -> None:
    # One old pod goes, one new pod is made; the second old pod stays until the new one is Ready.
    assert rolled(2, EGS, ReplicaSet(0, 0), [ReplicaSet(2, 2)]) == (1, [1])
    assert rolled(2, EGS, ReplicaSet(1, 0), [ReplicaSet(1, 1)]) == (1, [1])
    assert rolled(2, EGS, ReplicaSet(1, 1), [ReplicaSet(1, 1)]) == (2, [0])


def test_a_surge_keeps_the_ready_old_pod_until_the_new_one_is_ready() -> None:
    surge = Strategy(recreate=False, max_surge=1, max_unavailable=0)
    assert rolled(1, surge, ReplicaSet(0, 0), [ReplicaSet(1, 1)]) == (1, [1])
    assert rolled(1, surge, ReplicaSet(1, 0), [ReplicaSet(1, 1)]) == (1, [1])
    assert rolled(1, surge, ReplicaSet(1, 1), [ReplicaSet(1, 1)]) == (1, [0])


def test_old_pods_not_ready_go_first_and_ready_ones_only_within_what_may_be_unavailable() -> None:
    # Two old pods, one on a node gone NotReady: it goes, and the Ready one stays while the new pod loads.
    assert rolled(2, EGS, ReplicaSet(0, 0), [ReplicaSet(2, 1)]) == (1, [1])
    # Of two old ReplicaSets, the oldest is scaled down first.
    assert rolled(2, EGS, ReplicaSet(0, 0), [ReplicaSet(1, 1), ReplicaSet(1, 1)]) == (1, [0, 1])


def test_recreate_makes_the_new_pods_once_every_old_one_is_gone() -> None:
    recreate = Strategy(recreate=True, max_surge=0, max_unavailable=0)
    assert rolled(2, recreate, ReplicaSet(0, 0), [ReplicaSet(2, 2)]) == (2, [0])


def test_a_deployment_scaled_without_a_rollout_scales_its_one_replica_set() -> None:
    assert rolled(3, EGS, ReplicaSet(1, 1), []) == (3, [])
    assert rolled(1, EGS, ReplicaSet(3, 3), []) == (1, [])


def test_the_strategy_is_read_as_the_api_server_defaults_and_resolves_it() -> None:
    assert Strategy.of(deployment(1)) == Strategy(False, 1, 0)  # 25% each: the surge rounds up
    assert Strategy.of(deployment(4)) == Strategy(False, 1, 1)
    halves = {"maxSurge": "50%", "maxUnavailable": "50%"}
    assert Strategy.of(deployment(3, type="RollingUpdate", rollingUpdate=halves)) == Strategy(False, 2, 1)
    none = {"maxSurge": 0, "maxUnavailable": 0}
    assert Strategy.of(deployment(2, type="RollingUpdate", rollingUpdate=none)) == Strategy(False, 0, 1)
    assert Strategy.of(deployment(1, type="RollingUpdate", rollingUpdate={"maxUnavailable": 3})).max_unavailable == 1
    assert Strategy.of(deployment(2, type="Recreate")).recreate


def test_a_deployment_with_a_new_template_names_its_replica_sets_by_revision() -> None:
    egs = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    before, now = deployment(2, "mistral", **egs), deployment(2, "phi", **egs)
    old, new = revision(before["template"]), revision(now["template"])
    assert old != new
    assert scaled(now, {old: ReplicaSet(2, 2)}) == {new: 1, old: 1}
    # Rolled back: the old template's pods are its new ReplicaSet's again, and the other's pod not Ready goes.
    assert scaled(before, {new: ReplicaSet(1, 0), old: ReplicaSet(1, 1)}) == {old: 2, new: 0}


@pytest.mark.parametrize("replicas", [0, 1, 2, 5])
def test_every_rollout_ends_with_the_replicas_of_the_new_template_once_they_are_ready(replicas: int) -> None:
    for strategy in (EGS, Strategy(False, 1, 0), Strategy(False, 2, 2), Strategy(True, 0, 0)):
        new, old = ReplicaSet(0, 0), [ReplicaSet(3, 3)]
        for _ in range(10):
            pods, olds = rolled(replicas, strategy, new, old)
            assert pods + sum(olds) <= max(replicas + strategy.max_surge, 3)
            new, old = ReplicaSet(pods, pods), [ReplicaSet(o, o) for o in olds]
        assert (new.pods, [o.pods for o in old]) == (replicas, [0])


def named(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "ep-int4-a10g", "namespace": "team"}, "spec": spec}


def test_the_pods_kept_are_the_bound_and_ready_ones_bound_first_and_new_ones_take_the_lowest_free_names() -> None:
    before, now = deployment(2, "mistral"), deployment(2, "phi", type="RollingUpdate", rollingUpdate={"maxSurge": 0})
    old = f"ep-int4-a10g-{revision(before['template'])}"
    pods = [Running(f"{old}-0", True, True, 5.0, 0.0), Running(f"{old}-1", True, True, 3.0, 0.0)]
    # The pod bound last goes first; the new template's pod is its ReplicaSet's first.
    assert set(pod_names(named(now), pods)) == {f"ep-int4-a10g-{revision(now['template'])}-0", f"{old}-1"}
    assert set(pod_names(named(before), pods)) == {f"{old}-0", f"{old}-1"}
    # Scaled down, the pod not bound goes first, then the one bound last.
    unbound = Running(f"{old}-2", False, False, 0.0, 1.0)
    assert pod_names(named(deployment(2, "mistral")), [*pods, unbound]) == [f"{old}-1", f"{old}-0"]
    assert pod_names(named(deployment(1, "mistral")), [*pods, unbound]) == [f"{old}-1"]


class Deployments:
    """The one list `ClusterPlay._wanted` reads: one Deployment, its template and replicas as set."""

    def __init__(self) -> None:
        self.spec: dict[str, Any] = {}

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [named(self.spec)]


def test_the_demos_cluster_rolls_a_changed_template_as_its_deployments_strategy_says() -> None:
    kube = Deployments()
    settings = PlaySettings(node_delay_s=60, load_s=10, idle_release_s=300, throughput_rps={})
    play = ClusterPlay(cast(KubeCluster, kube), cast(VllmStandIn, None), settings, Path("targets.yaml"))
    egs = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    kube.spec = gpu_deployment(2, "mistral", **egs)
    play.pods = play._wanted(0.0)
    for i, pod in enumerate(sorted(play.pods.values(), key=lambda p: p.name)):
        pod.node, pod.first_gpu, pod.placed_at = "gpu-h100-1", i, 0.0
    kube.spec = gpu_deployment(2, "phi", **egs)
    rolled_once = play._wanted(20.0)  # both old pods Ready: one goes, one new pod is made
    assert sorted(p.template["spec"]["containers"][0]["args"][0] for p in rolled_once.values()) == ["mistral", "phi"]
    play.pods = rolled_once
    [new] = [p for p in play.pods.values() if p.created == 20.0]
    new.node, new.placed_at = "gpu-h100-1", 21.0
    assert [p.template["spec"]["containers"][0]["args"][0] for p in play._wanted(25.0).values()] == ["phi", "mistral"]
    assert [p.template["spec"]["containers"][0]["args"][0] for p in play._wanted(31.0).values()] == ["phi", "phi"]


def gpu_deployment(replicas: int, model: str, **strategy: Any) -> dict[str, Any]:
    spec = deployment(replicas, model, **strategy)
    spec["template"]["spec"]["containers"][0]["resources"] = {"requests": {"nvidia.com/gpu": 1}}
    spec["template"]["metadata"] = {}
    return spec
