"""The controller's handover: the old replica lets go at once, and the new one is ready to lead.

Covers: a leader renews, and hands the Lease back, in one write, with no read before it (a read waited
on the API server while the next replica started), bounded as a write is; a standby replica writes nothing but
keeps warm what a new leader would read cold: the demand history, read from a little before its last
read, and the node orders in flight with the provisioning delays they showed; a watch's change wakes a
leader, not a standby. Skips the processes and the SIGTERM (tests/test_controller_process.py, the churn
benchmark's handover).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from kubernetes import client

from autoscaler.adapters.kubernetes import Cluster
from autoscaler.controller import HISTORY_OVERLAP_S, Controller
from autoscaler.kubetime import rfc3339
from autoscaler.leader import LEASE_NAME, Elector, LeaderSettings
from localplay.kube_standin import KubeCluster
from tests.clock import Clock
from tests.test_controller import ENDPOINTS, FixedSignals, controller
from tests.test_decide import NOW, endpoint, h100
from tests.test_history_reads import WEEK, Asked
from tests.test_leader import LEASES, NAMESPACE, elector, lease
from tests.test_orders import H100, waiting
from tests.test_prometheus_reads import BlackHole, black_hole  # noqa: F401 (the fixture)


class Switched:
    """The Lease store of a replica whose API server stops answering: the real adapter until `to` is set."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster, self.to = cluster, cluster

    def lease(self, namespace: str, name: str) -> Any:
        return self.to.lease(namespace, name)

    def take_lease(self, namespace: str, name: str, spec: Any, read: Any, annotations: Any = None) -> Any:
        return self.to.take_lease(namespace, name, spec, read, annotations)


def pair(kube: KubeCluster, clock: Clock, lease_clock: Clock, **signals: Any) -> tuple[Controller, Controller]:
    """Replica a leading and replica b standing by, on one cluster and one clock."""
    a = controller(kube, signals.get("a"), clock=clock, monotonic=lease_clock)
    b = controller(kube, signals.get("b"), clock=clock, name="b", monotonic=lease_clock)
    assert a.elector.leading() and not b.elector.leading()
    return a, b


def test_a_leader_hands_the_lease_back_in_one_write_with_no_read_before_it(kube: KubeCluster) -> None:
    # That the next replica then takes it at its next retry is test_leader.py's.
    a = elector(kube, "a", Clock())
    assert a.step()
    before = len(kube.requests())
    a.release()
    made = [(r.method, r.url.path) for r in kube.requests()[before:]]
    assert made == [("PATCH", f"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{LEASE_NAME}")]


def test_a_leader_renews_the_version_it_wrote_in_one_write_and_reads_when_another_wrote_since(
    kube: KubeCluster,
) -> None:
    clock = Clock()
    a = elector(kube, "a", clock)
    assert a.step()
    for t in (2.0, 4.0):
        before = len(kube.requests())
        clock.t = t
        assert a.step()
        assert [r.method for r in kube.requests()[before:]] == ["PATCH"]
    kube.patch(LEASES, NAMESPACE, LEASE_NAME, {"spec": {"holderIdentity": "b"}})  # b took it meanwhile
    clock.t = 6.0
    assert not a.step()  # its write refused, it read the Lease: b's now


def test_a_lease_written_by_another_since_is_not_handed_back(kube: KubeCluster) -> None:
    a = elector(kube, "a", Clock())
    assert a.step()
    kube.patch(LEASES, NAMESPACE, LEASE_NAME, {"spec": {"holderIdentity": "b"}})  # b took it meanwhile
    a.release()
    assert lease(kube)["holderIdentity"] == "b"


def test_handing_the_lease_back_to_an_api_server_that_never_answers_is_bounded_as_a_write(
    kube: KubeCluster,
    black_hole: BlackHole,  # noqa: F811
) -> None:
    # SIGTERM's release runs before the process ends: bounded by the write deadline (the Lease's margin),
    # where the read before it waited the whole read timeout first.
    store = Switched(Cluster(kube.api_client()))
    a = Elector(store, NAMESPACE, "a", LeaderSettings(), clock=Clock())
    assert a.step()
    configuration = client.Configuration()
    configuration.host = black_hole.url
    store.to = Cluster(client.ApiClient(configuration), timeout_s=10.0, write_timeout_s=0.5)
    started = time.monotonic()
    a.release()
    assert time.monotonic() - started < 0.5 + 2.0
    assert not a.leading()


def test_a_standby_keeps_the_history_warm_so_a_new_leaders_first_loop_reads_only_what_is_new(
    kube: KubeCluster,
) -> None:
    clock, lease_clock = Clock(NOW), Clock(0.0)
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    reads = Asked(FixedSignals(demand=1.0))
    a, b = pair(kube, clock, lease_clock, a=FixedSignals(demand=1.0), b=reads)
    a.reconcile()
    assert not b.reconcile().leader
    clock.t += 30
    assert not b.reconcile().leader
    assert b.cluster.writes == 0  # a standby never writes
    a.elector.release()  # SIGTERM
    assert b.elector.step()
    clock.t += 30
    assert b.reconcile().errors == []
    assert reads.asked == [WEEK, 30 + HISTORY_OVERLAP_S, 30 + HISTORY_OVERLAP_S]


def test_a_standby_learns_the_orders_and_their_delays_that_a_new_leader_promises_from(kube: KubeCluster) -> None:
    clock, lease_clock = Clock(NOW), Clock(0.0)
    a, b = pair(kube, clock, lease_clock)
    kube.put("v1/pods", waiting("wants-h100", 8, NOW - 100))
    b.reconcile()
    assert b.orders.orders == {H100: (NOW - 99,)}  # to the second: up to a second after the pod's condition
    joined = h100("gpu-1")
    joined["status"]["conditions"][0]["lastTransitionTime"] = rfc3339(NOW + 200)
    kube.put("v1/nodes", joined)
    clock.t += 210
    b.reconcile()
    assert b.cluster.writes == 0
    a.elector.release()
    assert b.elector.step()
    clock.t += 30
    first = b.reconcile()
    assert first.observation is not None and dict(first.observation.orders.delays) == {H100: (300.0,)}


def test_a_standby_whose_reads_fail_is_a_follower_not_a_failed_reconcile(kube: KubeCluster) -> None:
    # Its reads only keep it warm: counted as errors, an API server's hiccup on a standby raised the
    # leader's error ratio (errors over every result but follower).
    _, b = pair(kube, Clock(NOW), Clock(0.0))
    kube.fail("GET", 503, times=20, path_part="/nodes")
    outcome = b.reconcile()
    assert (outcome.leader, outcome.errors, outcome.result) == (False, [], "follower")


def test_a_watched_change_wakes_the_leader_and_not_a_standby(kube: KubeCluster) -> None:
    leader = controller(kube, None)
    standby = controller(kube, None, name="b")
    threads = [threading.Thread(target=c.run, args=(30.0,)) for c in (leader, standby)]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + 10
        while (leader.last_loop_at is None or standby.last_loop_at is None) and time.monotonic() < deadline:
            time.sleep(0.05)
        loops = {c.identity: loops_of(c) for c in (leader, standby)}
        for i in range(3):
            kube.put(ENDPOINTS, endpoint(f"chat-{i}"))
        deadline = time.monotonic() + 10
        while loops_of(leader) == loops["a"] and time.monotonic() < deadline:  # the interval is 30 s: woken
            time.sleep(0.05)
        time.sleep(0.5)  # as long again for a standby woken as well
        assert loops_of(leader) > loops["a"]
        assert loops_of(standby) == loops["b"]
    finally:
        for c in (leader, standby):
            c.shutdown()
        for t in threads:
            t.join(10)


def loops_of(c: Controller) -> float:
    """Loops the replica ran so far, whatever their result."""
    total = c.exposition_registry.get_sample_value
    return sum(total("egs_autoscaler_reconcile_total", {"result": r}) or 0.0 for r in ("success", "error", "follower"))
