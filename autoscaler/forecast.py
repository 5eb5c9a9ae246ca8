"""Demand forecasts: how much a model will need over the next provisioning lead time.

Part of the autoscaler's pure core. The controller's decide step (and `egs simulate`, which drives the
same code) calls one of the three forecasters with the demand history it has and the time `now`:

- `forecast_seasonal`, the one EGS uses: a time-of-day x day-of-week profile (multiplicative, fitted
  by robust medians, the day-of-week part shrunk towards 1 while few weeks are known) times a level
  that follows the recent trend (an exponentially weighted mean of the de-seasonalised demand).
  It forecasts the *peak* over the lead time, and an upper quantile of that peak calibrated on the
  history's own errors at the same lead, so that "the demand will stay below this" is kept about
  `quantile` of the time.
- `forecast_persistence` (the last value carries on) and `forecast_seasonal_naive` (the same time last
  week, else yesterday) are the baselines; their upper quantile is calibrated the same way.

A history is `DemandSeries`: regular samples, `NaN` where nothing was collected. Nothing here knows
where the numbers came from (Prometheus, a trace file) or what unit they are in (req/s, GPUs).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

DAY_S = 86_400.0
WEEK_S = 7 * DAY_S

Method = Literal["seasonal", "persistence", "seasonal-naive"]


@dataclass(frozen=True)
class DemandSeries:
    """Regularly spaced demand samples; sample i covers [start_s + i*step_s, start_s + (i+1)*step_s)."""

    start_s: float
    """Time of the first sample (Unix seconds, or seconds since the trace began)."""
    step_s: float
    """Seconds between samples (600 for the ServeGen series)."""
    values: npt.NDArray[np.float64] = field(repr=False)
    """Demand per sample; NaN where the sample is missing (a collection gap)."""

    def __post_init__(self) -> None:
        if self.step_s <= 0:
            raise ValueError(f"DemandSeries.step_s must be positive, got {self.step_s}")

    def until(self, now: float) -> DemandSeries:
        """The samples that have started by `now` (what a controller at `now` can know): itself when that is
        all of them (the pool policies ask at every decide step)."""
        n = math.floor((now - self.start_s) / self.step_s + 1e-9) + 1
        if n >= len(self.values):
            return self
        return DemandSeries(self.start_s, self.step_s, self.values[: max(0, n)])

    def last_known(self) -> float | None:
        """The latest sample that is not missing, or None."""
        known = np.flatnonzero(~np.isnan(self.values))
        return float(self.values[known[-1]]) if known.size else None

    @property
    def end_s(self) -> float:
        """When the last sample's window ends."""
        return self.start_s + len(self.values) * self.step_s


@dataclass(frozen=True)
class ForecastSettings:
    """How the forecasters look ahead; every field has a default that suits 10-minute series."""

    lead_s: float = 600.0
    """Look-ahead: the provisioning lead time (a node is ready 5-10 min after it is ordered)."""
    quantile: float = 0.99
    """The upper quantile reported as `Forecast.upper` (0.5 < quantile < 1)."""
    level_halflife_s: float = 600.0
    """Half-life of the level's exponential weighting: how fast the level follows a trend."""
    dow_prior_weeks: float = 2.0
    """Shrinkage of the day-of-week factors: with w weeks seen, a factor moves w/(w+prior) of the way."""
    min_history_s: float = DAY_S
    """Below this much history the seasonal forecaster falls back to persistence."""

    def __post_init__(self) -> None:
        if not 0.5 < self.quantile < 1.0:
            raise ValueError(f"ForecastSettings.quantile must be in (0.5, 1), got {self.quantile}")
        if self.lead_s <= 0 or self.level_halflife_s <= 0 or self.min_history_s <= 0:
            raise ValueError("ForecastSettings: lead_s, level_halflife_s and min_history_s must be positive")
        if self.dow_prior_weeks < 0:
            raise ValueError(f"ForecastSettings.dow_prior_weeks must be >= 0, got {self.dow_prior_weeks}")


@dataclass(frozen=True)
class Forecast:
    """The demand expected over (now, now + lead], in the history's unit."""

    now: float
    method: Method
    expected_peak: float
    """The point forecast's highest value over the lead time."""
    upper_peak: float
    """The peak demand stays at or below this with probability about `quantile` (>= expected_peak)."""


def forecast_seasonal(history: DemandSeries, now: float, settings: ForecastSettings) -> Forecast:
    """Seasonal (time of day x day of week) x trend-following level; persistence on too short a history."""
    past = history.until(now)
    if past.end_s - past.start_s < settings.min_history_s or np.count_nonzero(~np.isnan(past.values)) < 2:
        return _persistence(past, now, settings)
    fitted = _fit_seasonal(past, settings)
    n, horizon = len(past.values), _horizon(past, settings)
    season = fitted.factor(past.start_s + past.step_s * np.arange(n + horizon, dtype=np.float64))
    # Made at origin i (after sample i) for samples i+1 .. i+horizon: the level then times the season.
    by_origin = fitted.level[: n - 1] * _window_max(season[1:], horizon)[: n - 1]
    expected = float(fitted.level[-1] * np.max(season[n:]))
    return Forecast(now, "seasonal", expected, _upper(past.values, by_origin, expected, horizon, settings))


def forecast_persistence(history: DemandSeries, now: float, settings: ForecastSettings) -> Forecast:
    """The last known value carries on."""
    return _persistence(history.until(now), now, settings)


def forecast_seasonal_naive(history: DemandSeries, now: float, settings: ForecastSettings) -> Forecast:
    """The peak of the same lead-time window one week earlier (one day while less than a week is known)."""
    past = history.until(now)
    n, horizon = len(past.values), _horizon(past, settings)
    period = round(WEEK_S / past.step_s)
    if n < period + 1:
        period = round(DAY_S / past.step_s)
    if n < period + 1:
        return _persistence(past, now, settings)
    # Made at origin i for samples i+1 .. i+horizon: the same samples one period earlier.
    shifted = np.concatenate([np.full(period, np.nan), past.values])
    earlier = _window_max(shifted[1:], horizon, nan_if_empty=True)
    by_origin = earlier[: n - 1]
    expected = float(earlier[n - 1]) if not np.isnan(earlier[n - 1]) else _last(past)
    return Forecast(now, "seasonal-naive", expected, _upper(past.values, by_origin, expected, horizon, settings))


FORECASTERS = {
    "seasonal": forecast_seasonal,
    "persistence": forecast_persistence,
    "seasonal-naive": forecast_seasonal_naive,
}
"""Every forecaster by name; each takes (history, now, settings) and returns a Forecast."""


@dataclass(frozen=True)
class _Seasonal:
    start_s: float
    step_s: float
    tod: npt.NDArray[np.float64]
    dow: npt.NDArray[np.float64]
    level: npt.NDArray[np.float64]
    """The level after each sample (causal: uses samples up to and including it)."""

    def factor(self, times: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        slot = (np.floor((times % DAY_S) / self.step_s)).astype(int) % len(self.tod)
        day = (np.floor(times / DAY_S)).astype(int) % 7
        return np.asarray(self.tod[slot] * self.dow[day], dtype=np.float64)


def _fit_seasonal(past: DemandSeries, settings: ForecastSettings) -> _Seasonal:
    """Robust multiplicative profile in log space, then an EWMA level of the de-seasonalised series."""
    y = past.values
    times = past.start_s + past.step_s * np.arange(len(y))
    slots = round(DAY_S / past.step_s)
    known = ~np.isnan(y)
    floor = max(1e-9, 0.01 * float(np.nanmean(y)))
    logy = np.where(known, np.log(np.maximum(y, floor)), np.nan)
    day = np.floor(times / DAY_S).astype(int)
    slot = np.floor((times % DAY_S) / past.step_s).astype(int) % slots
    grid = np.full((day[-1] - day[0] + 1, slots), np.nan)
    grid[day - day[0], slot] = logy
    with np.errstate(all="ignore"), _quiet_nan_warnings():
        daily = np.nanmean(grid, axis=1)  # mean log demand per day
        tod = np.nan_to_num(np.nanmedian(grid - daily[:, None], axis=0))  # time-of-day effect
        tod -= tod.mean()
        overall = np.nanmean(daily)
        dow = np.zeros(7)
        weekday = (day[0] + np.arange(len(daily))) % 7
        for d in range(7):
            seen = daily[(weekday == d) & ~np.isnan(daily)]
            if seen.size:
                dow[d] = (seen.mean() - overall) * seen.size / (seen.size + settings.dow_prior_weeks)
    tod_f = np.exp(tod)
    dow_f = np.exp(dow - dow.mean())
    season = tod_f[slot] * dow_f[day % 7]
    deseason = np.where(known, y / season, np.nan)
    alpha = 1.0 - 0.5 ** (past.step_s / settings.level_halflife_s)
    return _Seasonal(past.start_s, past.step_s, tod_f, dow_f, _ewma(deseason, alpha))


def _ewma(x: npt.NDArray[np.float64], alpha: float) -> npt.NDArray[np.float64]:
    """Exponentially weighted mean that skips missing samples (the level holds across a gap)."""
    known = ~np.isnan(x)
    first = np.flatnonzero(known)
    num = _decayed_sum(np.where(known, x, 0.0), alpha)
    den = _decayed_sum(known.astype(np.float64), alpha)
    out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    if first.size:
        out[: first[0]] = x[first[0]]
    return np.asarray(out, dtype=np.float64)


def _decayed_sum(x: npt.NDArray[np.float64], alpha: float) -> npt.NDArray[np.float64]:
    """y[i] = alpha x[i] + (1 - alpha) y[i-1], y[-1] = 0, vectorised in blocks.

    Within a block y[j] = d^(j+1) y_before + alpha d^j cumsum(x[k] d^-k), with d = 1 - alpha; the block
    is short enough that d^-k stays far from overflow (d^-k <= 1e150). numpy instead of
    `scipy.signal.lfilter`, which made importing the autoscaler's core (and so `egs --help`) load scipy.
    """
    decay = 1.0 - alpha
    if decay <= 0.0:
        return np.asarray(alpha * x, dtype=np.float64)
    block = max(1, min(len(x), int(150 * np.log(10) / -np.log(decay)) if decay < 1.0 else len(x)))
    powers = decay ** np.arange(block, dtype=np.float64)
    out = np.empty(len(x), dtype=np.float64)
    before = 0.0
    for start in range(0, len(x), block):
        chunk = x[start : start + block]
        p = powers[: len(chunk)]
        out[start : start + len(chunk)] = decay * p * before + alpha * p * np.cumsum(chunk / p)
        before = float(out[start + len(chunk) - 1])
    return out


def _horizon(past: DemandSeries, settings: ForecastSettings) -> int:
    return max(1, int(np.ceil(settings.lead_s / past.step_s - 1e-9)))


def _window_max(x: npt.NDArray[np.float64], horizon: int, nan_if_empty: bool = False) -> npt.NDArray[np.float64]:
    """out[i] = max(x[i : i + horizon]) ignoring NaN (shorter windows at the end)."""
    padded = np.concatenate([np.where(np.isnan(x), -np.inf, x), np.full(horizon - 1, -np.inf)])
    out = sliding_window_view(padded, horizon).max(axis=1)
    return np.where(np.isinf(out), np.nan if nan_if_empty else 0.0, out)


def _upper(
    actual: npt.NDArray[np.float64],
    by_origin: npt.NDArray[np.float64],
    expected: float,
    horizon: int,
    settings: ForecastSettings,
) -> float:
    """Scale `expected` by the `quantile` of past (actual peak / forecast peak) ratios at this lead.

    `by_origin[i]` is the peak the forecaster would have said at origin i (after sample i) for samples
    i+1 .. i+horizon; only origins whose whole window is already known are scored, so nothing here
    looks past `now`.
    """
    n = len(actual)
    origins = n - horizon
    if origins < 10:
        return expected
    peak_actual = _window_max(actual[1:], horizon, nan_if_empty=True)[:origins]
    predicted = by_origin[:origins]
    ok = ~np.isnan(peak_actual) & ~np.isnan(predicted) & (predicted > 0)
    if np.count_nonzero(ok) < 10:
        return expected
    ratio = peak_actual[ok] / predicted[ok]
    return max(expected, expected * float(np.quantile(ratio, settings.quantile)))


def _last(past: DemandSeries) -> float:
    value = past.last_known()
    return 0.0 if value is None else value


def _persistence(past: DemandSeries, now: float, settings: ForecastSettings) -> Forecast:
    value = _last(past)
    horizon = _horizon(past, settings)
    by_origin = _carry_forward(past.values)[: max(0, len(past.values) - 1)]
    return Forecast(now, "persistence", value, _upper(past.values, by_origin, value, horizon, settings))


def _carry_forward(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Each missing sample takes the last known value before it."""
    idx = np.where(~np.isnan(x), np.arange(len(x)), 0)
    np.maximum.accumulate(idx, out=idx)
    out = x[idx]
    return np.asarray(out, dtype=np.float64)


@contextmanager
def _quiet_nan_warnings() -> Iterator[None]:
    """All-NaN slices (a day or slot never seen) are expected; their NaN is handled by the caller."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
