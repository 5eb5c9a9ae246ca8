"""How often ETAs are kept: `promise_outcome` reads the resolution of a promise from the status the
controller read and the decision it made, and the controller counts each promise once in
`egs_endpoint_promises_total`, a restart (which reads the status the last loop wrote) included."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from autoscaler.controller import ControllerMetrics, Outcome
from autoscaler.decide import Decision, EndpointDecision, Observation, PoolDecision, promise_outcome, rfc3339
from autoscaler.decide.state import Promise
from autoscaler.decide.status import endpoint_status
from tests.test_decide import MODEL, endpoint

NOW = 1_800_000_000.0
ETA = NOW + 300
CLASS = "H100-80GB"


def promised(name: str = "chat", answer: str = "Accepted", eta: float | None = ETA) -> Any:
    promise = Promise(answer, eta, "fp8", CLASS, 3)
    status: dict[str, Any] = {"phase": "Provisioning", "gpuClass": CLASS, "promise": promise.as_status()}
    return endpoint(name, status=status)


def decided(phase: str, name: str = "chat", revised: tuple[str, str] | None = None) -> EndpointDecision:
    """`phase`; while not Ready, the promise kept (`state.keep`), or revised to an ETA 10 minutes out."""
    d = EndpointDecision("team-a", name, MODEL, 1, 1, 0, 0, "fp8", CLASS, None, phase)
    if phase != "Ready" and revised is None:
        d = replace(d, promise=Promise("Accepted", ETA, "fp8", CLASS, 3), eta=ETA)
    if revised is not None:
        d = replace(d, promise=Promise("Accepted", NOW + 600, "fp8", CLASS, 3), eta=NOW + 600, revised=revised)
    return d


OVERDUE = ("Overdue", "not ready by ... as promised")


@pytest.mark.parametrize(
    ("before", "d", "now", "expected"),
    [
        (promised(), decided("Ready"), NOW + 100, "kept"),
        (promised(), decided("Ready"), ETA, "kept"),
        (promised(), decided("Ready"), ETA + 1, "late"),
        (promised(), decided("Provisioning", revised=OVERDUE), ETA + 1, "late"),
        (promised(), decided("Provisioning"), NOW + 100, None),  # still stands
        (promised(answer="Created", eta=None), decided("Ready"), NOW, None),  # a 201: no ETA to keep
        (endpoint(status={"phase": "Ready"}), decided("Ready"), NOW, None),  # resolved before (a restart)
    ],
    ids=["ready-early", "ready-on-time", "ready-late", "revised", "pending", "201", "already-resolved"],
)
def test_a_promise_resolves_kept_when_ready_by_its_eta_and_late_otherwise(
    before: Any, d: EndpointDecision, now: float, expected: str | None
) -> None:
    assert promise_outcome(before, d, now) == expected


def test_a_revised_promise_is_not_counted_again_when_the_endpoint_becomes_ready() -> None:
    revised = decided("Provisioning", revised=OVERDUE)
    written = endpoint(status=endpoint_status(revised, None, promised()["status"], ETA + 1))
    assert written["status"]["promise"]["estimatedReadyTime"] == rfc3339(NOW + 600)
    assert promise_outcome(written, decided("Ready"), NOW + 500) is None


def test_the_controller_counts_one_kept_and_one_late_promise_once_across_a_restart() -> None:
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    endpoints = [promised("chat"), promised("docs")]

    def loop(metrics: ControllerMetrics, decisions: list[EndpointDecision], now: float) -> None:
        """One loop: record it, then write back the statuses it decided (as the controller does)."""
        pools = (PoolDecision(CLASS, 0, 0),)
        decision = Decision((), {}, tuple(decisions), pools, ())
        metrics.record(Outcome(True, decision=decision, observation=Observation([], list(endpoints))), 0.1, now)
        for i, d in enumerate(decisions):
            endpoints[i] = endpoint(d.name, status=endpoint_status(d, None, endpoints[i]["status"], now))

    def count(registry: CollectorRegistry, outcome: str) -> float | None:
        return registry.get_sample_value("egs_endpoint_promises_total", {"gpu_class": CLASS, "outcome": outcome})

    loop(metrics, [decided("Provisioning", "chat"), decided("Provisioning", "docs")], NOW + 100)
    assert (count(registry, "kept"), count(registry, "late")) == (0, 0)
    loop(metrics, [decided("Ready", "chat"), decided("Provisioning", "docs", revised=OVERDUE)], ETA + 1 - 60)
    loop(metrics, [decided("Ready", "chat"), decided("Provisioning", "docs", revised=OVERDUE)], ETA + 1)
    loop(metrics, [decided("Ready", "chat"), decided("Ready", "docs")], ETA + 200)
    assert (count(registry, "kept"), count(registry, "late")) == (1, 1)

    restarted = CollectorRegistry()
    loop(ControllerMetrics(restarted), [decided("Ready", "chat"), decided("Ready", "docs")], ETA + 260)
    assert (count(restarted, "kept"), count(restarted, "late")) == (0, 0)


def test_a_class_with_no_warm_pool_counts_its_first_kept_promise_from_zero() -> None:
    """A counter Prometheus first scrapes at 1 has no increase: the ETAs-kept panel would stay empty."""
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    before = [promised("chat")]

    def loop(d: EndpointDecision, now: float) -> float | None:
        decision = Decision((), {}, (d,), (), ())  # no warm pool for any class
        metrics.record(Outcome(True, decision=decision, observation=Observation([], list(before))), 0.1, now)
        before[0] = endpoint(d.name, status=endpoint_status(d, None, before[0]["status"], now))
        return registry.get_sample_value("egs_endpoint_promises_total", {"gpu_class": CLASS, "outcome": "kept"})

    assert loop(decided("Provisioning"), NOW + 100) == 0
    assert loop(decided("Ready"), NOW + 200) == 1
    assert loop(decided("Ready"), NOW + 260) == 1
