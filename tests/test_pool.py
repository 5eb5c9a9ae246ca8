"""The warm-pool policies and the actions that reach a target: never negative, never a release on
missing data, a taken warm node replaced at once, orders cancelled before ready nodes are released."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.forecast import DemandSeries, Forecast
from autoscaler.pool import (
    POLICIES,
    PoolActions,
    PoolObservation,
    PoolSettings,
    egs_target,
    hold_on_missing_data,
    nodes_for_waiting,
    pool_actions,
)

STEP = 600.0


def _obs(need: list[float], used: int, free: int = 0, idle: int = 0, forecast: float | None = None) -> PoolObservation:
    series = DemandSeries(0.0, STEP, np.array(need, dtype=float))
    now = (len(need) - 1) * STEP
    fc = None if forecast is None else Forecast(now, "seasonal", forecast, forecast)
    return PoolObservation(series, used, free, idle, fc)


def _now(obs: PoolObservation) -> float:
    return (len(obs.need_gpus.values) - 1) * STEP


@settings(max_examples=200, deadline=None)
@given(
    need=st.lists(st.one_of(st.floats(0, 500), st.just(float("nan"))), min_size=1, max_size=40),
    free=st.integers(0, 100),
    idle=st.integers(0, 20),
    previous=st.integers(0, 20),
    name=st.sampled_from(sorted(POLICIES)),
    static=st.integers(0, 10),
)
def test_no_policy_targets_a_negative_pool_or_releases_on_missing_data(need, free, idle, previous, name, static):
    obs = _obs(need, used=0, free=free, idle=idle, forecast=0.0)
    pool = PoolSettings(gpus_per_node=8, static_nodes=static, allowance_gpus=4)
    target = hold_on_missing_data(POLICIES[name], obs, _now(obs), pool, previous)
    assert target >= 0
    if np.isnan(need[-1]):
        assert target >= max(idle, previous)
        assert pool_actions(target, idle, 0).release_nodes == 0


def test_a_taken_warm_node_is_ordered_again_in_the_same_step():
    # Two warm nodes; a rise takes one: the target is unchanged, so one is ordered at once.
    assert pool_actions(target=2, empty_ready_nodes=1, unearmarked_orders=0) == PoolActions(order=1)


def test_going_down_cancels_orders_before_releasing_ready_nodes():
    assert pool_actions(1, empty_ready_nodes=2, unearmarked_orders=2) == PoolActions(cancel_orders=2, release_nodes=1)
    assert pool_actions(3, 2, 2) == PoolActions(cancel_orders=1)


OFF: dict[str, Any] = {"jump_quantile": 0.0, "jump_halflife_s": 0.0, "hold_s": 0.0}


def test_capacity_freed_by_a_sudden_drop_is_held_for_the_hold_window():
    pool = PoolSettings(gpus_per_node=8, **{**OFF, "hold_s": 3 * 3600})
    dropped = [100.0] * 5 + [20.0]
    assert egs_target(_obs(dropped, used=20, free=4), 5 * STEP, pool) == 10  # (100 - 20 - 4) / 8 rounded up
    long_ago = [100.0] * 5 + [20.0] * 30
    assert egs_target(_obs(long_ago, used=20, free=4), 34 * STEP, pool) == 0


def test_a_gradual_decline_is_not_held():
    pool = PoolSettings(gpus_per_node=8, **{**OFF, "hold_s": 3 * 3600})
    declining = [100.0 - 4 * i for i in range(20)]  # every change is the median change: no client left
    assert egs_target(_obs(declining, used=24), 19 * STEP, pool) == 0


def test_a_sudden_rise_asks_for_its_size_in_spare_and_decays():
    pool = PoolSettings(gpus_per_node=8, **{**OFF, "jump_halflife_s": 6 * 3600})
    rose = [10.0] * 5 + [50.0] * 11
    assert egs_target(_obs(rose, used=50), 15 * STEP, pool) == 5  # 40 x 0.5 ** (6000 / 21600) = 33
    later = [10.0] * 5 + [50.0] * 61
    assert egs_target(_obs(later, used=50), 65 * STEP, pool) == 2  # 40 x 0.5 ** (36000 / 21600) = 12.6


def test_the_rise_expected_at_similar_activity_is_held():
    # Quiet stretches (changes of 1) and bursts where one jump of 40 is followed by another.
    rng = np.random.default_rng(0)
    need, level = [], 100.0
    for _ in range(12):
        for _ in range(30):
            level += rng.choice([-1.0, 1.0])
            need.append(level)
        for jump in (40.0, 40.0, -40.0, -40.0):
            level += jump
            need.append(level)
    pool = PoolSettings(gpus_per_node=8, **{**OFF, "jump_quantile": 0.9, "neighbours": 24, "activity_s": STEP})
    quiet = need[: len(need) - 4]
    assert egs_target(_obs(quiet, used=int(quiet[-1])), (len(quiet) - 1) * STEP, pool) <= 1
    active = [*quiet, quiet[-1] + 40]
    assert egs_target(_obs(active, used=int(active[-1])), (len(active) - 1) * STEP, pool) == 5


def test_free_gpus_on_busy_nodes_absorb_the_rise_first():
    pool = PoolSettings(gpus_per_node=8, allowance_gpus=16, **OFF)
    assert egs_target(_obs([40.0], used=40, free=0), 0.0, pool) == 2
    assert egs_target(_obs([40.0], used=40, free=9), 0.0, pool) == 1


def test_the_rise_the_forecast_expects_over_the_lead_time_is_covered():
    pool = PoolSettings(gpus_per_node=8, **OFF)
    assert egs_target(_obs([40.0], used=40, forecast=70.0), 0.0, pool) == 4


def test_waiting_replicas_pack_first_fit_into_new_nodes():
    assert nodes_for_waiting([1] * 17, 8) == 3
    assert nodes_for_waiting([4, 4, 4, 2, 2], 8) == 2
    assert nodes_for_waiting([], 8) == 0
