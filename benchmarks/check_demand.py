"""A second, independent generator of LLM demand: a check set for the warm-pool policy, never tuned on.

The policy was tuned on `benchmarks/demand.py` (on/off clients with clustered switch-ons, calm spells,
daily and weekly cycles) and on ServeGen. This module draws demand from other mechanisms, one family
each, so that `benchmarks/warm_pool.py --traces check` (or `check-<family>`) shows whether the policy
holds on shapes it has not seen:

- `mmpp`: a Markov-modulated Poisson process: 2-4 hidden levels, exponential sojourns (20 min-6 h mean),
  no calendar at all;
- `sessions`: users arrive as a Poisson process that follows a daily cycle; each session has a lognormal
  rate and a Pareto length (tail index 1.1-1.7), so a few sessions last days and most minutes;
- `flash`: a daily background and flash crowds at any hour (0.3-1.5 a day), each rising within minutes
  to 1-15x the background and decaying exponentially (15 min-4 h);
- `launch`: a product launch: a logistic ramp of 3-10x over 0.5-4 days, centred on day 4-12;
- `regimes`: weekday business hours that start with a steep ramp and stop at a fixed hour, weekends flat
  with an evening hump, and one weekday that follows the weekend (a holiday nobody announced);
- `step`: a daily background whose level steps once, at once, mid-trace (x1.8-4, or x0.3-0.6).

Every family's rate (req/s) is counted as Poisson requests per minute (not multiplicative noise, as
demand.py). `python benchmarks/check_demand.py --family flash --seed S -o check.csv` writes a trace for
`egs simulate` (`examples/scenario-synthetic.yaml`: model `synthetic`, 4 req/s per replica); the last
line of stdout is one JSON object of what was drawn.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: benchmarks/demand.py
from benchmarks.demand import DAY_MIN, trace_parser, write_generated

Rates = npt.NDArray[np.float64]
Family = Callable[[np.random.Generator, int], tuple[Rates, dict[str, Any]]]


def _daily(rng: np.random.Generator, minutes: int, lo: float, hi: float) -> tuple[Rates, dict[str, Any]]:
    """A sinusoidal daily cycle of a drawn depth and peak hour around 1, for the families that have one."""
    depth, peak = float(rng.uniform(lo, hi)), float(rng.uniform(0.0, 24.0))
    hour = np.arange(minutes) % DAY_MIN / 60.0
    return 1.0 + depth * np.cos(2 * np.pi * (hour - peak) / 24.0), {"daily_depth": round(depth, 2),
                                                                      "peak_hour": round(peak, 1)}  # fmt: skip


def mmpp(rng: np.random.Generator, minutes: int) -> tuple[Rates, dict[str, Any]]:
    """Hidden levels that switch after exponential sojourns, the next level drawn among the others."""
    states = int(rng.integers(2, 5))
    levels = np.sort(rng.uniform(5.0, 40.0) * np.exp(rng.uniform(0.0, 2.0, states)))
    sojourn = rng.uniform(20.0, 360.0, states)  # mean minutes in each level
    rate = np.empty(minutes)
    at, state, switches = 0, int(rng.integers(states)), 0
    while at < minutes:
        stay = max(1, int(rng.exponential(sojourn[state])))
        rate[at : at + stay] = levels[state]
        at += stay
        state = int(rng.choice([s for s in range(states) if s != state]))
        switches += 1
    return rate, {"levels": [round(float(v), 1) for v in levels], "switches": switches}


def sessions(rng: np.random.Generator, minutes: int) -> tuple[Rates, dict[str, Any]]:
    """Poisson session arrivals on a daily cycle; lognormal rates, Pareto lengths (capped at 3 days)."""
    cycle, drawn = _daily(rng, minutes, 0.3, 0.9)
    alpha, per_session = float(rng.uniform(1.1, 1.7)), float(rng.uniform(0.5, 3.0))
    mean_len = min(10.0 * alpha / (alpha - 1.0), 200.0)
    arrivals_per_min = float(rng.uniform(15.0, 60.0)) / per_session / mean_len
    starts = np.repeat(np.arange(minutes), rng.poisson(arrivals_per_min * cycle))
    length = np.minimum(10.0 * (1.0 + rng.pareto(alpha, len(starts))), 3 * DAY_MIN).astype(int)
    each = rng.lognormal(np.log(per_session), 1.0, len(starts))
    delta = np.zeros(minutes + 1)
    np.add.at(delta, starts, each)
    np.add.at(delta, np.minimum(starts + length, minutes), -each)
    rate = np.maximum(np.cumsum(delta)[:minutes], 0.0)
    return rate, drawn | {"sessions": len(starts), "tail_index": round(alpha, 2), "longest_min": int(length.max())}


def flash(rng: np.random.Generator, minutes: int) -> tuple[Rates, dict[str, Any]]:
    """A daily background and flash crowds at uniform times: a linear rise, then an exponential decay."""
    cycle, drawn = _daily(rng, minutes, 0.2, 0.7)
    base = float(rng.uniform(10.0, 40.0))
    rate = base * cycle
    t = np.arange(minutes)
    crowds = rng.poisson(rng.uniform(0.3, 1.5) * minutes / DAY_MIN)
    for start in rng.integers(0, minutes, crowds):
        height = base * float(np.clip(rng.lognormal(np.log(3.0), 0.7), 1.0, 15.0))
        rise, decay = int(rng.integers(1, 11)), float(rng.uniform(15.0, 240.0))
        since = t - start
        rate += height * np.where(
            since < 0, 0.0, np.where(since < rise, (since + 1) / rise, np.exp(-np.maximum(since - rise, 0) / decay))
        )
    return rate, drawn | {"base_rps": round(base, 1), "crowds": int(crowds)}


def launch(rng: np.random.Generator, minutes: int) -> tuple[Rates, dict[str, Any]]:
    """A low level that a launch lifts along a logistic ramp, centred on day 4-12, on a daily cycle."""
    cycle, drawn = _daily(rng, minutes, 0.3, 0.8)
    before, factor = float(rng.uniform(5.0, 20.0)), float(rng.uniform(3.0, 10.0))
    centre, width = float(rng.uniform(4.0, 12.0)) * DAY_MIN, float(rng.uniform(0.5, 4.0)) * DAY_MIN
    ramp = 1.0 / (1.0 + np.exp(-(np.arange(minutes) - centre) * 4.4 / width))  # 10% to 90% over `width`
    rate = before * (1.0 + (factor - 1.0) * ramp) * cycle
    centre_day, width_days = round(centre / DAY_MIN, 2), round(width / DAY_MIN, 2)
    return rate, drawn | {"before_rps": round(before, 1), "factor": round(factor, 2), "centre_day": centre_day,
                          "width_days": width_days}  # fmt: skip


def regimes(rng: np.random.Generator, minutes: int) -> tuple[Rates, dict[str, Any]]:
    """Weekdays of business hours (a ramp of 10-40 min at the start hour, a lunch dip), weekends flat with
    an evening hump, and one unannounced holiday on a weekday that follows the weekend's shape."""
    peak, low = float(rng.uniform(40.0, 200.0)), float(rng.uniform(0.05, 0.3))
    opens, closes = float(rng.uniform(7.0, 10.0)), float(rng.uniform(17.0, 20.0))
    ramp_h = float(rng.uniform(10.0, 40.0)) / 60.0
    t = np.arange(minutes)
    hour, day = t % DAY_MIN / 60.0, t // DAY_MIN
    open_ = np.clip((hour - opens) / ramp_h, 0.0, 1.0) * np.clip((closes - hour) / ramp_h, 0.0, 1.0)
    lunch = 1.0 - 0.3 * np.exp(-(((hour - 12.5) / 0.6) ** 2))
    weekday = peak * (low + (1.0 - low) * open_ * lunch)
    weekend = peak * float(rng.uniform(0.15, 0.5)) * (1.0 + 0.8 * np.exp(-(((hour - 20.0) / 1.5) ** 2)))
    first = int(rng.integers(0, 7))
    days = -(-minutes // DAY_MIN)  # the days the trace touches, a part day included
    working = [d for d in range(days) if (d + first) % 7 < 5]
    holiday = int(rng.choice(working)) if working else -1
    rests = ((day + first) % 7 >= 5) | (day == holiday)
    rate = np.where(rests, weekend, weekday)
    return rate, {"peak_rps": round(peak, 1), "opens": round(opens, 2), "ramp_min": round(ramp_h * 60),
                  "holiday_day": holiday}  # fmt: skip


def step(rng: np.random.Generator, minutes: int) -> tuple[Rates, dict[str, Any]]:
    """A daily background whose level changes once, from one minute to the next, between day 5 and 12."""
    cycle, drawn = _daily(rng, minutes, 0.2, 0.8)
    base = float(rng.uniform(10.0, 50.0))
    factor = float(rng.uniform(1.8, 4.0) if rng.random() < 0.7 else rng.uniform(0.3, 0.6))
    at = int(rng.uniform(5.0, 12.0) * DAY_MIN)
    rate = base * cycle * np.where(np.arange(minutes) < at, 1.0, factor)
    return rate, drawn | {"base_rps": round(base, 1), "factor": round(factor, 2), "at_day": round(at / DAY_MIN, 2)}


FAMILIES: dict[str, Family] = {
    "mmpp": mmpp,
    "sessions": sessions,
    "flash": flash,
    "launch": launch,
    "regimes": regimes,
    "step": step,
}
"""The mechanism families, by the name `--family` and the benchmark's `check-<family>` traces take."""


def rate(family: str, seed: int, days: int = 14) -> tuple[Rates, dict[str, Any], np.random.Generator]:
    """The rate (req/s) of each minute of `days` days from `family`, what was drawn, and the stream it was
    drawn from, left where the family stopped (the counts are drawn from it next). Each family draws from
    its own stream of `seed`; a test reads the mechanism here, before the counting noise."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}: one of {', '.join(FAMILIES)}")
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    rng = np.random.default_rng([seed, list(FAMILIES).index(family)])
    return (*FAMILIES[family](rng, days * DAY_MIN), rng)


def generate(family: str, seed: int, days: int = 14) -> tuple[Rates, dict[str, Any]]:
    """Demand in req/s for each minute of `days` days from `family`, as Poisson counts per minute of its
    rate, and what was drawn."""
    rates, drawn, rng = rate(family, seed, days)
    demand = rng.poisson(rates * 60.0) / 60.0
    return demand, {"family": family, "seed": seed, "mean_rps": round(float(demand.mean()), 2)} | drawn


def main() -> None:
    parser = trace_parser(__doc__.split("\n\n")[0], "the seed (each family draws its own stream of it)")
    parser.add_argument("--family", choices=list(FAMILIES), required=True, help="the mechanism that draws the demand")
    args = parser.parse_args()
    write_generated(parser, args, lambda: generate(args.family, args.seed, args.days))


if __name__ == "__main__":
    main()
