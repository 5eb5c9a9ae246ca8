"""The churn benchmark's play: which pods a scaled-down Deployment keeps, which node a pod that prefers one
is bound to, and what it checks once settled.

A ReplicaSet scaled down removes its pods that are not bound first, then those not Ready (kube-controller-
manager's `ActivePods` order). The play removed the pod of the highest index instead: on seed 102 an
endpoint whose replica's node went NotReady was scaled from two MI250X replicas to one (the other placed on
an MI300X); the play kept the pod on the NotReady node and held the Ready one as if a rolling update's,
and once the NotReady pod was evicted and bound again the endpoint had three Ready pods: the controller
kept two of them and the MI300X replica, Ready and unchanged, went (a disruption Kubernetes never makes).
"""

from __future__ import annotations

import json
import math
import random
from types import SimpleNamespace
from typing import Any, cast

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.controller import ControllerMetrics
from autoscaler.decide import PROMISE_ANNOTATION
from autoscaler.decide.workloads import HOSTNAME, PREFERRED
from autoscaler.kubetime import rfc3339
from benchmarks.churnkit.events import lose_nodes
from benchmarks.churnkit.figures import Tally, loose_ends
from benchmarks.churnkit.kinds import DEPLOYMENTS, NODES, PODS
from benchmarks.churnkit.play import RESERVATIONS, Play, Pod, reservation_name
from benchmarks.churnkit.run import Run
from localplay.kube_standin import KubeCluster
from scheduler.inventory import Allocation
from scheduler.synthetic import gpu_node
from tests.test_decide import CATALOG, REGISTRY


class DropsWrites:
    """A cluster stand-in for `Play.step` whose writes go nowhere: the tests read what the play would write."""

    def put(self, kind: str, obj: dict[str, Any]) -> None:
        pass

    def patch(self, kind: str, namespace: str | None, name: str, body: dict[str, Any]) -> None:
        pass

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        pass


class Deployments:
    """The one list `Play._wanted` reads of the cluster: endpoint team/ep's Deployment in `gpu_class` (its
    pods asking for one `resource`), written for the endpoint's incarnation `uid` where one is given."""

    def __init__(self, gpu_class: str = "MI250X", resource: str = "amd.com/gpu", uid: str | None = None) -> None:
        self.replicas = 0
        self.gpu_class, self.resource, self.uid = gpu_class, resource, uid

    def all(self, kind: str) -> list[dict[str, Any]]:
        annotations = {
            "egs.io/request-name": "ep",
            "egs.io/model": "llama-3.1-8b-instruct",
            "egs.io/variant": "bf16",
            "egs.io/gpu-class": self.gpu_class,
        }
        resources = {self.resource: "1"}
        template = {"spec": {"containers": [{"name": "vllm", "resources": {"requests": resources}}]}}
        name = f"ep-bf16-{self.gpu_class.lower()}"
        meta: dict[str, Any] = {"name": name, "namespace": "team", "annotations": annotations, "resourceVersion": "1"}
        if self.uid is not None:
            meta["ownerReferences"] = [
                {"apiVersion": "egs.dev/v1alpha1", "kind": "InferenceEndpoint", "name": "ep", "uid": self.uid}
            ]
        return [{"metadata": meta, "spec": {"replicas": self.replicas, "template": template}}]


def test_a_deployment_scaled_down_keeps_its_ready_pod_and_drops_the_one_on_a_node_gone_not_ready() -> None:
    deployments = Deployments()
    play = Play(cast(KubeCluster, deployments), CATALOG, REGISTRY, random.Random(0), 20.0)
    deployments.replicas = 2
    play.pods = play._wanted(0.0)
    first, second = sorted(play.pods.values(), key=lambda p: p.name)
    first.node, first.bound_at = "mi250x-0", 1.0  # its node went NotReady: not Ready since
    second.node, second.bound_at, second.ready = "mi250x-1", 1.0, True
    deployments.replicas = 1
    assert list(play._wanted(2.0)) == [second.key]
    # Scaled up again, the new pod takes the lowest free name.
    play.pods = {second.key: second}
    deployments.replicas = 2
    assert sorted(play._wanted(3.0)) == sorted([first.key, second.key])


def test_once_settled_the_play_counts_ready_endpoints_with_a_condition_stuck_and_endpoints_without_metrics() -> None:
    exposition = CollectorRegistry()
    ControllerMetrics(exposition).gauge("egs_endpoint_ready").labels("team", "ep", "llama", "L40S").set(1)
    families = text_string_to_metric_families(generate_latest(exposition).decode())
    held = {"type": "ScalingActive", "status": "False", "reason": "ReplicasHeld"}
    statuses = {
        "team/ep": {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}, held]},
        "team/other": {"phase": "Pending", "conditions": [held]},
    }
    assert loose_ends(statuses, families) == (1, 1)


def test_the_play_reads_the_controllers_loop_time_from_the_same_parse_as_its_series() -> None:
    exposition = CollectorRegistry()
    loops = ControllerMetrics(exposition).histogram("egs_autoscaler_reconcile_duration_seconds")
    for seconds in (0.25, 0.5):
        loops.observe(seconds)
    run = SimpleNamespace(loops=(0.0, 0.0))
    Run.sample_loop(cast(Run, run), text_string_to_metric_families(generate_latest(exposition).decode()))
    assert run.loops == (0.75, 2.0)


def two_h100_nodes_preferring(*names: str) -> tuple[list[dict[str, Any]], Play, dict[str, Any]]:
    """Two 2-GPU H100 nodes, the play, and a one-GPU pod template whose node affinity prefers `names`."""
    nodes = [gpu_node(f"h100-{i}", CATALOG.get("H100-80GB"), 2) for i in range(2)]
    play = Play(cast(KubeCluster, Deployments()), CATALOG, REGISTRY, random.Random(0), 20.0)
    prefers = {"weight": 100, "preference": {"matchExpressions": [{"key": HOSTNAME, "operator": "In",
                                                                  "values": list(names)}]}}  # fmt: skip
    resources = {"nvidia.com/gpu": "1"}
    template = {
        "spec": {
            "affinity": {"nodeAffinity": {PREFERRED: [prefers]}},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
            "containers": [{"name": "vllm", "resources": {"requests": resources, "limits": resources}}],
        }
    }
    return nodes, play, template


def test_the_play_binds_a_pod_on_a_node_it_prefers_though_another_is_listed_first() -> None:
    nodes, play, template = two_h100_nodes_preferring("h100-1")
    pod = Pod("team", "ep-0", "ep", "team/ep", template, 1.0, "H100-80GB")
    play.pods[pod.key] = pod
    play._schedule(0.0, nodes)
    assert pod.node == "h100-1"


def test_two_pods_of_one_deployment_preferring_two_nodes_are_spread_one_on_each_as_kube_scheduler_does() -> None:
    # An endpoint answered 201 with a replica on each H100 node: both its pods prefer both nodes, and each node
    # has room for both. Bound on the first listed, both took h100-0, where the next 201 had been answered.
    nodes, play, template = two_h100_nodes_preferring("h100-0", "h100-1")
    pods = [Pod("team", f"ep-abc123-{i}", "ep", "team/ep", template, 1.0, "H100-80GB") for i in range(2)]
    other = Pod("team", "other-def456-0", "other", "team/other", template, 1.0, "H100-80GB")
    for pod in (*pods, other):
        play.pods[pod.key] = pod
    play._schedule(0.0, nodes)
    assert sorted(p.node for p in pods) == ["h100-0", "h100-1"]
    assert other.node == "h100-0"  # another ReplicaSet's pod is not spread from them: first listed among equals


class Lost:
    """The cluster `lose_nodes` reads and writes: one endpoint answered 201 on `l40s-0`, before its pod is bound."""

    def __init__(self) -> None:
        self.deleted: list[str] = []

    def all(self, kind: str) -> list[dict[str, Any]]:
        answer = {"answer": "Created", "placements": [{"workers": [{"node": "l40s-0", "gpus": [1]}]}]}
        meta = {"name": "late", "namespace": "team", "annotations": {PROMISE_ANNOTATION: json.dumps(answer)}}
        return [{"metadata": meta}]

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        self.deleted.append(name)

    def patch(self, kind: str, namespace: str | None, name: str, body: Any) -> None:
        self.deleted.append(name)


def test_a_201_answered_on_a_node_lost_before_its_pod_is_bound_may_wait_again() -> None:
    # Seed 202: late-0 and late-2 were answered 201 on l40s-new-5 and the node went 12 s later, before their
    # pods were bound; only the endpoint Ready there was excused, so theirs counted as broken promises.
    kube = Lost()
    play = Play(cast(KubeCluster, kube), CATALOG, REGISTRY, random.Random(0), 20.0)
    serving = Pod("team", "ep-0", "ep", "team/ep", {}, 1.0, "L40S", node="l40s-0", ready=True)
    play.pods = {serving.key: serving}
    tally = Tally(answered_201={"team/late"})
    run = SimpleNamespace(kube=kube, play=play, tally=tally, script_rng=random.Random(0), minutes=lambda: 15.5)
    lose_nodes(cast(Run, run), 1)
    assert kube.deleted == ["l40s-0"]
    assert tally.lost_capacity == {"team/ep", "team/late"}


def test_a_late_202_names_the_pods_created_after_its_own_that_were_bound_first_in_its_class() -> None:
    play = Play(cast(KubeCluster, Deployments()), CATALOG, REGISTRY, random.Random(0), 20.0)

    def bound(endpoint: str, name: str, gpu_class: str, created: float, at: float, uid: str = "") -> None:
        pod = Pod("team", name, name, f"team/{endpoint}", {}, 1.0, gpu_class, (created, 1), node=f"{gpu_class}-new")
        pod.uid = uid or f"uid-{endpoint}"
        play.binds.append((at, pod))

    bound("late", "late-0", "MI300X", created=2.0, at=30.0)
    bound("older", "older-0", "MI300X", created=1.0, at=20.0)  # first in, first out: before it, rightly
    bound("jumped", "jumped-0", "MI300X", created=5.0, at=20.0)  # created after it, bound before it
    bound("other-class", "other-0", "L40S", created=5.0, at=20.0)
    bound("after", "after-0", "MI300X", created=6.0, at=40.0)  # bound after it: took nothing of its
    assert play.overtaken("uid-late", posted=1.5) == ["team/jumped-0@MI300X-new"]
    assert play.overtaken("uid-older", posted=0.5) == []


def test_a_reposted_endpoint_is_overtaken_by_its_earlier_incarnation_not_counted_as_it() -> None:
    play = Play(cast(KubeCluster, Deployments()), CATALOG, REGISTRY, random.Random(0), 20.0)
    for name, created, at, uid in [("chat-0", 2.0, 30.0, "uid-new"), ("chat-1", 5.0, 20.0, "uid-old")]:
        pod = Pod("team", name, name, "team/chat", {}, 1.0, "MI300X", (created, 1), node="MI300X-new", uid=uid)
        play.binds.append((at, pod))
    # The deleted incarnation's pod, created after the reposted one's and bound first, took its GPUs.
    assert play.overtaken("uid-new", posted=1.5) == ["team/chat-1@MI300X-new"]


class OneNode(Deployments):
    """One 1-GPU H100 node and endpoint team/ep's Deployment, with the pod objects the play writes kept as a server
    keeps them (put, patched, deleted)."""

    def __init__(self) -> None:
        super().__init__("H100-80GB", "nvidia.com/gpu")
        self.node = gpu_node("h100-0", CATALOG.get("H100-80GB"), 1)
        self.pods: dict[str, dict[str, Any]] = {}

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [self.node] if kind == NODES else super().all(kind) if kind == DEPLOYMENTS else []

    def put(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == PODS:
            self.pods[obj["metadata"]["name"]] = obj

    def patch(self, kind: str, namespace: str | None, name: str, body: dict[str, Any]) -> None:
        if kind == PODS:
            self.pods[name]["metadata"] |= body.get("metadata") or {}
            self.pods[name]["status"] = body.get("status", self.pods[name].get("status"))

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        self.pods.pop(name, None)


def test_a_bound_pod_deleted_stays_terminating_on_its_gpu_through_its_grace_period() -> None:
    # The play removed a pod the moment its ReplicaSet dropped it; a kubelet keeps it, Terminating, up to its
    # terminationGracePeriodSeconds (30 s, compressed 20x here: 1.5 s), and kube-scheduler gives its GPU to no
    # other pod until it has gone.
    cluster = OneNode()
    play = Play(cast(KubeCluster, cluster), CATALOG, REGISTRY, random.Random(0), 20.0)
    cluster.replicas = 1
    play.step(0.0)
    (old,) = cluster.pods
    assert play.pods[f"team/{old}"].node == "h100-0"
    cluster.replicas = 0
    play.step(1.0)
    assert not play.pods and "deletionTimestamp" in cluster.pods[old]["metadata"]
    cluster.replicas = 1  # scaled up again within the grace period: a new pod, under another name, waits for the GPU
    play.step(1.5)
    (new,) = play.pods.values()
    assert new.name != old and not new.node and set(cluster.pods) == {old, new.name}
    play.step(2.6)
    assert set(cluster.pods) == {new.name} and play.pods[new.key].node == "h100-0"


def test_the_play_stamps_a_pods_ready_condition_when_it_turns_ready() -> None:
    # rev14 finding 7: the controller holds an endpoint from moving while a pod of it turned Ready lately
    # (`consolidation.last_changes` reads the Ready condition's lastTransitionTime); the play wrote none.
    cluster = OneNode()
    play = Play(cast(KubeCluster, cluster), CATALOG, REGISTRY, random.Random(0), 20.0)
    cluster.replicas = 1
    play.step(100.0)
    (name,) = cluster.pods
    pod = play.pods[f"team/{name}"]

    def ready() -> dict[str, Any]:
        (condition,) = [c for c in cluster.pods[name]["status"]["conditions"] if c["type"] == "Ready"]
        return cast(dict[str, Any], condition)

    assert ready() == {"type": "Ready", "status": "False", "lastTransitionTime": rfc3339(pod.bound_at)}
    turned = math.ceil(pod.bound_at + pod.load_s) + 1.0
    play.step(turned)
    assert ready() == {"type": "Ready", "status": "True", "lastTransitionTime": rfc3339(turned)}
    play.step(turned + 10)  # no flip: the time stays
    assert ready()["lastTransitionTime"] == rfc3339(turned)


class Reservations(DropsWrites):
    """A cluster stand-in that keeps KAI's reservation pods the play writes, and lists nothing."""

    def __init__(self) -> None:
        self.reserved: set[str] = set()

    def all(self, kind: str) -> list[dict[str, Any]]:
        return []

    def put(self, kind: str, obj: dict[str, Any]) -> None:
        if obj["metadata"]["namespace"] == RESERVATIONS:
            self.reserved.add(obj["metadata"]["name"])

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        if namespace == RESERVATIONS:
            self.reserved.discard(name)


def test_a_kai_gpus_reservation_pod_stays_while_a_terminating_pod_still_shares_it() -> None:
    # rev14 finding 2: KAI keeps a GPU's reservation pod until its group's last pod is gone; the play deleted it
    # as soon as the sharing pod went Terminating, which still held its share through its grace period.
    cluster = Reservations()
    play = Play(cast(KubeCluster, cluster), CATALOG, REGISTRY, random.Random(0), 20.0)
    share = Allocation("l40s-0", (0,), 8000, sharing="kai")
    template = {"spec": {"containers": [{"name": "vllm"}]}}
    pod = Pod("team", "ep-0", "ep", "team/ep", template, 60.0, "L40S-48GB", node="l40s-0", ready=True, held=(share,))
    play.pods[pod.key] = pod
    play._report(10.0)
    assert cluster.reserved == {reservation_name("l40s-0", 0)}
    play.terminating[pod.key] = (play.pods.pop(pod.key), 11.5)
    play._report(10.5)
    assert cluster.reserved == {reservation_name("l40s-0", 0)}
    del play.terminating[pod.key]  # its grace period over
    play._report(11.5)
    assert cluster.reserved == set()
