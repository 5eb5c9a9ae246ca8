"""The warm-pool policies and the actions that reach a target: never negative, never a release on
missing data, a taken warm node replaced at once, orders cancelled before ready nodes are released."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
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


OFF: dict[str, Any] = {"learn_s": 0.0, "quantile": 0.0, "recent_s": 0.0, "hold_s": 0.0}
HOUR = 3600.0


def _at(need: list[float], step: float, used: int, free: int = 0) -> tuple[PoolObservation, float]:
    series = DemandSeries(0.0, step, np.array(need, dtype=float))
    return PoolObservation(series, used, free, 0), (len(need) - 1) * step


def _sampled(minutes: list[float], step: float) -> list[float]:
    """A per-minute demand as a series of `step` seconds (window means), as a trace would give it."""
    per = int(step // 60)
    return [float(np.mean(minutes[i : i + per])) for i in range(0, len(minutes) - per + 1, per)]


def test_capacity_freed_by_a_sudden_drop_is_held_for_the_hold_window():
    pool = PoolSettings(gpus_per_node=8, **{**OFF, "hold_s": 3 * HOUR})
    dropped = [100.0] * 5 + [20.0]
    assert egs_target(_obs(dropped, used=20, free=4), 5 * STEP, pool) == 10  # (100 - 20 - 4) / 8 rounded up
    long_ago = [100.0] * 5 + [20.0] * 30
    assert egs_target(_obs(long_ago, used=20, free=4), 34 * STEP, pool) == 0


def test_a_gradual_decline_is_not_held():
    pool = PoolSettings(gpus_per_node=8, **{**OFF, "hold_s": 3 * HOUR})
    declining = [100.0 - 4 * i for i in range(20)]  # every change is the median change: no client left
    assert egs_target(_obs(declining, used=24), 19 * STEP, pool) == 0


@pytest.mark.parametrize("step", [60.0, 600.0])
def test_the_pool_is_never_empty_while_a_recent_switch_on_says_it_should_not_be(step: float):
    # A client switched on 40 GPUs 5 hours ago and nothing happened since (a calm spell): whatever the
    # fitted quantile says, the pool still holds what that switch-on needed, at either sampling interval.
    pool = PoolSettings(gpus_per_node=8, **{**OFF, "recent_s": 6 * HOUR})
    minutes = [10.0] * 600 + [50.0] * 300
    need = _sampled(minutes, step)
    obs, now = _at(need, step, used=50)
    assert egs_target(obs, now, pool) == 5
    later = _sampled(minutes + [50.0] * 120, step)  # 7 hours after: no longer recent
    obs, now = _at(later, step, used=50)
    assert egs_target(obs, now, pool) == 0


def test_minute_to_minute_swings_are_not_sudden_and_the_verdict_does_not_depend_on_the_interval():
    # Noise of +-6 GPUs every minute around 40, then one switch-on of 40: sampled every minute or every
    # ten, only the switch-on asks for spare, and both ask for the same.
    rng = np.random.default_rng(2)
    noise = list(40.0 + rng.uniform(-6, 6, 600))
    pool = PoolSettings(gpus_per_node=8, **{**OFF, "recent_s": 6 * HOUR})
    for step in (60.0, 600.0):
        obs, now = _at(_sampled(noise, step), step, used=46)
        assert egs_target(obs, now, pool) == 0, step
    targets = set()
    for step in (60.0, 600.0):
        obs, now = _at(_sampled([*noise, *([80.0] * 60)], step), step, used=80)
        targets.add(egs_target(obs, now, pool))
    assert targets == {5}


def test_the_rise_expected_at_similar_activity_is_held():
    # Quiet stretches (changes of 1) and bursts where one jump of 40 is followed by another: once a jump
    # is seen the next is expected; in a quiet stretch, nothing is.
    rng = np.random.default_rng(0)
    need, level = [], 100.0
    for _ in range(12):
        for _ in range(30):
            level += rng.choice([-1.0, 1.0])
            need.append(level)
        for jump in (40.0, 40.0, -40.0, -40.0):
            level += jump
            need.append(level)
    pool = PoolSettings(gpus_per_node=8, **{**OFF, "quantile": 0.9, "neighbours": 24, "activity_s": STEP})
    quiet = need[: len(need) - 4]
    assert egs_target(_obs(quiet, used=int(quiet[-1])), (len(quiet) - 1) * STEP, pool) <= 1
    active = [*quiet, quiet[-1] + 40]
    assert egs_target(_obs(active, used=int(active[-1])), (len(active) - 1) * STEP, pool) == 5


def test_a_rise_seen_days_ago_in_calm_weather_is_held_however_many_calm_blocks_came_since():
    """Activity is whole GPUs, so a calm week's blocks tie: every one of them is a neighbour, not the latest
    `neighbours` (which forgot a flash crowd 4 days old: check_demand.py's check-flash-8)."""
    calm = [40.0, 41.0] * 72  # a day of 10-minute samples, activity 1 throughout
    crowd = [40.0, *([64.0] * 6), *([40.0] * 17)]  # a rise of 24 GPUs for an hour, then calm again
    need = [*calm, *crowd, *calm * 4]  # 600 calm blocks after it: more than the 400 neighbours
    pool = PoolSettings(gpus_per_node=8, **{**OFF, "quantile": 1.0, "neighbours": 400})
    assert egs_target(_obs(need, used=40), _now(_obs(need, used=40)), pool) == 3


def test_a_flash_crowd_from_calm_is_held_in_calm_whatever_its_changes_within_a_node():
    """Activity is counted in whole nodes: a calm week whose blocks move by 1 or 3 GPUs is one kind of weather
    to a pool that orders 8-GPU nodes. Counted in GPUs, the 600 blocks of activity 1 were the 400 neighbours,
    and a crowd that came after 3 h of changes of 3 GPUs was never read (check_demand.py's check-flash-5: the
    top rung held 1 node in calm, crowds of 30-70 GPUs waited)."""
    calm = [40.0, 41.0] * 72  # a day of 10-minute samples, activity 1 GPU
    stirred = [40.0, 43.0] * 9  # 3 h of changes of 3 GPUs: still within a node
    crowd = [40.0, *([64.0] * 6), *([40.0] * 17)]  # a rise of 24 GPUs for an hour, then calm again
    need = [*calm, *stirred, *crowd, *calm * 4]
    pool = PoolSettings(gpus_per_node=8, **{**OFF, "quantile": 1.0, "neighbours": 400})
    assert egs_target(_obs(need, used=40), _now(_obs(need, used=40)), pool) == 3


@pytest.mark.parametrize(("calm_days", "held"), [(3.5, 0), (1.0, 5)])
def test_the_top_rung_reads_no_more_of_the_week_at_a_20_minute_lead_than_at_10(calm_days, held):
    """400 neighbours are 40% of a week's 10-minute blocks but 79% of its 20-minute ones (5-20 minute orders):
    counted in blocks, the top rung read past three and a half days as calm as now to a rise of 40 GPUs and
    held it at 20 minutes alone (ServeGen m-large: the week's largest rise, 0.991x `static:auto`). Capped at
    the same share of the history (`NEIGHBOUR_SHARE`), it holds it at either lead after a day's calm and at
    neither after three and a half."""
    busy = [40.0, 40.0, 44.0, 44.0] * 18  # 12 h whose 10- and 20-minute blocks change by 4 GPUs
    spike = [80.0] * 6  # a rise of 40 GPUs for an hour
    need = [*busy, *spike, *[40.0] * round(calm_days * 144)]  # then calm, as now
    for lead_s in (600.0, 1200.0):
        pool = PoolSettings(gpus_per_node=8, lead_s=lead_s, **{**OFF, "quantile": 1.0, "neighbours": 400})
        assert egs_target(_obs(need, used=40), _now(_obs(need, used=40)), pool) == held, lead_s


def test_free_gpus_on_busy_nodes_absorb_the_rise_first():
    pool = PoolSettings(gpus_per_node=8, allowance_gpus=16, **OFF)
    assert egs_target(_obs([40.0], used=40, free=0), 0.0, pool) == 2
    assert egs_target(_obs([40.0], used=40, free=9), 0.0, pool) == 1


def test_the_egs_target_is_a_function_of_the_history_not_of_the_step_within_a_sample():
    # Ten decide steps within one 10-minute sample see the same history: they agree (and the policy
    # computes it once).
    pool = PoolSettings(gpus_per_node=8, **{**OFF, "recent_s": 6 * HOUR})
    obs = _obs([10.0] * 20 + [50.0], used=50)
    assert {egs_target(obs, 20 * STEP + k * 60.0, pool) for k in range(10)} == {5}


def test_waiting_replicas_pack_first_fit_into_new_nodes():
    assert nodes_for_waiting([1] * 17, 8) == 3
    assert nodes_for_waiting([4, 4, 4, 2, 2], 8) == 2
    assert nodes_for_waiting([], 8) == 0


@pytest.mark.parametrize("step", [60.0, 600.0])
def test_a_rise_the_pool_would_have_missed_is_held_for_the_learning_window_and_no_longer(step: float):
    # 3 spare GPUs always held; a client switches on 40 GPUs (the 3 held would not have covered it) for an
    # hour, then a calm day: the pool holds 40 spare until a day after the rise, at either sampling
    # interval, and nothing more than the allowance once the day has passed.
    pool = PoolSettings(gpus_per_node=8, **{**OFF, "allowance_gpus": 3.0, "learn_s": 24 * HOUR})
    minutes = [10.0] * 600 + [50.0] * 60 + [10.0] * 600
    obs, now = _at(_sampled(minutes, step), step, used=10)
    assert egs_target(obs, now, pool) == 5
    obs, now = _at(_sampled(minutes + [10.0] * 900, step), step, used=10)  # 25 h after the rise
    assert egs_target(obs, now, pool) == 1


@pytest.mark.parametrize("step", [60.0, 600.0])
def test_a_rise_within_one_node_that_the_busy_nodes_had_no_room_for_is_learned(step: float):
    # A client switches on 5 GPUs for an hour, less than a node. Over a full busy node (8 of 8 GPUs used) the
    # pool held nothing for it and it waited: a day on, the busy node full again, one node is held. Over 3
    # GPUs used, the busy node's 5 free GPUs took it, no one waited, and it teaches nothing.
    pool = PoolSettings(gpus_per_node=8, **{**OFF, "learn_s": 24 * HOUR})
    for base, held in ((8.0, 1), (3.0, 0)):
        minutes = [base] * 600 + [base + 5.0] * 60 + [base] * 600
        obs, now = _at(_sampled(minutes, step), step, used=int(base))
        assert egs_target(obs, now, pool) == held, base


def test_a_rise_the_pool_covered_is_not_learned():
    # Two switch-ons of 40 GPUs half an hour apart; the first one's switch-on floor (held 2 h) covers the
    # second. A day after the first, only the second is within the learning window: covered, it teaches
    # nothing, while without that floor it would have been missed and is held.
    minutes = [10.0] * 600 + [50.0] * 60 + [10.0] * 30 + [50.0] * 60 + [10.0] * 1350
    obs, now = _at(_sampled(minutes, 600.0), 600.0, used=10)
    covered = PoolSettings(gpus_per_node=8, **{**OFF, "recent_s": 2 * HOUR, "learn_s": 24 * HOUR})
    assert egs_target(obs, now, covered) == 0
    missed = PoolSettings(gpus_per_node=8, **{**OFF, "learn_s": 24 * HOUR})
    assert egs_target(obs, now, missed) == 5


@pytest.mark.parametrize("step", [60.0, 600.0])
def test_in_the_quiet_hours_of_the_day_the_pool_holds_at_most_quiet_nodes(step: float):
    # A client switches on 40 GPUs at 10:00 for half an hour every day; the rise is learnt (5 nodes). At
    # 09:50 its switch-ons came near this time of day: the pool holds all 5. At 22:00 none ever came
    # within 2 hours of it: the pool holds `quiet_nodes`, and all 5 without that cap.
    day = [10.0] * 600 + [50.0] * 30 + [10.0] * 810
    learnt = {**OFF, "learn_s": 3 * 24 * HOUR}
    quiet = PoolSettings(gpus_per_node=8, **learnt, quiet_nodes=1)
    busy_hour = _at(_sampled(day * 3 + [10.0] * 590, step), step, used=10)
    assert egs_target(*busy_hour, quiet) == 5
    quiet_hour = _at(_sampled(day * 3 + day[: 22 * 60], step), step, used=10)
    assert egs_target(*quiet_hour, quiet) == 1
    assert egs_target(*quiet_hour, PoolSettings(gpus_per_node=8, **learnt)) == 5


@pytest.mark.parametrize("step", [60.0, 600.0])
def test_in_the_quiet_hours_the_pool_still_holds_the_backgrounds_own_rise_where_the_busy_nodes_are_full(step: float):
    # The daily 40-GPU switch-on at 10:00 is learnt (5 nodes), and 22:00 is quiet for a cap of no node. A
    # rise below the switch-on threshold (1 GPU on this flat background) is the background's, not a
    # switch-on's: with the busy nodes full, one more replica would wait a whole order (synthetic-9's two
    # such waits: 0.91% of replicas over 60 s where `static:auto` let 0.45%), so one node is held; with a
    # free GPU on them, none; outside the quiet hours all 5.
    day = [16.0] * 600 + [56.0] * 30 + [16.0] * 810
    pool = PoolSettings(gpus_per_node=8, **{**OFF, "learn_s": 3 * 24 * HOUR}, quiet_nodes=0)
    quiet_hour = _sampled(day * 3 + day[: 22 * 60], step)
    assert egs_target(*_at(quiet_hour, step, used=16, free=0), pool) == 1
    assert egs_target(*_at(quiet_hour, step, used=16, free=1), pool) == 0
    busy_hour = _sampled(day * 3 + [16.0] * 590, step)
    assert egs_target(*_at(busy_hour, step, used=16, free=0), pool) == 5


def _business_days(days: int, night_switch_on_gpus: float) -> list[float]:
    """Minutes of `days` days: 40 GPUs switch on for half an hour at 9:00, 10:00 ... 14:00 every day, and
    on day 1 `night_switch_on_gpus` more at 21:30 for half an hour; 10 GPUs otherwise."""
    day = [10.0] * 540 + ([50.0] * 30 + [10.0] * 30) * 6 + [10.0] * 540
    minutes = day * days
    start = 1440 + 21 * 60 + 30
    minutes[start : start + 30] = [10.0 + night_switch_on_gpus] * 30
    return minutes


@pytest.mark.parametrize("step", [60.0, 600.0])
def test_a_switch_on_larger_than_the_quiet_cap_near_this_time_of_day_ends_its_quiet_hours(step: float):
    # 25 switch-ons in business hours and one at 21:30 on day 1: at 22:00 on day 3 that one is fewer than
    # the average near 22:00 (a 4 h window of the day holds 25 / 6), but a cap of one node would not have
    # held it, so these hours are not quiet and the pool holds the 5 nodes it learnt. One the cap would
    # have held (8 GPUs) leaves them quiet, and so does the larger one once it has left the week's history.
    pool = PoolSettings(gpus_per_node=8, **{**OFF, "learn_s": 3 * 24 * HOUR}, quiet_nodes=1)
    now = 3 * 1440 + 22 * 60
    larger = _at(_sampled(_business_days(9, 40.0)[:now], step), step, used=10)
    assert egs_target(*larger, pool) == 5
    held = _at(_sampled(_business_days(9, 8.0)[:now], step), step, used=10)
    assert egs_target(*held, pool) == 1
    a_week_on = _at(_sampled(_business_days(9, 40.0)[: now + 6 * 1440], step), step, used=10)
    assert egs_target(*a_week_on, pool) == 1
    assert egs_target(*a_week_on, replace(pool, quiet_nodes=None)) == 5


def test_no_hour_is_quiet_before_three_days_of_history():
    # The same business hours, seen for two days only: 22:00 has been seen twice, too few to call it quiet.
    pool = PoolSettings(gpus_per_node=8, **{**OFF, "learn_s": 3 * 24 * HOUR}, quiet_nodes=1)
    two_days = _at(_sampled(_business_days(3, 0.0)[: 2 * 1440 + 22 * 60], 600.0), 600.0, used=10)
    assert egs_target(*two_days, pool) == 5


def _two_clients(days: int, together: bool) -> list[float]:
    """Minutes of `days` days on a background of 10 GPUs: a client of 40 GPUs on from 10:00 to 11:00 and one
    of 20 from 14:00 to 15:00 every day; with `together`, on day 0 another client of 40 from 10:30 to 11:00,
    while the first is on."""
    day = [10.0] * 600 + [50.0] * 60 + [10.0] * 180 + [30.0] * 60 + [10.0] * 540
    minutes = day * days
    if together:
        minutes[630:660] = [90.0] * 30
    return minutes


@pytest.mark.parametrize("step", [60.0, 600.0])
def test_while_the_client_behind_the_largest_missed_rise_is_on_the_pool_holds_the_next_one(step: float):
    # Both switch-ons are learnt (5 and 3 nodes). At 11:00 on day 3 the 40-GPU client is on again: it cannot
    # switch on again, so the pool holds the 20-GPU client's 3 nodes; once it is off, all 5 again, and
    # without `still_up_s` all 5 throughout. At 10:10 its level has not lasted half an hour: a burst may
    # still be climbing (BurstGPT's ramps), and all 5 are held.
    pool = PoolSettings(gpus_per_node=8, **{**OFF, "learn_s": 3 * 24 * HOUR}, still_up_s=6 * HOUR)
    minutes = _two_clients(4, together=False)
    just_on = _at(_sampled(minutes[: 3 * 1440 + 610], step), step, used=50)
    assert egs_target(*just_on, pool) == 5
    on = _at(_sampled(minutes[: 3 * 1440 + 660], step), step, used=50)
    assert egs_target(*on, pool) == 3
    assert egs_target(*on, replace(pool, still_up_s=0.0)) == 5
    off = _at(_sampled(minutes[: 3 * 1440 + 720], step), step, used=10)
    assert egs_target(*off, pool) == 5


@pytest.mark.parametrize("step", [60.0, 600.0])
def test_a_second_client_of_the_same_size_seen_on_at_once_keeps_the_whole_hold(step: float):
    # Two 40-GPU clients were on at once on day 0: with one of them on, the other may still switch on, and
    # the need series cannot tell which is on, so the pool keeps the 5 nodes.
    pool = PoolSettings(gpus_per_node=8, **{**OFF, "learn_s": 3 * 24 * HOUR}, still_up_s=6 * HOUR)
    on = _at(_sampled(_two_clients(4, together=True)[: 3 * 1440 + 660], step), step, used=50)
    assert egs_target(*on, pool) == 5
