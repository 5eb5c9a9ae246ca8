"""A controller without Prometheus scales nothing, and said nothing: now it says so in a metric,
egs_autoscaler_prometheus_up (which the alert AutoscalerPrometheusUnreachable and NOTES.txt point at), and
on each endpoint, whose ScalingActive condition (as HPA's) is False while its replicas are held.

Covers, for the metric: 1 after a leader's loop that read metrics, 0 after one that could not (down, or none given), 0
while the replica does not lead (so that the alert's max over replicas is the leader's word, not a former
leader's), unchanged by a leader's loop that failed before reading, 0 before any loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from prometheus_client import CollectorRegistry

from autoscaler.controller import ControllerMetrics, Outcome
from autoscaler.decide import EndpointDecision, Observation
from autoscaler.decide.status import SCALING_ACTIVE, endpoint_status
from autoscaler.events import find_condition


def value(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("egs_autoscaler_prometheus_up")


def loop(metrics: ControllerMetrics, observation: Observation | None, leader: bool = True) -> None:
    metrics.record(Outcome(leader=leader, observation=observation), 0.1, 1.0)


def test_it_says_whether_the_leader_s_last_loop_read_prometheus() -> None:
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    assert value(registry) == 0  # no loop yet: nothing read
    loop(metrics, Observation(nodes=(), endpoints=(), signals={}))
    assert value(registry) == 1
    loop(metrics, None)  # a leader's loop that failed before reading: the last word stands
    assert value(registry) == 1
    loop(metrics, Observation(nodes=(), endpoints=(), signals=None))  # down, or no --prometheus
    assert value(registry) == 0
    loop(metrics, Observation(nodes=(), endpoints=(), signals={}))
    loop(metrics, None, leader=False)  # lost the Lease: a standby reads nothing
    assert value(registry) == 0


def test_an_endpoint_says_its_replicas_are_held_while_prometheus_is_unavailable() -> None:
    decided = EndpointDecision(
        "team-a", "chat", "m", 2, 2, 0, 0, None, None, None, "Ready", 2, "AllReplicasReady", "ok"
    )
    held = replace(decided, held="Prometheus unavailable: holding 2 replicas")
    following = endpoint_status(decided, None, {}, 0.0)
    blind = endpoint_status(held, None, following, 60.0)

    def condition(status: dict[str, Any], type: str) -> Mapping[str, Any]:
        found = find_condition(status["conditions"], type)
        assert found is not None, type
        return found

    assert condition(following, SCALING_ACTIVE)["status"] == "True"
    scaling = condition(blind, SCALING_ACTIVE)
    assert (scaling["status"], scaling["reason"], scaling["message"]) == (
        "False",
        "ReplicasHeld",
        "Prometheus unavailable: holding 2 replicas",
    )
    assert condition(blind, "Ready")["status"] == "True"  # it still serves
