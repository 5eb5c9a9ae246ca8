"""A third, independent generator of LLM demand: self-exciting switch-ons, never tuned on.

`benchmarks/demand.py` (a fixed set of on/off clients woken in bursts) is what the warm-pool policy was
tuned on, `benchmarks/check_demand.py` a check set of other mechanisms. This module draws from none of
their structure, so that `benchmarks/warm_pool.py --traces hawkes` shows the policy on a generator its
authors did not shape it on:

- **switch-ons are a Hawkes process**: immigrants arrive on the calendar's intensity, and every switch-on
  brings a Poisson number of others (branching ratio 0.3-0.85) at exponential delays (mean 10-90 min),
  so activity breeds activity without a burst clock; each switch-on is a new client, not one of a fixed
  set, so clients stack;
- **client sizes are Pareto** (tail index 1.1-1.8, from 1-8 req/s, capped at 400 req/s), each on for a
  lognormal time (median 20 min-3 h) after a ramp of 1-10 minutes;
- **a weekly calendar with a holiday**: a two-humped working day (morning and afternoon peaks, drawn),
  a weekend level drawn per day, and one weekday in the scored days that follows the weekend;
- **a step change in the trend halfway through the scored days** (day 12 of 14): the daily growth rate
  (-3%..+5% a day) steps to another (-8%..+12%), with a level jump of x0.8-1.4 at the same minute;
- **overdispersed counts**: requests per minute are negative-binomial around the rate (a gamma-mixed
  Poisson), not the Poisson of the check set or the lognormal noise of demand.py;
- one or two collection outages of 10-40 minutes (no row).

`python benchmarks/hawkes_demand.py --seed S --step 300 -o hawkes.csv` writes a trace for `egs simulate`
(`examples/scenario-synthetic.yaml`: model `synthetic`, 4 req/s per replica); `--step` 60, 300 or 600;
the last line of stdout is one JSON object of what was drawn.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: benchmarks/demand.py
from benchmarks.check_demand import Rates
from benchmarks.demand import DAY_MIN, trace_parser, write_generated

CHANGE_DAY = 12.0
"""The trend steps here: halfway through the scored days (10-13) of the benchmark's 14-day protocol."""
STREAM = 7_351
"""Mixed into the seed, so that seed S draws nothing in common with demand.py's or check_demand.py's seed S."""


def calendar(rng: np.random.Generator, minutes: int) -> tuple[Rates, dict[str, Any]]:
    """A multiplier per minute around 1: a working day of two humps, weekend days at their own drawn level,
    and one holiday (a weekday that follows the weekend) among the days from 10 on, where there are any."""
    t = np.arange(minutes)
    hour, day = t % DAY_MIN / 60.0, t // DAY_MIN
    morning, afternoon = float(rng.uniform(8.0, 12.0)), float(rng.uniform(13.0, 18.0))
    width = float(rng.uniform(1.5, 3.5))
    night = float(rng.uniform(0.1, 0.4))
    hump = np.exp(-(((hour - morning) / width) ** 2)) + float(rng.uniform(0.6, 1.2)) * np.exp(
        -(((hour - afternoon) / width) ** 2)
    )
    working = night + (1.0 - night) * hump / hump.max()
    weekend_level = rng.uniform(0.2, 0.6, 2)
    first = int(rng.integers(0, 7))
    weekday = (day + first) % 7
    days = -(-minutes // DAY_MIN)
    later = [d for d in range(10, days) if (d + first) % 7 < 5]
    holiday = int(rng.choice(later)) if later else -1
    rest = np.where(weekday == 6, weekend_level[1], weekend_level[0])
    rest = np.where(day == holiday, float(weekend_level.min()), rest)
    resting = (weekday >= 5) | (day == holiday)
    flat = np.where(resting, rest * (0.7 + 0.3 * working), working)
    drawn = {"morning_h": round(morning, 1), "afternoon_h": round(afternoon, 1), "holiday_day": holiday,
             "weekend_level": [round(float(v), 2) for v in weekend_level]}  # fmt: skip
    return flat, drawn


def trend(rng: np.random.Generator, minutes: int) -> tuple[Rates, dict[str, Any]]:
    """exp of a piecewise-linear log level: one daily growth rate, then another (and a jump) at `CHANGE_DAY`."""
    before, after = float(rng.uniform(-0.03, 0.05)), float(rng.uniform(-0.08, 0.12))
    jump = float(rng.uniform(0.8, 1.4))
    days = np.arange(minutes) / DAY_MIN
    log_level = np.where(
        days < CHANGE_DAY, before * days, before * CHANGE_DAY + after * (days - CHANGE_DAY) + np.log(jump)
    )
    return np.exp(log_level), {"growth_before": round(before, 3), "growth_after": round(after, 3),
                               "jump": round(jump, 2)}  # fmt: skip


def switch_ons(rng: np.random.Generator, intensity: Rates, branching: float, mean_delay_min: float) -> list[int]:
    """The minutes of a Hawkes process's events, by its cluster representation: immigrants are Poisson on
    `intensity` (per minute), and each event has Poisson(`branching`) children at exponential delays of mean
    `mean_delay_min` (generation after generation), those past the end dropped."""
    minutes = len(intensity)
    generation = np.repeat(np.arange(minutes), rng.poisson(intensity)).astype(np.float64)
    events = [generation]
    while generation.size:
        children = np.repeat(generation, rng.poisson(branching, generation.size))
        generation = children + rng.exponential(mean_delay_min, children.size)
        generation = generation[generation < minutes]
        events.append(generation)
    return sorted(int(e) for e in np.concatenate(events))


def rate(seed: int, days: int = 14) -> tuple[Rates, dict[str, Any], np.random.Generator]:
    """The rate (req/s) of each minute of `days` days, what was drawn, and the stream it was drawn from, left
    where the draw stopped (the counts are drawn from it next); a test reads the mechanism here."""
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    rng = np.random.default_rng([seed, STREAM])
    minutes = days * DAY_MIN
    cycle, drawn = calendar(rng, minutes)
    growth, drawn_trend = trend(rng, minutes)
    base = float(rng.uniform(8.0, 50.0))
    level = cycle * growth
    branching, delay = float(rng.uniform(0.3, 0.85)), float(rng.uniform(10.0, 90.0))
    per_day = float(rng.uniform(2.0, 12.0))  # immigrants a working day at the calendar's mean
    events = switch_ons(rng, per_day / DAY_MIN * cycle / cycle.mean() * growth, branching, delay)
    tail, smallest = float(rng.uniform(1.1, 1.8)), float(rng.uniform(1.0, 8.0))
    size = np.minimum(smallest * (1.0 + rng.pareto(tail, len(events))), 400.0)
    length = rng.lognormal(np.log(rng.uniform(20.0, 180.0)), 0.9, len(events)).astype(int) + 1
    ramp = rng.integers(1, 11, len(events))
    clients = np.zeros(minutes)
    for at, rps, on, up in zip(events, size.tolist(), length.tolist(), ramp.tolist(), strict=True):
        end = min(minutes, at + on)
        clients[at:end] += rps * np.minimum(1.0, (np.arange(end - at) + 1) / up)
    rates = base * level + clients
    drawn |= drawn_trend | {
        "base_rps": round(base, 1),
        "branching": round(branching, 2),
        "mean_delay_min": round(delay, 1),
        "switch_ons": len(events),
        "tail_index": round(tail, 2),
        "largest_client_rps": round(float(size.max()), 1) if len(events) else 0.0,
    }
    return rates, drawn, rng


def generate(seed: int, days: int = 14) -> tuple[Rates, dict[str, Any]]:
    """Demand in req/s for each minute of `days` days (NaN in an outage), as negative-binomial counts per
    minute around the rate (a gamma-mixed Poisson of shape 20-200), and what was drawn."""
    rates, drawn, rng = rate(seed, days)
    shape = float(rng.uniform(20.0, 200.0))
    demand = rng.poisson(rates * 60.0 * rng.gamma(shape, 1.0 / shape, len(rates))) / 60.0
    outages = int(rng.integers(1, 3))
    for start in rng.integers(min(DAY_MIN, len(demand) // 2), len(demand), outages):
        demand[start : start + int(rng.integers(10, 41))] = np.nan
    return demand, {"generator": "hawkes", "seed": seed, "mean_rps": round(float(np.nanmean(demand)), 2),
                    "dispersion_shape": round(shape, 1), "outages": outages} | drawn  # fmt: skip


def main() -> None:
    parser = trace_parser(__doc__.split("\n\n")[0], "the seed")
    args = parser.parse_args()
    write_generated(parser, args, lambda: generate(args.seed, args.days))


if __name__ == "__main__":
    main()
