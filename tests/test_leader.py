"""Leader election (autoscaler/leader.py) through the real Kubernetes adapter against kmock, with injected clocks.

Covers the findings of issue 21: at the chart's defaults (2 replicas, `--interval 30`, a 15 s Lease)
the leader never changes while it is healthy; another replica's skewed clock decides nothing (expiry is
timed from when this replica saw the record change); a crashed leader is replaced one Lease after it was
last seen renewing, not before; a leader that cannot renew stops writing at its renew deadline, before
anyone may take over, and a write it began ends before then; a leader handing the Lease back on SIGTERM
is replaced at the next retry. What it skips: real API-server latency (kmock answers at once).
"""

from __future__ import annotations

import threading
import time

import pytest
from kubernetes import client

from autoscaler.adapters.kubernetes import Cluster, TemporaryKubernetesError
from autoscaler.leader import LEASE_NAME, Elector, LeaderSettings
from common.errors import InputError
from localplay.kube_standin import KubeCluster
from tests.clock import Clock
from tests.test_prometheus_reads import BlackHole

LEASES = "coordination.k8s.io/v1/leases"
NAMESPACE = "egs-system"
NOW = 1_800_000_000.0


def elector(kube: KubeCluster, name: str, clock: Clock, wall_offset_s: float = 0.0) -> Elector:
    return Elector(Cluster(kube.api_client()), NAMESPACE, name, clock=clock, wall=lambda: NOW + clock.t + wall_offset_s)


def lease(kube: KubeCluster) -> dict[str, object]:
    found = kube.get(LEASES, NAMESPACE, LEASE_NAME)
    assert found is not None
    spec: dict[str, object] = found["spec"]
    return spec


def test_at_the_chart_defaults_a_healthy_leader_keeps_the_lease(kube: KubeCluster) -> None:
    # The finding: renewed once per 30 s loop, a 15 s Lease changed hands whenever the other replica's
    # loop fell in the gap. Renewed every retry period apart from the loop, it never does.
    clock = Clock()
    a, b = elector(kube, "a", clock), elector(kube, "b", clock)
    assert a.step()
    for tick in range(1, 180):  # three minutes in 1 s ticks; each replica retries every 2 s, b offset by 1 s
        clock.t = tick
        (a if tick % 2 == 0 else b).step()
        assert a.leading() and not b.leading(), f"t={tick}s"
    assert lease(kube)["holderIdentity"] == "a"
    assert lease(kube)["leaseTransitions"] == 0


def test_another_replica_s_skewed_clock_decides_nothing(kube: KubeCluster) -> None:
    # a's wall clock is an hour behind: its renewTime always looks an hour old to b, which took over at
    # its first look when it compared renewTime with its own clock.
    clock = Clock()
    a, b = elector(kube, "a", clock, wall_offset_s=-3600), elector(kube, "b", clock)
    assert a.step()
    for tick in range(1, 60):
        clock.t = tick
        (a if tick % 2 == 0 else b).step()
        assert not b.leading(), f"t={tick}s"
    assert lease(kube)["holderIdentity"] == "a"


def test_a_silent_leader_is_replaced_one_lease_after_it_was_last_seen_renewing(kube: KubeCluster) -> None:
    clock = Clock()
    a, b = elector(kube, "a", clock, wall_offset_s=+3600), elector(kube, "b", clock)
    assert a.step()
    clock.t = 1.0
    assert not b.step()  # b sees a's record for the first time at t=1
    # a stops (crashed, or cut off from the API server); b retries every 2 s
    for tick in range(3, 16, 2):
        clock.t = tick
        assert not b.step(), f"t={tick}s"
    clock.t = 16.0  # 15 s after b saw the record last change
    assert b.step()
    assert lease(kube)["holderIdentity"] == "b"
    assert lease(kube)["leaseTransitions"] == 1


def test_a_leader_that_cannot_renew_stops_writing_at_its_renew_deadline(kube: KubeCluster) -> None:
    clock = Clock()
    a = elector(kube, "a", clock)
    assert a.step()
    kube.fail("PATCH", 500, times=100, path_part="/leases/")
    for tick in range(2, 10, 2):
        clock.t = tick
        assert a.step(), f"t={tick}s: within the renew deadline it still leads"
    clock.t = 10.0
    assert not a.step() and not a.leading()  # 10 s: stops, 5 s before another replica may take over


def test_a_leader_hands_the_lease_back_when_stopped(kube: KubeCluster) -> None:
    clock = Clock()
    settings = LeaderSettings(retry_period_s=0.01, renew_deadline_s=5, lease_duration_s=15)
    a = Elector(Cluster(kube.api_client()), NAMESPACE, "a", settings, clock=clock, wall=lambda: NOW)
    b = elector(kube, "b", clock)
    stop = threading.Event()
    thread = threading.Thread(target=a.run, args=(stop,))
    thread.start()
    try:
        while not a.leading():
            stop.wait(0.01)
        assert not b.step()
    finally:
        stop.set()  # what SIGTERM does
        thread.join(5)
    assert not a.leading() and lease(kube)["holderIdentity"] == ""
    clock.t = 2.0  # b's next retry, not a whole Lease later
    assert b.step()


def test_lease_settings_must_nest() -> None:
    with pytest.raises(InputError, match="lease duration > renew deadline > retry period"):
        LeaderSettings(lease_duration_s=10, renew_deadline_s=10)


def test_a_write_begun_at_the_renew_deadline_ends_before_another_replica_may_lead() -> None:
    # The controller bounds each write by the Lease's margin (15 s - 10 s): an API server that takes a
    # write and never answers costs that much, not the 10 s of a read, which would outlast the Lease.
    hole = BlackHole()
    configuration = client.Configuration()
    configuration.host = hole.url
    settings = LeaderSettings()
    margin = settings.lease_duration_s - settings.renew_deadline_s
    cluster = Cluster(client.ApiClient(configuration), write_timeout_s=margin / 10)  # a tenth: a fast test
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "chat", "namespace": "team-a"}, "spec": {}}
    started = time.monotonic()
    try:
        with pytest.raises(TemporaryKubernetesError, match="apply Service team-a/chat"):
            cluster.apply(obj)
    finally:
        hole.close()
    assert margin / 10 <= time.monotonic() - started < margin / 10 + 2.0
