"""egs_autoscaler_prometheus_up: the controller's own word that it reads Prometheus, which the alert
AutoscalerPrometheusUnreachable and NOTES.txt point at (a controller without a Prometheus scales nothing,
and said nothing before).

Covers: 1 after a leader's loop that read metrics, 0 after one that could not (down, or none given), 0
while the replica does not lead (so that the alert's max over replicas is the leader's word, not a former
leader's), unchanged by a leader's loop that failed before reading, 0 before any loop.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from autoscaler.controller import ControllerMetrics, Outcome
from autoscaler.decide import Observation


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
