"""The warm-pool simulator's invariants on a small synthetic trace: the oracle is the cheapest policy
that never makes a replica wait and holds exactly the node-hours the demand needs; every zero-wait
policy holds at least that; reactive holds nothing idle; a collection gap carries the rate on and
releases nothing; runs are reproducible from the seed. The ServeGen traces are the benchmark's."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from autoscaler import fitting
from autoscaler.fitting import Protocol, fit_egs, fit_static_k
from autoscaler.pool import PoolSettings
from autoscaler.simulator import (
    GpuClass,
    ModelSpec,
    Policy,
    Scenario,
    Trace,
    Window,
    min_zero_wait_node_hours,
    simulate,
)
from benchmarks.demand import generate, resample
from tests.conftest import Spy

SCENARIO = Scenario(GpuClass("g", 8, 10.0, (300.0, 600.0)), 0.1, {"m": ModelSpec(4.0, 1, 120.0)})
SCORE = Window(2, 4)


def _trace(days: int = 4, seed: int = 5) -> Trace:
    """A diurnal base with an on/off client that switches on in clusters."""
    rng = np.random.default_rng(seed)
    n = days * 144
    hours = np.arange(n) / 6
    base = 60 + 30 * np.sin(2 * np.pi * (hours % 24 - 13) / 24) + rng.normal(0, 3, n)
    burst = np.zeros(n)
    for start in rng.choice(n - 12, size=days * 3, replace=False):
        burst[start : start + rng.integers(2, 10)] = 120.0
    return Trace(600.0, {"m": np.maximum(base + burst, 1.0)})


def _run(policy: Policy, trace: Trace | None = None, seed: int = 0, timeline: bool = False):
    return simulate(trace or _trace(), SCENARIO, policy, SCORE, seed, timeline=timeline)


def _zero_wait_policies(allowance: float = 96, static: int = 12) -> list[Policy]:
    return [
        Policy("oracle", PoolSettings(8)),
        Policy("static", PoolSettings(8, static_nodes=static)),
        Policy("egs", PoolSettings(8, allowance_gpus=allowance)),
    ]


def test_the_oracle_is_the_cheapest_policy_that_never_makes_a_replica_wait():
    results = [_run(p)[0] for p in _zero_wait_policies()]
    assert all(r.max_wait_s == 0 and r.short_replica_minutes == 0 for r in results)
    oracle, *others = results
    assert all(oracle.cost_usd <= r.cost_usd for r in others)
    assert oracle.cost_usd < min(r.cost_usd for r in others)


def test_the_oracle_stays_the_cheapest_zero_wait_policy_on_generated_minute_demand():
    # The generator's on/off clients at 1-minute sampling: EGS made zero-wait (a large allowance) and a
    # large static pool both wait nothing, and both cost more than the oracle, which also waits nothing.
    demand, _ = generate(seed=4, days=4)
    trace = Trace(60.0, {"m": demand})
    results = [_run(p, trace)[0] for p in _zero_wait_policies(allowance=400, static=60)]
    assert all(r.max_wait_s == 0 for r in results), [r.max_wait_s for r in results]
    oracle, *others = results
    assert oracle.cost_usd < min(r.cost_usd for r in others)
    assert oracle.node_hours == pytest.approx(min_zero_wait_node_hours(trace, SCENARIO, SCORE))


def test_every_zero_wait_policy_holds_at_least_the_nodes_the_replicas_fill():
    floor = min_zero_wait_node_hours(_trace(), SCENARIO, SCORE)
    results = [_run(p)[0] for p in _zero_wait_policies()]
    assert results[0].node_hours == pytest.approx(floor)
    assert all(r.node_hours >= floor - 1e-9 for r in results)


def test_reactive_holds_nothing_idle_and_its_replicas_wait_for_orders():
    result, timeline = _run(Policy("reactive", PoolSettings(8)), timeline=True)
    assert timeline is not None
    assert timeline.idle_nodes.max() == 0 and timeline.target_idle_nodes.max() == 0
    assert result.p99_wait_s >= 300  # a node takes at least 5 minutes
    assert 0 < result.eta_promised <= result.replicas_added


def test_a_collection_gap_carries_the_rate_on_and_releases_nothing():
    demand = np.full(4 * 144, 40.0)
    demand[300:306] = 0.0  # one hour with no client active
    trace = Trace(600.0, {"m": demand})
    result, timeline = _run(Policy("static", PoolSettings(8, static_nodes=2)), trace, timeline=True)
    assert timeline is not None
    assert np.all(timeline.replicas["m"][300 * 10 : 306 * 10] == 11)  # ceil(40 x 1.1 / 4)
    assert result.replicas_added == 0  # nothing dropped, so nothing had to be added back


def test_promised_etas_are_mostly_kept_and_never_optimistic_on_average():
    result, _ = _run(Policy("reactive", PoolSettings(8)))
    assert result.eta_kept_frac >= 0.9
    assert 0 < result.eta_mean_slack_s <= 300


def test_the_same_seed_gives_the_same_run_and_another_seed_other_delays():
    policy = Policy("reactive", PoolSettings(8))
    assert _run(policy, seed=1)[0] == _run(policy, seed=1)[0]
    assert _run(policy, seed=1)[0].p50_wait_s != _run(policy, seed=2)[0].p50_wait_s or (
        _run(policy, seed=1)[0].short_replica_minutes != _run(policy, seed=2)[0].short_replica_minutes
    )


def test_fitting_sees_only_the_training_days():
    trace = _trace(days=4)
    protocol = Protocol(train_days=2, score_days=2, warmup_days=1)
    wild = Trace(600.0, {"m": np.concatenate([trace.demand_rps["m"][:288], np.full(288, 5000.0)])})
    assert fit_static_k(trace, SCENARIO, protocol) == fit_static_k(wild, SCENARIO, protocol)
    egs = Policy("egs", PoolSettings(8))
    assert fit_egs(trace, SCENARIO, protocol, egs) == fit_egs(wild, SCENARIO, protocol, egs)


def test_a_trace_model_missing_from_the_scenario_is_refused():
    with pytest.raises(ValueError, match="not in the scenario"):
        _run(Policy("reactive", PoolSettings(8)), Trace(600.0, {"other": np.ones(10)}))


def test_the_fitted_egs_pool_never_holds_more_idle_nodes_than_the_training_picked_static_pool():
    # Generator seed 109 (a tuning seed): a week of learnt rises held, uncapped, cost 1.39x the
    # training-picked static pool on the training days; capped at its K, EGS costs what it does (the
    # busy nodes differ by where replicas land: within 1%).
    trace = Trace(600.0, {"m": resample(generate(seed=109)[0], 10)})
    protocol = Protocol(train_days=10, score_days=4)
    k = fit_static_k(trace, SCENARIO, protocol)
    egs = fit_egs(trace, SCENARIO, protocol, Policy("egs", PoolSettings(8, lead_s=600.0)))
    assert egs.pool.max_idle_nodes == k
    train = trace.first_days(protocol.train_days)
    held, timeline = simulate(train, SCENARIO, egs, protocol.fit_window, timeline=True)
    static = simulate(train, SCENARIO, Policy("static", PoolSettings(8, static_nodes=k)), protocol.fit_window)[0]
    assert timeline is not None and timeline.target_idle_nodes.max() <= k
    assert held.cost_usd <= 1.01 * static.cost_usd


def test_the_fit_holds_fewer_nodes_in_quiet_hours_only_where_that_adds_no_wait_on_the_training_days():
    # Generator seed 101 (a tuning seed): its switch-ons come in business hours; in the hours where none
    # larger than one node came all week the fitted pool holds fewer nodes than its cap, and that costs
    # less on the training days with no more waits.
    trace = Trace(600.0, {"m": resample(generate(seed=101)[0], 10)})
    protocol = Protocol(train_days=10, score_days=4)
    egs = fit_egs(trace, SCENARIO, protocol, Policy("egs", PoolSettings(8, lead_s=600.0)))
    assert egs.pool.max_idle_nodes is not None and egs.pool.quiet_nodes is not None
    assert egs.pool.quiet_nodes < egs.pool.max_idle_nodes
    train = trace.first_days(protocol.train_days)
    quiet, always = (
        simulate(train, SCENARIO, p, protocol.fit_window)[0]
        for p in (egs, replace(egs, pool=replace(egs.pool, quiet_nodes=None)))
    )
    assert quiet.frac_wait_gt_60s <= always.frac_wait_gt_60s
    assert quiet.cost_usd < always.cost_usd


def _fit_and_top_rung(seed: int) -> tuple[Trace, Protocol, Policy, Policy]:
    """Generator seed `seed`'s trace, its protocol, the fitted EGS policy and the top activity rung beside it."""
    trace = Trace(600.0, {"m": resample(generate(seed=seed)[0], 10)})
    protocol = Protocol(train_days=10, score_days=4)
    egs = fit_egs(trace, SCENARIO, protocol, Policy("egs", PoolSettings(8, lead_s=600.0)))
    top = replace(egs, pool=replace(egs.pool, quantile=1.0, neighbours=400, recent_s=6 * 3600.0, hold_s=7200.0,
                                    learn_s=0.0, quiet_nodes=None))  # fmt: skip
    return trace.first_days(protocol.train_days), protocol, egs, top


def test_where_no_rung_meets_the_rule_the_fit_keeps_the_one_that_keeps_p99_on_the_training_days():
    # Generator seed 129 (a tuning seed): no rung lets at most 0.5% wait over 60 s on the training days;
    # the top activity rung's p99 is 360 s, learning's 0 s (0.7% over 60 s), and the fit keeps learning.
    # (Seed 119 was this case, its top rung kept alone letting 3.7% wait on the scored days where static:auto
    # let none; with activity counted in whole nodes its top rung waits as learning does there.)
    train, protocol, egs, top = _fit_and_top_rung(129)
    kept, dropped = (simulate(train, SCENARIO, p, protocol.fit_window)[0] for p in (egs, top))
    assert egs.pool.learn_s > 0
    assert kept.p99_wait_s <= 60 < dropped.p99_wait_s
    assert kept.frac_wait_gt_60s > 0.005  # the rule was broken by both


def test_where_no_rung_keeps_p99_on_the_training_days_the_fit_keeps_the_top_activity_rung():
    # Generator seed 115 (a tuning seed): neither the top activity rung nor learning keeps p99 within 60 s
    # on the training days, and learning costs more there: the waits are the trace's, the top rung is kept.
    train, protocol, egs, top = _fit_and_top_rung(115)
    learning = replace(egs, pool=replace(egs.pool, quantile=0.0, neighbours=150, recent_s=3600.0, hold_s=1800.0,
                                         learn_s=7 * 86_400.0))  # fmt: skip
    assert egs == top
    kept, other = (simulate(train, SCENARIO, p, protocol.fit_window)[0] for p in (egs, learning))
    assert min(kept.p99_wait_s, other.p99_wait_s) > 60
    assert kept.cost_usd < other.cost_usd


def test_the_fit_runs_each_policy_on_the_training_days_once(spy: Spy):
    # Generator seed 109 (a tuning seed): a learning rung with a quiet cap under its cap and `still_up_s`;
    # the quiet-capped rung's training run, made by the cap's bisection, also sets `still_up_s`'s limit.
    calls = spy(fitting, "simulate_unless_late")
    trace = Trace(600.0, {"m": resample(generate(seed=109)[0], 10)})
    egs = fit_egs(trace, SCENARIO, Protocol(train_days=10, score_days=4), Policy("egs", PoolSettings(8, lead_s=600.0)))
    assert egs.pool.learn_s and egs.pool.still_up_s and egs.pool.quiet_nodes is not None
    runs = [c.arguments["policy"] for c in calls]
    assert len(runs) == len(set(runs))


def test_a_quiet_cap_at_the_cap_runs_as_no_quiet_cap():
    # The fit takes the cap's own training run for a quiet cap at `max_idle_nodes` (`_fit_quiet_nodes`).
    learning = Policy("egs", PoolSettings(8, learn_s=7 * 86_400.0, max_idle_nodes=3))
    at_cap, below = (replace(learning, pool=replace(learning.pool, quiet_nodes=q)) for q in (3, 2))
    assert _run(at_cap)[0] == _run(learning)[0] != _run(below)[0]


def test_where_the_fit_keeps_learning_below_the_rule_it_fits_still_up_where_that_adds_no_wait_there():
    # Generator seed 119 (as above): learning is kept though it breaks the rule; `still_up_s` is fitted on it
    # as on a learning rung that meets the rule, held to learning's own waits on the training days.
    train, protocol, egs, _ = _fit_and_top_rung(119)
    without = replace(egs, pool=replace(egs.pool, still_up_s=0.0))
    assert egs.pool.learn_s and egs.pool.still_up_s
    up, alone = (simulate(train, SCENARIO, p, protocol.fit_window)[0] for p in (egs, without))
    assert up.frac_wait_gt_60s <= alone.frac_wait_gt_60s


def test_where_learning_and_the_top_rung_wait_alike_on_the_training_days_the_fit_keeps_learning():
    # Generator seed 277 (a tuning seed): no rung meets the rule; learning and the top activity rung keep
    # p99 on the training days with the same replicas waiting, the top rung the cheaper there. Kept, it
    # let 2.65% wait over 60 s on the scored days (learning 0.29%, as `static:auto`).
    train, protocol, egs, top = _fit_and_top_rung(277)
    learning = replace(egs, pool=replace(egs.pool, still_up_s=0.0))
    assert egs.pool.learn_s > 0 and egs.pool.quiet_nodes is None
    kept, other = (simulate(train, SCENARIO, p, protocol.fit_window)[0] for p in (learning, top))
    assert 0.005 < kept.frac_wait_gt_60s == other.frac_wait_gt_60s and kept.p99_wait_s <= 60
    assert other.cost_usd < kept.cost_usd
