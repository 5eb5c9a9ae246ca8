"""The Hawkes generator (`benchmarks/hawkes_demand.py`): seeded, in the trace format `egs simulate` reads at
1- and 5-minute sampling, and showing the mechanisms it is named for (self-exciting switch-ons, heavy-tailed
clients, a holiday, a step in the trend at day 12).

Covers the generator and its place in `benchmarks/warm_pool.py` (named traces only, summed up as one family);
what the policy does on its traces is the benchmark's business, not a test's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from autoscaler.adapters.files import read_trace
from benchmarks.demand import DAY_MIN, resample
from benchmarks.hawkes_demand import CHANGE_DAY, calendar, generate, main, rate, switch_ons, trend
from benchmarks.warm_pool import cases, family_of, hawkes_cases, selected


def test_a_seed_draws_the_same_trace_and_another_seed_another() -> None:
    first, drawn = generate(3, days=2)
    again, drawn_again = generate(3, days=2)
    other, _ = generate(4, days=2)
    np.testing.assert_array_equal(first, again)
    assert drawn == drawn_again
    assert not np.array_equal(np.nan_to_num(first), np.nan_to_num(other))
    known = first[~np.isnan(first)]
    assert first.shape == (2 * DAY_MIN,) and np.all(known >= 0) and 10 <= np.isnan(first).sum() <= 80


@pytest.mark.parametrize("step_s", [60, 300])
def test_the_command_writes_a_trace_egs_simulate_reads(
    step_s: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hawkes.csv"
    monkeypatch.setattr(sys, "argv", ["hawkes_demand.py", "--seed", "1", "--days", "2", "--step", str(step_s),
                                      "-o", str(path)])  # fmt: skip
    main()
    loaded = read_trace(path).trace
    assert loaded.step_s == step_s
    expected = resample(generate(1, days=2)[0], step_s // 60)
    np.testing.assert_allclose(loaded.demand_rps["synthetic"], expected)  # an outage is a gap, read back as NaN
    assert '"generator": "hawkes"' in capsys.readouterr().out.splitlines()[-1]


def test_each_switch_on_brings_others_on_average_as_a_branching_process_does() -> None:
    """Immigrants at 0.01 a minute over 100,000 minutes, branching ratio 0.75: 1,000 immigrants and 4,000
    events in all (1 / (1 - 0.75) each), against 1,000 for a Poisson process of the same immigrants."""
    events = switch_ons(np.random.default_rng(1), np.full(100_000, 0.01), 0.75, 30.0)
    assert 3_400 <= len(events) <= 4_600
    gaps = np.diff(events)
    assert np.mean(gaps <= 30) > 2 * (1 - np.exp(-0.01 * 30))  # clustered: far more close pairs than Poisson


def test_client_sizes_are_heavy_tailed() -> None:
    largest = [rate(seed)[1]["largest_client_rps"] / rate(seed)[1]["base_rps"] for seed in range(6)]
    assert max(largest) > 3  # some client alone is several times the whole background


def test_the_trend_steps_halfway_through_the_scored_days() -> None:
    """The log level grows at one rate to day 12, then jumps and grows at another (the scored days are 10-13)."""
    for seed in range(3):
        level, drawn = trend(np.random.default_rng(seed), 14 * DAY_MIN)
        log = np.log(level[::DAY_MIN])  # midnight of each day
        np.testing.assert_allclose(np.diff(log[:12]), drawn["growth_before"], atol=1e-3)
        np.testing.assert_allclose(np.diff(log[12:]), drawn["growth_after"], atol=1e-3)
        before = np.log(level[int(CHANGE_DAY * DAY_MIN) - 1])
        assert np.log(level[int(CHANGE_DAY * DAY_MIN)]) - before == pytest.approx(np.log(drawn["jump"]), abs=1e-2)


def test_one_weekday_of_the_scored_days_is_a_holiday_at_the_weekends_level() -> None:
    for seed in range(3):
        level, drawn = calendar(np.random.default_rng(seed), 14 * DAY_MIN)
        days = level.reshape(14, DAY_MIN).max(axis=1)
        holiday = drawn["holiday_day"]
        assert 10 <= holiday <= 13
        assert days[holiday] < 0.7 * np.median(days)  # a working day peaks at 1; a rest day at most 0.6


def test_the_benchmark_runs_it_only_when_named_and_sums_it_up_as_one_family() -> None:
    named = hawkes_cases(0, range(3))
    assert [c.name for c in named] == ["hawkes-0", "hawkes-1", "hawkes-2", "hawkes-1min-0", "hawkes-1min-1"]
    every = cases(0, range(1)) + named
    assert selected(every, "") == every[: -len(named)]
    assert selected(every, "hawkes") == named
    assert {family_of(c.name) for c in named} == {"hawkes"} and family_of("check-flash-1min-0") == "check-flash"
