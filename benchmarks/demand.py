"""A seeded generator of LLM demand that is hard for a warm pool: what the public traces hide.

`benchmarks/warm_pool.py` scores every policy on traces from here beside ServeGen and the public
traces; `python benchmarks/demand.py --seed S -o gen.csv` writes one for `egs simulate`
(`examples/scenario-synthetic.yaml`: 4 req/s per replica). Every seed draws its own shape:

- a background that follows a daily cycle (peak hour and depth drawn), a weekly one (a weekend dip
  drawn) and a trend over the trace (from -30% to +80%), with minute-to-minute noise and a slow wander;
- a few on/off clients (3-8, each a heavy-tailed rate of 4-200 req/s) whose switch-ons cluster: bursts
  arrive as a Poisson process busier in business hours, and each wakes 1-3 clients within half an
  hour; a client stays on for a lognormal time (median 90 min) and is off again at once;
- hours-long calm spells (3-14 h, one or two a week) in which no burst comes and every client is off;
- rare collection gaps (a few minutes each, written as no row).

Sampled every minute; `--step 600` writes 10-minute means. The last line of stdout is one JSON object
describing the trace (what was drawn); the CSV goes to `-o`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from autoscaler.adapters.files import TraceRow, write_trace

DAY_MIN = 1440


@dataclass(frozen=True)
class Drawn:
    """What a seed drew: enough to tell two generated traces apart in a report."""

    seed: int
    base_rps: float
    peak_hour: float
    daily_depth: float
    weekend_factor: float
    trend: float
    clients: int
    client_rps: tuple[float, ...]
    bursts: int
    calm_spells: int
    gap_minutes: int


def generate(seed: int, days: int = 14) -> tuple[npt.NDArray[np.float64], Drawn]:
    """Demand in req/s for each minute of `days` days (NaN where a collection gap is), and what was drawn."""
    if days < 1:
        raise ValueError(f"generate: days must be at least 1, got {days}")
    rng = np.random.default_rng(seed)
    minutes = days * DAY_MIN
    t = np.arange(minutes, dtype=np.float64)
    hour = (t % DAY_MIN) / 60.0
    day = t // DAY_MIN

    base = float(rng.uniform(8.0, 40.0))
    peak_hour = float(rng.uniform(9.0, 21.0))
    depth = float(rng.uniform(0.3, 0.85))
    weekend = float(rng.uniform(0.45, 0.95))
    first_weekday = int(rng.integers(0, 7))
    trend = float(rng.uniform(-0.3, 0.8))
    daily = np.maximum(0.05, 1.0 + depth * np.cos(2 * np.pi * (hour - peak_hour) / 24.0))
    weekly = np.where((day + first_weekday) % 7 >= 5, weekend, 1.0)
    wander = np.exp(np.cumsum(rng.normal(0.0, 0.004, minutes)))  # a slow random walk of the level
    wander /= np.exp(np.convolve(np.log(wander), np.ones(720) / 720, mode="same")).mean()
    background = base * daily * weekly * (1.0 + trend * t / minutes) * wander
    background *= rng.lognormal(0.0, 0.08, minutes)

    calm = np.zeros(minutes, dtype=bool)
    spells = int(rng.integers(1, 3)) * max(1, days // 7)
    for _ in range(spells):
        start = int(rng.integers(0, minutes))
        calm[start : start + int(rng.uniform(3, 14) * 60)] = True

    clients = int(rng.integers(3, 9))
    rates = np.clip(rng.lognormal(np.log(25.0), 0.9, clients), 4.0, 200.0)
    # Bursts of switch-ons: busier from 8 to 20 h local, none in a calm spell.
    busy = np.where((hour >= 8) & (hour < 20), 1.0, 0.3)
    per_minute = float(rng.uniform(4.0, 12.0)) / DAY_MIN * busy * ~calm
    burst_at = np.flatnonzero(rng.random(minutes) < per_minute)
    on = np.zeros((clients, minutes), dtype=bool)
    for b in burst_at:
        for c in rng.choice(clients, size=min(clients, int(rng.integers(1, 4))), replace=False):
            start = int(b + rng.integers(0, 30))
            on[c, start : start + max(5, int(rng.lognormal(np.log(90.0), 0.8)))] = True
    on &= ~calm
    load = (rates[:, None] * on * rng.lognormal(0.0, 0.05, (clients, minutes))).sum(axis=0)

    demand = background + load
    gaps = np.zeros(minutes, dtype=bool)
    # Not in the first day (half of a one-day trace), so a trace starts with demand to carry over a gap.
    for start in rng.integers(min(DAY_MIN, minutes // 2), minutes, size=int(rng.integers(1, 5))):
        gaps[start : start + int(rng.integers(2, 15))] = True
    demand[gaps] = np.nan
    drawn = Drawn(
        seed,
        round(base, 2),
        round(peak_hour, 1),
        round(depth, 2),
        round(weekend, 2),
        round(trend, 2),
        clients,
        tuple(round(float(r), 1) for r in rates),
        len(burst_at),
        spells,
        int(gaps.sum()),
    )
    return demand, drawn


def resample(demand: npt.NDArray[np.float64], step_min: int) -> npt.NDArray[np.float64]:
    """Means over windows of `step_min` minutes; a window that is all gap stays a gap."""
    if step_min == 1:
        return demand
    windows = demand[: len(demand) // step_min * step_min].reshape(-1, step_min)
    known = ~np.isnan(windows)
    total = np.where(known, windows, 0.0).sum(axis=1)
    count = known.sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def write_csv(path: Path, demand: npt.NDArray[np.float64], step_s: int, model: str) -> None:
    """The canonical trace CSV `egs simulate` reads, by the writer `egs trace convert` uses (quoting
    a model name that holds a comma); a gap is no row."""
    rows = (TraceRow(i * step_s, model, float(value)) for i, value in enumerate(demand) if not np.isnan(value))
    write_trace(path, rows, with_clients=False)


def trace_parser(description: str, seed_help: str) -> argparse.ArgumentParser:
    """The options a demand generator's command line shares: its seed, the days, the sampling, the output."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seed", type=int, default=0, help=f"{seed_help} (default %(default)s)")
    parser.add_argument("--days", type=int, default=14, help="days of demand, one at least (default %(default)s)")
    parser.add_argument("--step", type=int, choices=(60, 300, 600), default=60, help="sampling interval (s)")
    parser.add_argument("--model", default="synthetic", help="the trace's model name")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the trace CSV to write")
    return parser


def write_generated(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    generated: Callable[[], tuple[npt.NDArray[np.float64], Mapping[str, Any]]],
) -> None:
    """Write the demand `generated` draws at the sampling `args` ask for, and print what was drawn (JSON); a
    value it refuses is the parser's error."""
    try:
        demand, drawn = generated()
    except ValueError as e:
        parser.error(str(e))
    write_csv(args.output, resample(demand, args.step // 60), args.step, args.model)
    print(json.dumps(drawn))


def main() -> None:
    parser = trace_parser(__doc__.split("\n\n")[0], "draws the trace's shape")
    args = parser.parse_args()

    def generated() -> tuple[npt.NDArray[np.float64], dict[str, Any]]:
        demand, drawn = generate(args.seed, args.days)
        return demand, asdict(drawn)

    write_generated(parser, args, generated)


if __name__ == "__main__":
    main()
