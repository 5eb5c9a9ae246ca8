"""The simulator's, the fit's and the EGS policy's shortcuts change no answer (issue 18: an EGS
simulation at most 5x the CPU of a reactive one, with identical results).

Covered: a run stopped early for too many late replicas would have failed the wait rule, and a run not
stopped is the full run; fitting with the stopped runs picks what fitting with full runs picks; the
policy's windowed minima and maxima are those of every window; two histories its cache hashes alike
keep their own targets; every pool policy answers the same at every step of a sample (the simulator
reuses an answer where nothing observed changed). The whole `egs simulate --json` on the benchmark's
traces is compared against a reference revision by `benchmarks/simulate_cpu.py --against REV`, too slow
for the suite.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from autoscaler import fitting
from autoscaler.forecast import DemandSeries, Forecast
from autoscaler.pool import (
    POLICIES,
    PoolObservation,
    PoolSettings,
    _Samples,
    _window_extreme,
    egs_target,
    hold_on_missing_data,
)
from autoscaler.simulator import (
    GpuClass,
    ModelSpec,
    Policy,
    Result,
    Scenario,
    Trace,
    Window,
    simulate,
    simulate_unless_late,
)
from benchmarks.demand import generate, resample

SCENARIO = Scenario(GpuClass("g", 8, 10.0, (300.0, 600.0)), 0.1, {"m": ModelSpec(4.0, 1, 120.0)})
PROTOCOL = fitting.Protocol(train_days=2, score_days=1, warmup_days=1)
WINDOW = Window(1, 2)


def _traces() -> list[Trace]:
    """Generated on/off demand at 1- and 10-minute sampling (seeded): waits the rule rejects and passes."""
    demand, _ = generate(seed=3, days=2)
    return [Trace(60.0, {"m": demand}), Trace(600.0, {"m": resample(demand, 10)})]


def _policies() -> list[Policy]:
    return [
        Policy("reactive", PoolSettings(8)),
        *(Policy("static", PoolSettings(8, static_nodes=k)) for k in (2, 8)),
        *(Policy("egs", PoolSettings(8, quantile=q)) for q in (0.0, 1.0)),
    ]


def test_a_run_stopped_for_late_replicas_fails_the_rule_and_one_not_stopped_is_the_full_run():
    stopped = 0
    for trace in _traces():
        for policy in _policies():
            full = simulate(trace, SCENARIO, policy, WINDOW)[0]
            for fraction in (0.0, 0.005):
                cut = simulate_unless_late(trace, SCENARIO, policy, WINDOW, 0, fraction)
                if cut is None:
                    stopped += 1
                    assert full.frac_wait_gt_60s > fraction, (policy, fraction)
                else:
                    assert cut == full, (policy, fraction)
    assert stopped > 0  # the shortcut was taken at least once


def test_fitting_with_runs_stopped_early_picks_what_full_runs_pick(monkeypatch: pytest.MonkeyPatch):
    def fitted() -> list[object]:
        out: list[object] = []
        for trace in _traces():
            out.append(fitting.fit_static_k(trace, SCENARIO, PROTOCOL))
            out.append(fitting.fit_egs(trace, SCENARIO, PROTOCOL, Policy("egs", PoolSettings(8))))
        return out

    shortcut = fitted()

    def full_run(
        trace: Trace, scenario: Scenario, policy: Policy, score: Window, seed: int, fraction: float
    ) -> Result | None:
        return simulate(trace, scenario, policy, score, seed)[0]

    monkeypatch.setattr(fitting, "simulate_unless_late", full_run)
    assert fitted() == shortcut


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=80), st.data())
def test_windowed_extremes_are_those_of_every_window(values: list[float], data: st.DataObject):
    x = np.array(values)
    span = data.draw(st.integers(1, len(x)))
    assert np.array_equal(_window_extreme(np.minimum, x, span), sliding_window_view(x, span).min(axis=1))
    assert np.array_equal(_window_extreme(np.maximum, x, span), sliding_window_view(x, span).max(axis=1))


def test_two_histories_the_policy_cache_hashes_alike_keep_their_own_targets():
    # Same length and alike where the cache key hashes them: one has a switch-on of 40 GPUs half an hour
    # ago, lasting one sample; asked in either order, it holds 5 nodes for it and the flat one holds none.
    flat = np.full(65, 10.0)
    blip = flat.copy()
    blip[61] = 50.0
    assert hash(_Samples(flat)) == hash(_Samples(blip))
    pool = PoolSettings(8, quantile=0.0, recent_s=6 * 3_600.0, hold_s=0.0)

    def target(need: np.ndarray) -> int:
        return egs_target(PoolObservation(DemandSeries(0.0, 600.0, need), 10, 0, 0), 64 * 600.0, pool)

    assert (target(flat), target(blip)) == (0, 5)
    assert (target(blip), target(flat)) == (5, 0)


@settings(max_examples=60, deadline=None)
@given(
    need=st.lists(st.one_of(st.floats(0, 300), st.just(float("nan"))), min_size=1, max_size=300),
    used=st.integers(0, 300),
    free=st.integers(0, 20),
    idle=st.integers(0, 10),
    previous=st.integers(0, 10),
    quantile=st.sampled_from([0.0, 0.9, 1.0]),
)
def test_every_pool_policy_answers_the_same_at_every_step_of_a_sample(need, used, free, idle, previous, quantile):
    values = np.array(need)
    forecast = Forecast(0.0, "seasonal-naive", float(np.nansum(values[-3:])), float(np.nansum(values[-3:])))
    obs = PoolObservation(DemandSeries(0.0, 600.0, values), used, free, idle, forecast)
    pool = PoolSettings(8, static_nodes=3, quantile=quantile)
    start = (len(values) - 1) * 600.0
    for name, policy in POLICIES.items():
        answers = {hold_on_missing_data(policy, obs, start + k * 60.0, pool, previous) for k in range(10)}
        assert len(answers) == 1, name
