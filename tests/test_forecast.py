"""The demand forecasters: the seasonal model recovers a known profile, its quantile is calibrated,
and the baselines do what their names say. Synthetic series only; the ServeGen data is the benchmark's."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.forecast import (
    DAY_S,
    DemandSeries,
    ForecastSettings,
    forecast_persistence,
    forecast_seasonal,
    forecast_seasonal_naive,
)

STEP = 600.0
SLOTS = int(DAY_S / STEP)


def _profile() -> np.ndarray:
    hours = np.arange(SLOTS) * STEP / 3600
    return 1.0 + 0.5 * np.sin(2 * np.pi * (hours - 13) / 24)  # peak 19h, trough 7h


def _synthetic(days: int, noise: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    weekday = np.repeat(np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.7, 0.7])[np.arange(days) % 7], SLOTS)
    values: np.ndarray = 100.0 * np.tile(_profile(), days) * weekday * rng.lognormal(0.0, noise, days * SLOTS)
    return values


def test_seasonal_forecast_follows_the_time_of_day_profile_it_was_never_told():
    values = _synthetic(14, noise=0.02)
    history = DemandSeries(0.0, STEP, values)
    settings = ForecastSettings(lead_s=STEP)
    # Forecast each slot of day 14's weekday pattern from the history up to just before it.
    predicted, actual = [], []
    for i in range(7 * SLOTS, 8 * SLOTS - 1, 6):
        fc = forecast_seasonal(history, i * STEP, settings)
        predicted.append(fc.expected_peak)
        actual.append(values[i + 1])
    err = np.abs(np.array(predicted) / np.array(actual) - 1)
    assert np.median(err) < 0.03
    assert np.corrcoef(predicted, actual)[0, 1] > 0.99


def test_seasonal_upper_quantile_is_calibrated_out_of_sample():
    values = _synthetic(21, noise=0.15, seed=7)
    history = DemandSeries(0.0, STEP, values)
    settings = ForecastSettings(lead_s=STEP, quantile=0.9)
    covered = [
        values[i + 1] <= forecast_seasonal(history, i * STEP, settings).upper_peak
        for i in range(14 * SLOTS, 21 * SLOTS - 1, 3)
    ]
    assert 0.85 <= np.mean(covered) <= 0.95


def test_upper_peak_is_never_below_the_expected_peak():
    history = DemandSeries(0.0, STEP, _synthetic(8, noise=0.3))
    for now in (STEP * 10, DAY_S * 2, DAY_S * 7.5):
        fc = forecast_seasonal(history, now, ForecastSettings())
        assert fc.upper_peak >= fc.expected_peak > 0


def test_forecast_peak_covers_the_whole_lead_time():
    values = np.concatenate([np.full(SLOTS * 2, 10.0), [10.0, 10.0, 10.0]])
    history = DemandSeries(0.0, STEP, values)
    fc = forecast_seasonal_naive(history, STEP * (SLOTS - 2), ForecastSettings(lead_s=3 * STEP))
    assert fc.expected_peak == 10.0
    ramp = np.tile(np.arange(SLOTS, dtype=float), 2)
    naive = forecast_seasonal_naive(
        DemandSeries(0.0, STEP, ramp), STEP * (SLOTS + 9), ForecastSettings(lead_s=3 * STEP)
    )
    assert naive.expected_peak == 12.0  # yesterday's samples 10, 11, 12 ahead of now


def test_persistence_carries_the_last_known_value_across_a_gap():
    values = np.array([5.0, 6.0, 7.0, np.nan, np.nan])
    fc = forecast_persistence(DemandSeries(0.0, STEP, values), 4 * STEP, ForecastSettings())
    assert fc.method == "persistence" and fc.expected_peak == 7.0


def test_seasonal_naive_uses_last_week_once_a_week_is_known():
    values = np.arange(8 * SLOTS, dtype=float)
    now = 7 * SLOTS * STEP + 5 * STEP
    fc = forecast_seasonal_naive(DemandSeries(0.0, STEP, values), now, ForecastSettings(lead_s=STEP))
    assert fc.expected_peak == 6.0  # the sample one week before the next one


def test_seasonal_falls_back_to_persistence_on_a_short_history():
    fc = forecast_seasonal(DemandSeries(0.0, STEP, np.array([3.0, 4.0])), STEP, ForecastSettings())
    assert fc.method == "persistence" and fc.expected_peak == 4.0


def test_settings_refuse_a_quantile_outside_the_upper_half():
    with pytest.raises(ValueError, match="quantile"):
        ForecastSettings(quantile=0.3)


def test_level_is_the_exact_recursive_ewma_across_gaps_and_long_series():
    # The trend level's EWMA (numpy, in blocks) equals the textbook recursion, gaps skipped, even where
    # the decay to the power of the series length underflows (20,160 one-minute samples, half-life 1 min).
    from autoscaler.forecast import _ewma

    rng = np.random.default_rng(3)
    x = rng.random(20_160) * 100
    x[rng.random(x.size) < 0.1] = np.nan
    x[0] = 50.0
    for alpha in (0.5, 0.01, 0.999):
        expected, num, den = np.empty_like(x), 0.0, 0.0
        for i, v in enumerate(x):
            known = not np.isnan(v)
            num = alpha * (v if known else 0.0) + (1 - alpha) * num
            den = alpha * known + (1 - alpha) * den
            expected[i] = num / den
        assert np.allclose(_ewma(x, alpha), expected, rtol=1e-9)


def test_importing_the_autoscaler_core_does_not_import_scipy_signal():
    # scipy.signal cost ~0.3 s and 30 MB of start-up for one lfilter call (issue 21: `egs --help`).
    import subprocess
    import sys

    code = (
        "import sys, autoscaler.forecast, autoscaler.pool, autoscaler.simulator; print('scipy.signal' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
