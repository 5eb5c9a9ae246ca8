"""Ready-time promises: never earlier than physically possible, an upper quantile of what was seen,
and served in queue order (free GPU, then orders in flight, then a new order)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.eta import ClassCapacity, EtaSettings, queue_etas, remaining_delay

LOAD = 120.0


@settings(max_examples=200, deadline=None)
@given(
    now=st.floats(0, 1e6),
    waiting=st.integers(1, 30),
    free=st.lists(st.integers(0, 8), max_size=4),
    ages=st.lists(st.floats(0, 900), max_size=4),
    observed=st.lists(st.floats(300, 600), max_size=60),
)
def test_no_promise_is_earlier_than_the_physically_earliest_ready_time(now, waiting, free, ages, observed):
    eta = EtaSettings()
    capacity = ClassCapacity(8, free, [now - a for a in ages])
    promises = queue_etas(now, [1] * waiting, capacity, LOAD, observed, eta)
    shortest = min([eta.prior_delay_s[0], *observed])
    free_gpus = sum(free)
    for k, promised in enumerate(promises):
        assert promised >= now + LOAD
        if k >= free_gpus + 8 * len(ages):  # served by a node ordered now
            assert promised >= now + shortest + LOAD


def test_the_promise_is_an_upper_quantile_that_is_kept():
    rng = np.random.default_rng(3)
    observed = rng.uniform(300, 600, 200)
    fresh = rng.uniform(300, 600, 5000)
    _, promised = remaining_delay(0.0, observed.tolist(), EtaSettings(quantile=0.95))
    assert 0.93 <= np.mean(fresh <= promised) <= 0.97


def test_an_order_that_has_waited_is_promised_its_conditional_remainder():
    eta = EtaSettings(prior_delay_s=(300, 600), quantile=0.5)
    assert remaining_delay(0.0, [], eta) == (300.0, 450.0)
    assert remaining_delay(400.0, [], eta) == (0.0, 100.0)  # uniform on [400, 600]: median 500
    assert remaining_delay(700.0, [], eta) == (0.0, eta.step_s)  # overdue: any step now


def test_replicas_take_free_gpus_then_orders_in_flight_then_new_orders():
    eta = EtaSettings(prior_delay_s=(300, 600), quantile=0.5, step_s=60)
    capacity = ClassCapacity(gpus_per_node=2, free_gpus=[1], orders_placed_at=[-300.0])
    promises = queue_etas(0.0, [1, 1, 1, 1], capacity, LOAD, [], eta)
    assert promises == [LOAD, 180 + LOAD, 180 + LOAD, 480 + LOAD]
