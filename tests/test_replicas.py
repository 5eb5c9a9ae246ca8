"""The replica target formula and the endpoint's bounds."""

from __future__ import annotations

import pytest

from autoscaler.replicas import ReplicaBounds, replica_target


def test_replicas_are_demand_with_headroom_over_throughput_rounded_up():
    assert replica_target(100.0, 4.0, 0.1) == 28  # 110 / 4 = 27.5
    assert replica_target(0.0, 4.0, 0.1) == 0


def test_an_exact_multiple_does_not_round_up_through_float_noise():
    assert replica_target(0.3 * 10, 0.3, 0.0) == 10
    assert replica_target(40.0, 4.0, 0.1) == 11


def test_bounds_clamp_the_target():
    assert replica_target(0.0, 4.0, 0.1, ReplicaBounds(min_replicas=2)) == 2
    assert replica_target(1000.0, 4.0, 0.1, ReplicaBounds(max_replicas=5)) == 5


@pytest.mark.parametrize(
    ("demand", "throughput", "headroom"),
    [(-1.0, 4.0, 0.1), (float("nan"), 4.0, 0.1), (1.0, 0.0, 0.1), (1.0, 4.0, -0.5)],
)
def test_bad_inputs_are_refused(demand, throughput, headroom):
    with pytest.raises(ValueError):
        replica_target(demand, throughput, headroom)


def test_bounds_refuse_max_below_min():
    with pytest.raises(ValueError, match="max_replicas"):
        ReplicaBounds(min_replicas=3, max_replicas=2)
