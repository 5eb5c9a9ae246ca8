"""Watches (autoscaler/watches.py) through the real Kubernetes adapter against kmock, in real time.

Covers: another writer's change wakes the loop and the echo of the controller's own write does not; a
Node's heartbeat does not and a new label does; a watch the server ends, or that fails to open, is
opened again; the stand-in, stopping, ends the watches still open. The whole process (a 201's
workload within 2 s) is in test_controller_process.py.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from autoscaler.adapters.kubernetes import Cluster
from autoscaler.watches import Watches
from localplay.kube_standin import KubeCluster
from tests.test_decide import h100

DEPLOYMENTS = "apps/v1/deployments"
NODE = ("v1", "Node")
DEPLOYMENT = ("apps/v1", "Deployment")


class Woken:
    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self) -> None:
        self.event.set()

    def within(self, seconds: float) -> bool:
        woken = self.event.wait(seconds)
        self.event.clear()
        return woken


def deployment(name: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/managed-by": "egs"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "team-a", "labels": labels},
        "spec": {"replicas": 1},
    }


def watching(
    kube: KubeCluster, kinds: tuple[tuple[str, str], ...], timeout_s: float = 300
) -> tuple[Cluster, Woken, Watches]:
    cluster = Cluster(kube.api_client())
    woken = Woken()
    watches = Watches(cluster, kinds, woken, timeout_s=timeout_s)
    watches.start()
    return cluster, woken, watches


def test_another_writer_s_change_wakes_the_loop_and_its_own_echo_does_not(kube: KubeCluster) -> None:
    cluster, woken, watches = watching(kube, (DEPLOYMENT,))
    try:
        assert not woken.within(0.5)  # opening the watch is no change
        cluster.apply(deployment("chat"))
        assert not woken.within(0.5)
        kube.patch(DEPLOYMENTS, "team-a", "chat", {"status": {"readyReplicas": 1}})  # the Deployment controller
        assert woken.within(2)
        kube.put(DEPLOYMENTS, {**deployment("other"), "metadata": {"name": "other", "namespace": "team-a"}})
        assert not woken.within(0.5)  # not EGS's (no managed-by label): not watched
    finally:
        watches.stop()
    assert watches.changes == 1


def test_a_node_s_heartbeat_does_not_wake_the_loop_and_a_new_label_does(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    _, woken, watches = watching(kube, (NODE,))
    try:
        assert not woken.within(0.3)
        kube.patch("v1/nodes", None, "gpu-0", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
        assert woken.within(2)  # the first change seen of a node: what it was before is not known
        heartbeat = {"type": "Ready", "status": "True", "lastHeartbeatTime": "2027-01-15T08:00:00Z"}
        kube.patch("v1/nodes", None, "gpu-0", {"status": {"conditions": [heartbeat]}})
        assert not woken.within(0.5)
        kube.patch("v1/nodes", None, "gpu-0", {"metadata": {"labels": {"nvidia.com/gpu.product": "NVIDIA-H200"}}})
        assert woken.within(2)
    finally:
        watches.stop()


def test_a_watch_that_ends_or_fails_to_open_is_opened_again(kube: KubeCluster) -> None:
    kube.fail("GET", 500, times=1, path_part="/nodes")  # the first try fails; the next is 1 s later
    _, woken, watches = watching(kube, (NODE,), timeout_s=1)
    try:
        assert not woken.within(2.5)  # the server ended the first stream after 1 s; a second is open
        kube.put("v1/nodes", h100("gpu-1"))
        assert woken.within(2)
    finally:
        watches.stop()


def test_a_stopping_stand_in_ends_its_open_watches_rather_than_waiting_them_out() -> None:
    kube = KubeCluster().start()
    _, _, watches = watching(kube, (NODE,))
    try:
        while not any("watch=" in str(r.url) for r in kube.requests("GET")):
            time.sleep(0.02)
        started = time.monotonic()
        kube.stop()
        assert time.monotonic() - started < 5  # it waited out its 10 s join while a watch was open
    finally:
        watches.stop()
