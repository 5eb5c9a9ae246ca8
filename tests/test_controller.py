"""The controller loop against kmock (localplay/kube_standin.py) and the real adapters: faults included.

Covers: a first reconcile writes the workload, Service, warm pool and status, a second with nothing
changed writes nothing; Prometheus down and stale metrics hold the replicas; API 409 (retried) and
500 past the loop's retries (counted, the loop goes on; the retries: test_write_retries.py); the
Lease lost mid-loop stops the writes; two controllers, one writer; a restart in the middle of
provisioning keeps the ETA and the pool; --dry-run writes nothing; the exposition carries every
series of autoscaler/metrics.py; a warm node taken and an endpoint's wait for capacity are counted
once.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest

from autoscaler.adapters.kubernetes import Cluster
from autoscaler.adapters.prometheus import DEMAND, PrometheusMetrics
from autoscaler.controller import Controller, ControllerMetrics, Outcome, owned_kinds
from autoscaler.decide import ClassSettings, Decision, EndpointDecision, Observation, PoolDecision, Settings
from autoscaler.metrics import SERIES
from autoscaler.probes import ProbeServer
from autoscaler.signals import ModelSignals, Snapshot
from localplay.kube_standin import KubeCluster
from localplay.localstack import free_port
from tests.clock import Clock
from tests.test_decide import CATALOG, MODEL, REGISTRY, endpoint, h100, training
from tests.test_prometheus_reads import BlackHole, FakePrometheus

NOW = 1_800_000_000.0
SETTINGS = Settings(classes={"H100-80GB": ClassSettings(gpus_per_node=8, static_nodes=1)}, throughput_rps={MODEL: 2.0})
ENDPOINTS = "egs.dev/v1alpha1/inferenceendpoints"
DEPLOYMENTS = "apps/v1/deployments"
LWS = "leaderworkerset.x-k8s.io/v1/leaderworkersets"
EVENTS = "events.k8s.io/v1/events"


class FixedSignals:
    """A stand-in for the Prometheus adapter (the real one is tested against a real Prometheus)."""

    def __init__(self, demand: float, age_s: float = 5.0, clock: Any = None) -> None:
        self.demand, self.age_s, self.clock = demand, age_s, clock

    def snapshot(self, at: float, history_s: float, step_s: float, live: bool = True) -> Snapshot:
        now = self.clock() if self.clock else NOW
        return Snapshot({MODEL: ModelSignals(MODEL, self.demand, 0.0, 1.0, 0.3, now - self.age_s)}, {}, {})


def controller(
    kube: KubeCluster,
    signals: Any,
    clock: Any = None,
    name: str = "a",
    lead: bool = True,
    settings: Settings = SETTINGS,
    **kw: Any,
) -> Controller:
    """A controller replica; `lead`: it has tried once for the Lease, as its elector's thread does first."""
    cluster = Cluster(kube.api_client(), owned_kinds=owned_kinds(settings))
    ctl = Controller(
        cluster,
        signals,
        settings,
        REGISTRY,
        CATALOG,
        name,
        clock=clock or Clock(NOW),
        exposition=CollectorRegistry(),
        **kw,
    )
    if lead:
        ctl.elector.step()
    return ctl


def chat_deployment(kube: KubeCluster) -> dict[str, Any]:
    found = [d for d in kube.all(DEPLOYMENTS) if d["metadata"]["namespace"] == "team-a"]
    assert len(found) == 1
    return found[0]


def test_a_second_reconcile_with_nothing_changed_writes_nothing(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    ctl = controller(kube, FixedSignals(demand=3.0))
    first = ctl.reconcile()
    assert first.leader and first.errors == []
    assert first.writes >= 5  # workload, Service, PriorityClass, balloon, status
    deployment = chat_deployment(kube)
    assert deployment["spec"]["replicas"] == 2  # ceil(3 x 1.2 / 2)
    assert deployment["metadata"]["ownerReferences"][0]["name"] == "chat"
    assert kube.get("v1/services", "team-a", "chat") is not None
    assert kube.get(DEPLOYMENTS, "egs-system", "egs-warm-h100-80gb-836f9d") is not None
    status = kube.get(ENDPOINTS, "team-a", "chat")["status"]  # type: ignore[index]
    assert (status["phase"], status["gpuClass"], status["desiredReplicas"]) == ("Pending", "H100-80GB", 2)
    patches = len(kube.requests("PATCH"))
    second = ctl.reconcile()
    assert (second.writes, second.errors) == (0, [])
    assert len(kube.requests("PATCH")) == patches  # the Lease is renewed apart from the loop


def test_prometheus_down_holds_the_replicas(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    controller(kube, FixedSignals(demand=9.0)).reconcile()
    assert chat_deployment(kube)["spec"]["replicas"] == 6
    down = PrometheusMetrics(f"http://127.0.0.1:{free_port()}", timeout_s=1)
    ctl = controller(kube, down)
    outcome = ctl.reconcile()
    assert outcome.decision is not None and outcome.decision.holds
    assert chat_deployment(kube)["spec"]["replicas"] == 6
    assert b"egs_autoscaler_holding 1.0" in generate_latest(ctl.exposition_registry)


def test_stale_metrics_never_scale_down(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    controller(kube, FixedSignals(demand=9.0)).reconcile()
    outcome = controller(kube, FixedSignals(demand=0.0, age_s=3600)).reconcile()
    assert outcome.decision is not None and "last sampled 2027-01-15T07:00:00Z" in outcome.decision.holds[0].message
    assert chat_deployment(kube)["spec"]["replicas"] == 6


def test_a_conflict_is_retried_and_a_server_error_does_not_stop_the_loop(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    kube.fail("PATCH", 409, times=2, path_part="/deployments/")
    kube.fail("PATCH", 500, times=3, path_part="/services/")  # the first write and both retries
    ctl = controller(kube, FixedSignals(demand=3.0), settings=replace(SETTINGS, write_retry_delays_s=(0.01, 0.01)))
    outcome = ctl.reconcile()
    assert outcome.errors == ["temporary"]
    assert chat_deployment(kube)["spec"]["replicas"] == 2  # written after two conflicts
    assert kube.get("v1/services", "team-a", "chat") is None
    assert kube.get(ENDPOINTS, "team-a", "chat")["status"]["phase"] == "Pending"  # type: ignore[index]
    again = ctl.reconcile()
    assert (again.writes, again.errors) == (1, [])
    assert kube.get("v1/services", "team-a", "chat") is not None


def test_a_lost_lease_stops_the_writes_mid_loop(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    # each look at the Lease's clock moves it 2 s: the 10 s renew deadline passes after a few writes
    ctl = controller(kube, FixedSignals(demand=3.0), monotonic=Clock(NOW, step=2.0))
    outcome = ctl.reconcile()
    assert (outcome.errors, outcome.result) == (["lease_lost"], "lease_lost")
    assert 0 < len([r for r in kube.requests("PATCH") if "/leases/" not in r.url.path]) < 5


def test_two_controllers_one_writer(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    a = controller(kube, FixedSignals(demand=3.0), name="a")
    lease_clock = Clock(0.0)
    b = controller(kube, FixedSignals(demand=9.0), name="b", monotonic=lease_clock)
    assert a.reconcile().leader
    patches = len(kube.requests("PATCH"))
    outcome = b.reconcile()
    assert (outcome.leader, outcome.writes, outcome.result) == (False, 0, "follower")
    assert len(kube.requests("PATCH")) == patches
    assert chat_deployment(kube)["spec"]["replicas"] == 2
    lease = kube.get("coordination.k8s.io/v1/leases", "egs-system", "egs-controller")
    assert lease is not None and lease["spec"]["holderIdentity"] == "a"
    # once a has not renewed for a Lease (15 s after b saw it last), b takes over
    lease_clock.t = 16.0
    assert b.elector.step()
    assert b.reconcile().leader and chat_deployment(kube)["spec"]["replicas"] == 6


def test_a_restart_while_provisioning_keeps_the_eta_and_the_pool(kube: KubeCluster) -> None:
    kube.put(ENDPOINTS, endpoint())
    controller(kube, FixedSignals(demand=1.0)).reconcile()
    status = kube.get(ENDPOINTS, "team-a", "chat")["status"]  # type: ignore[index]
    assert status["phase"] == "Provisioning"
    promised = status["estimatedReadyTime"]
    clock = Clock(NOW + 120)
    restarted = controller(kube, FixedSignals(demand=1.0, clock=clock), clock=clock, name="a-restarted")
    outcome = restarted.reconcile()
    assert outcome.errors == []
    assert kube.get(ENDPOINTS, "team-a", "chat")["status"]["estimatedReadyTime"] == promised  # type: ignore[index]
    assert kube.get(DEPLOYMENTS, "egs-system", "egs-warm-h100-80gb-836f9d")["spec"]["replicas"] == 1  # type: ignore[index]


def test_dry_run_writes_nothing(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    outcome = controller(kube, FixedSignals(demand=3.0), dry_run=True).reconcile()
    assert outcome.writes >= 5
    assert kube.requests("PATCH") == [] and kube.requests("POST") == []


def test_the_exposition_has_every_declared_series(kube: KubeCluster) -> None:
    kube.put(ENDPOINTS, endpoint())
    ctl = controller(kube, FixedSignals(demand=1.0))
    ctl.reconcile()
    text = generate_latest(ctl.exposition_registry).decode()
    for series in SERIES:
        assert f"# TYPE {series.name} {series.kind}" in text, series.name
    assert 'egs_endpoint_replicas_waiting{endpoint="chat",gpu_class="H100-80GB",model="' in text
    assert 'egs_warm_pool_target_nodes{gpu_class="H100-80GB"} 1.0' in text


def test_a_multi_node_endpoint_becomes_a_leader_worker_set(kube: KubeCluster) -> None:
    # Llama 3.1 405B in bf16 (about 760 GiB of weights) takes two 8-GPU H100 nodes per replica.
    big = endpoint("big", lo=1, hi=1, model="llama-3.1-405b-instruct", qualityFloor=1.0)
    kube.put(ENDPOINTS, big)
    ctl = controller(kube, FixedSignals(demand=1.0))
    assert ctl.reconcile().errors == []
    (waiting,) = kube.all(LWS)
    assert waiting["spec"]["leaderWorkerTemplate"]["size"] == 2
    status = kube.get(ENDPOINTS, "team-a", "big")["status"]  # type: ignore[index]
    assert (status["phase"], status["variant"]) == ("Provisioning", "bf16")
    assert status["estimatedReadyTime"]
    # Two nodes with an RDMA network join; the LWS's groups become ready (kmock runs no LWS
    # controller: the test plays it).
    for i in range(2):
        node = h100(f"gpu-{i}")
        node["metadata"]["labels"]["feature.node.kubernetes.io/rdma.available"] = "true"
        kube.put("v1/nodes", node)
    assert ctl.reconcile().errors == []
    (lws,) = kube.all(LWS)
    meta = lws["metadata"]
    assert (meta["namespace"], meta["ownerReferences"][0]["name"], lws["spec"]["replicas"]) == ("team-a", "big", 1)
    template = lws["spec"]["leaderWorkerTemplate"]
    assert template["workerTemplate"]["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "8"}
    assert kube.get(ENDPOINTS, "team-a", "big")["status"]["phase"] == "Pending"  # type: ignore[index]
    assert not [d for d in kube.all(DEPLOYMENTS) if d["metadata"]["namespace"] == "team-a"]
    kube.patch(LWS, "team-a", meta["name"], {"status": {"readyReplicas": 1}})
    assert ctl.reconcile().errors == []
    status = kube.get(ENDPOINTS, "team-a", "big")["status"]  # type: ignore[index]
    assert (status["phase"], status["readyReplicas"], status["url"]) == ("Ready", 1, "http://big.team-a.svc:8000")
    assert ctl.reconcile().writes == 0  # the LWS is listed back and found as intended


def test_a_node_another_workload_fills_is_not_planned_onto(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put("v1/pods", training("gpu-0", 8))
    kube.put(ENDPOINTS, endpoint())
    assert controller(kube, FixedSignals(demand=1.0)).reconcile().errors == []
    status = kube.get(ENDPOINTS, "team-a", "chat")["status"]  # type: ignore[index]
    assert (status["phase"], status["conditions"][0]["reason"]) == ("Provisioning", "WaitingForCapacity")
    assert status["estimatedReadyTime"]


def test_a_warm_node_taken_and_an_endpoint_s_wait_for_capacity_are_counted_once() -> None:
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    waiting_since = 1_800_000_000.0  # 2027-01-15T08:00:00Z
    condition = {"type": "Ready", "status": "False", "reason": "WaitingForCapacity"}
    condition["lastTransitionTime"] = "2027-01-15T08:00:00Z"
    status = {"phase": "Provisioning", "gpuClass": "H100-80GB", "conditions": [condition]}
    chat = endpoint(status=status)
    cordoned = h100("warm-2")
    cordoned["spec"]["unschedulable"] = True
    nodes = [h100("warm-0"), h100("warm-1"), cordoned]

    def loop(idle: tuple[str, ...], phase: str, now: float, endpoints: list[Any]) -> None:
        d = EndpointDecision("team-a", "chat", MODEL, 1, 1, 0, 0, "fp8", "H100-80GB", None, phase)
        decision = Decision((), {}, (d,), (PoolDecision("H100-80GB", len(idle), 1, idle=idle),), ())
        metrics.record(Outcome(True, decision=decision, observation=Observation(nodes, endpoints)), 0.1, now)

    loop(("warm-0", "warm-1", "warm-2"), "Provisioning", waiting_since + 300, [chat])
    # warm-0 now holds the replica; warm-2 is no longer idle because it was cordoned: not taken.
    loop(("warm-1",), "Pending", waiting_since + 420, [chat])
    loop(("warm-1",), "Ready", waiting_since + 480, [endpoint(status={**status, "phase": "Pending"})])

    def value(name: str) -> float | None:
        return registry.get_sample_value(name, {"gpu_class": "H100-80GB"})

    assert value("egs_warm_pool_taken_nodes_total") == 1
    assert value("egs_endpoint_provisioning_seconds_count") == 1
    assert value("egs_endpoint_provisioning_seconds_sum") == pytest.approx(420)


def test_demand_split_evenly_is_logged_and_exposed(kube: KubeCluster, caplog: pytest.LogCaptureFixture) -> None:
    for name in ("chat", "docs"):  # one model, no per-pod series to tell them apart
        kube.put(ENDPOINTS, endpoint(name))
    ctl = controller(kube, FixedSignals(demand=4.0))
    with caplog.at_level("WARNING", logger="egs.controller"):
        ctl.reconcile()
        ctl.reconcile()
    text = generate_latest(ctl.exposition_registry).decode()
    assert f'egs_model_demand_split_evenly{{model="{MODEL}"}} 1.0' in text
    assert [r.message for r in caplog.records if "split evenly" in r.message] == [
        f"demand split evenly between the endpoints of {MODEL}: their pods' series carry no namespace/pod labels "
        "to tell them apart"
    ]  # once, not every loop


def test_a_hung_prometheus_costs_the_loop_one_deadline_and_the_writes_go_on(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    hole = BlackHole()
    try:
        ctl = controller(kube, PrometheusMetrics(hole.url, timeout_s=0.5))
        started = time.monotonic()
        outcome = ctl.reconcile()
        took = time.monotonic() - started
    finally:
        hole.close()
    # before: 4 x the timeout and 6 s of back-off per query, past the Lease, so every loop ended lease_lost
    assert took < 5.0  # a loaded machine's slack; the old default took 8 s for the first query alone
    assert (outcome.result, outcome.writes > 0) == ("success", True)
    assert outcome.decision is not None and "Prometheus unavailable" in outcome.decision.holds[0].message
    assert len(hole.accepted) == 1


def test_a_bad_sample_is_counted_on_its_series_and_the_loop_goes_on(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    prom = FakePrometheus({DEMAND: [{"metric": {"model_name": MODEL}, "value": [NOW, "1e400x"]}]})
    try:
        ctl = controller(kube, PrometheusMetrics(prom.url, timeout_s=10))
        outcome = ctl.reconcile()  # before: float("1e400x") raised out of the loop and the process exited
    finally:
        prom.shutdown()
    assert outcome.result == "success"
    assert outcome.decision is not None and f"no metrics for {MODEL}" in outcome.decision.holds[0].message
    labels = {"series": DEMAND, "reason": "not_a_number"}
    assert ctl.exposition_registry.get_sample_value("egs_autoscaler_bad_samples_total", labels) == 1


def test_events_on_a_phase_change_a_hold_and_a_failed_write(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    ctl = controller(kube, FixedSignals(demand=3.0))
    ctl.reconcile()
    (created,) = kube.all(EVENTS)
    assert (created["reason"], created["type"], created["note"]) == (
        "ReplicasStarting",
        "Normal",
        "New -> Pending: 0 of 2 replicas ready",
    )
    assert created["regarding"]["name"] == "chat" and created["regarding"]["uid"]
    held = controller(kube, FixedSignals(demand=0.0, age_s=3600), clock=Clock(NOW + 30))
    kube.fail("PATCH", 422, times=1, path_part="/services/")
    kube.delete("v1/services", "team-a", "chat")
    for _ in range(3):
        held.reconcile()
    by_reason = {e["reason"]: e for e in kube.all(EVENTS)}
    assert by_reason["HoldingReplicas"]["series"]["count"] == 3  # one object, counting up
    assert "last sampled 2027-01-15T07:00:00Z" in by_reason["HoldingReplicas"]["note"]
    assert by_reason["WriteFailed"]["type"] == "Warning"
    assert by_reason["WriteFailed"]["note"].startswith("Service team-a/chat: apply Service team-a/chat: 422")
    assert len(kube.all(EVENTS)) == 3


def test_loops_are_counted_by_result_and_timed_in_a_histogram(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    ctl = controller(kube, FixedSignals(demand=3.0), settings=replace(SETTINGS, write_retry_delays_s=()))
    kube.fail("PATCH", 500, times=1, path_part="/services/")
    ctl.reconcile()
    ctl.reconcile()
    follower = controller(kube, FixedSignals(demand=3.0), name="b")
    follower.reconcile()

    def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    loops = ctl.exposition_registry
    assert value(loops, "egs_autoscaler_reconcile_total", result="error") == 1
    assert value(loops, "egs_autoscaler_reconcile_total", result="success") == 1
    assert value(loops, "egs_autoscaler_reconcile_total", result="lease_lost") == 0
    assert value(loops, "egs_autoscaler_reconcile_duration_seconds_count") == 2
    assert value(loops, "egs_autoscaler_reconcile_duration_seconds_bucket", le="60.0") == 2
    assert value(follower.exposition_registry, "egs_autoscaler_reconcile_total", result="follower") == 1
    assert value(follower.exposition_registry, "egs_autoscaler_reconcile_duration_seconds_count") == 0


def test_liveness_fails_once_the_loop_is_older_than_three_intervals_and_a_lease(kube: KubeCluster) -> None:
    lease_clock = Clock(0.0)
    ctl = controller(kube, FixedSignals(demand=1.0), monotonic=lease_clock)
    server = ProbeServer(("127.0.0.1", 0), ctl.exposition_registry, lambda: ctl.health(30), lambda: (True, "ran"))
    server.serve_in_thread()
    url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
    try:
        lease_clock.t = 104.0  # no loop yet: judged from the start, 3 x 30 s + 15 s = 105 s
        assert requests.get(url, timeout=5).status_code == 200
        ctl.reconcile()
        lease_clock.t = 208.0
        assert requests.get(url, timeout=5).status_code == 200
        lease_clock.t = 209.0  # no loop for 105 s: the kubelet restarts the pod
        answer = requests.get(url, timeout=5)
        assert answer.status_code == 503
        assert answer.text == (
            "failing: the last loop finished 105.0s ago, more than 105s (3 intervals and a Lease): the loop is stuck\n"
        )
    finally:
        server.shutdown()


def test_a_node_that_cannot_be_used_is_reported_on_itself_in_an_event(kube: KubeCluster) -> None:
    bad = h100("gpu-bad")
    bad["metadata"]["labels"]["nvidia.com/gpu.replicas"] = "two"
    kube.put("v1/nodes", bad)
    kube.put(ENDPOINTS, endpoint())
    ctl = controller(kube, FixedSignals(demand=1.0))
    ctl.reconcile()
    ctl.reconcile()
    (skipped,) = [e for e in kube.all(EVENTS) if e["reason"] == "NodeSkipped"]
    assert (skipped["metadata"]["namespace"], skipped["type"]) == ("default", "Warning")
    assert (skipped["regarding"]["kind"], skipped["regarding"]["name"]) == ("Node", "gpu-bad")
    assert "'two' is not a whole number" in skipped["note"] and skipped["series"]["count"] == 2


class RecordedReads(FixedSignals):
    """FixedSignals that remembers the history each snapshot asked for."""

    def __init__(self, demand: float) -> None:
        super().__init__(demand)
        self.asked: list[float] = []

    def snapshot(self, at: float, history_s: float, step_s: float, live: bool = True) -> Snapshot:
        self.asked.append(history_s)
        return super().snapshot(at, history_s, step_s, live)


def test_the_loop_reads_the_week_of_demand_the_warm_pool_policy_was_fitted_on(kube: KubeCluster) -> None:
    reads = RecordedReads(demand=2.0)
    controller(kube, reads).reconcile()
    assert reads.asked == [7 * 86_400.0]  # PoolSettings.history_s: learning's week, the quiet hours' days
