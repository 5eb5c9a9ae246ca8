"""The check generator (`benchmarks/check_demand.py`): seeded, in the trace format `egs simulate` reads at
1- and 10-minute sampling, and each family shows the mechanism it is named for.

Covers the generator and its place in `benchmarks/warm_pool.py` (named traces only); what the policy does
on its traces is the benchmark's business, not a test's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autoscaler.adapters.files import read_trace
from benchmarks.check_demand import FAMILIES, generate, main, rate
from benchmarks.demand import DAY_MIN
from benchmarks.warm_pool import cases, check_cases, selected, summary


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_seed_draws_the_same_trace_and_another_seed_another(family: str) -> None:
    first, drawn = generate(family, 3, days=2)
    again, drawn_again = generate(family, 3, days=2)
    other, _ = generate(family, 4, days=2)
    np.testing.assert_array_equal(first, again)
    assert drawn == drawn_again
    assert not np.array_equal(first, other)
    assert first.shape == (2 * DAY_MIN,) and np.all(first >= 0) and np.all(np.isfinite(first))


@pytest.mark.parametrize("step_s", [60, 600])
def test_the_command_writes_a_trace_egs_simulate_reads(
    step_s: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "check.csv"
    argv = ["check_demand.py", "--family", "sessions", "--seed", "1", "--days", "2", "--step", str(step_s)]
    monkeypatch.setattr(sys, "argv", [*argv, "-o", str(path)])
    main()
    loaded = read_trace(path).trace
    assert loaded.step_s == step_s and loaded.days == 2.0
    demand = generate("sessions", 1, days=2)[0]
    expected = demand.reshape(-1, step_s // 60).mean(axis=1)
    np.testing.assert_allclose(loaded.demand_rps["synthetic"], expected)
    assert '"family": "sessions"' in capsys.readouterr().out.splitlines()[-1]


def test_an_unknown_family_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="one of mmpp, sessions"):
        generate("diurnal", 0)


def test_mmpp_holds_a_few_levels_and_switches_between_them() -> None:
    for seed in range(5):
        rates, drawn, _ = rate("mmpp", seed)
        levels = np.unique(rates)
        assert 2 <= len(levels) <= 4
        assert np.count_nonzero(np.diff(rates)) == drawn["switches"] - 1 >= 10


def test_sessions_have_heavy_tailed_lengths() -> None:
    """Pareto lengths from 10 minutes: some sessions last more than a day (a lognormal of the same median
    would not reach it in a few thousand draws)."""
    longest = [rate("sessions", seed)[1]["longest_min"] for seed in range(5)]
    assert max(longest) > DAY_MIN and min(longest) > 12 * 10


def test_a_flash_crowd_rises_in_minutes_and_decays() -> None:
    for seed in range(5):
        rates, drawn, _ = rate("flash", seed)
        if not drawn["crowds"]:
            continue
        top = int(np.argmax(rates))
        base = float(drawn["base_rps"])
        assert rates[top] - rates[max(0, top - 15)] > 0.5 * base  # within a quarter of an hour
        assert rates[min(len(rates) - 1, top + 8 * 60)] < rates[top] - 0.5 * base  # most of it gone in 8 h


def test_a_launch_lifts_the_level_by_its_factor_over_days() -> None:
    for seed in range(5):
        rates, drawn, _ = rate("launch", seed, days=20)
        first, last = rates[:DAY_MIN].mean(), rates[-DAY_MIN:].mean()
        assert last / first == pytest.approx(drawn["factor"], rel=0.1)
        assert np.abs(np.diff(rates)).max() < 0.2 * last  # a ramp and a daily cycle: no jump


def test_weekends_and_the_holiday_follow_their_own_regime() -> None:
    for seed in range(3):
        rates, drawn, _ = rate("regimes", seed)
        days = rates.reshape(14, DAY_MIN)
        shapes, which = np.unique(days, axis=0, return_inverse=True)
        assert len(shapes) == 2  # a working day's and a rest day's
        shape_of = np.asarray(which).ravel()
        rest = shape_of == shape_of[int(drawn["holiday_day"])]
        assert rest.sum() == 5  # two weekends and the holiday
        assert 19 <= np.argmax(days[rest][0]) / 60 <= 21  # the evening hump
        work = days[~rest][0]
        assert work[3 * 60] < 0.5 * work.max()  # closed at night


def test_the_holiday_falls_on_a_working_day_within_the_trace() -> None:
    for days in (1, 3, 14):
        for seed in range(30):
            rates, drawn, _ = rate("regimes", seed, days)
            holiday = int(drawn["holiday_day"])
            if holiday == -1:  # no working day to take
                assert days < 3
                continue
            assert 0 <= holiday < days
            if days == 14:  # the holiday looks like a weekend day, unlike a working day
                shaped = rates.reshape(days, DAY_MIN)
                rests = [d for d in range(days) if np.array_equal(shaped[d], shaped[holiday])]
                assert len(rests) == 5


def test_a_level_steps_once_from_one_minute_to_the_next() -> None:
    for seed in range(5):
        rates, drawn, _ = rate("step", seed)
        at = int(np.argmax(np.abs(np.diff(rates)))) + 1
        assert abs(at - float(drawn["at_day"]) * DAY_MIN) <= 0.005 * DAY_MIN
        assert rates[at] / rates[at - 1] == pytest.approx(drawn["factor"], rel=0.01)
        assert np.count_nonzero(np.abs(np.diff(rates)) > 0.1 * rates[1:]) == 1  # once


def test_the_benchmark_runs_each_family_only_when_named() -> None:
    named = check_cases(0, range(3))
    for family in FAMILIES:
        mine = [c.name for c in named if c.name.startswith(f"check-{family}-")]
        assert mine == [f"check-{family}-{s}" for s in range(3)] + [f"check-{family}-1min-{s}" for s in range(2)]
    assert {c.kind for c in named} == {"check"}
    every = cases(0, range(2)) + named
    assert selected(every, "") == every[: -len(named)]  # all but the check set
    assert selected(every, "check") == named
    assert [c.name for c in selected(every, "check-flash")] == [
        "check-flash-0", "check-flash-1", "check-flash-2", "check-flash-1min-0", "check-flash-1min-1"]  # fmt: skip
    assert [c.name for c in selected(every, "synthetic,check-step-2")] == [
        "synthetic-0", "synthetic-1", "synthetic-1min-0", "synthetic-1min-1", "check-step-2"]  # fmt: skip


def _scored(egs: tuple[float, float, float], auto_p99: float, ratio: float, dominated: bool) -> dict[str, Any]:
    p99, frac, kept = egs
    return {
        "kind": "check",
        "policies": {
            "egs": {"p99_wait_s": p99, "frac_wait_gt_60s": frac, "eta_kept_frac": kept},
            "static:auto": {"p99_wait_s": auto_p99, "frac_wait_gt_60s": 0.0, "eta_kept_frac": 1.0},
        },
        "egs_cost_over_static_auto": ratio,
        "static_dominates_egs": dominated,
        "egs_cpu_over_reactive": 2.0,
        "meets_target": False,
        "slack_alone_past_bound": False,
    }


def test_the_summary_counts_each_familys_ten_minute_seeds_against_the_pathologies_looked_for() -> None:
    traces = {
        "check-flash-0": _scored((420.0, 0.2, 1.0), 0.0, 0.5, True),
        "check-flash-1": _scored((0.0, 0.004, 0.9), 120.0, 0.9, False),  # static:auto misses p99 here
        "check-flash-1min-0": _scored((600.0, 0.5, 0.0), 0.0, 3.0, True),  # 1-minute seeds: reported apart
        "check-step-0": _scored((120.0, 0.01, 1.0), 240.0, 1.0, False),
    }
    out = summary(traces)
    assert out["check_flash"] == {
        "seeds": 2,
        "mean_cost_over_static_auto": pytest.approx(0.7),
        "max_cost_over_static_auto": 0.9,
        "p99_le_60s": 1,
        "frac_gt_60s_le_0.5pct": 1,
        "static_auto_p99_le_60s": 1,
        "static_auto_frac_gt_60s_le_0.5pct": 2,
        "p99_over_static_auto": 1,
        "static_dominates": 1,
        "etas_kept_lt_95pct": 1,
        "max_cpu_over_reactive": 2.0,
    }
    assert out["check_step"]["p99_over_static_auto"] == 0  # 120 s, under static:auto's 240 s
    assert "check_mmpp" not in out and "synthetic_seeds" not in out
    synthetic = {"synthetic-0": {**traces["check-flash-0"], "kind": "synthetic"},
                 "synthetic-1min-0": {**traces["check-flash-1min-0"], "kind": "synthetic"}}  # fmt: skip
    counted = summary(synthetic)
    assert {k: counted[f"synthetic_{k}"] for k in out["check_flash"]} == summary(
        {"check-flash-0": traces["check-flash-0"]}
    )["check_flash"]  # demand.py's seeds are counted as a check family's


def test_the_generator_runs_as_the_script_its_docs_call(tmp_path: Path) -> None:
    # Run as `python benchmarks/check_demand.py` from outside the repository, its import of
    # benchmarks.demand failed: only warm_pool.py put the repository on the path.
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "check_demand.py"
    out = tmp_path / "step.csv"
    args = [sys.executable, str(script), "--family", "step", "--days", "1", "-o", str(out)]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert read_trace(out).trace.days == 1.0
