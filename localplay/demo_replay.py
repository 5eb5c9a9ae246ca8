"""The demo's demand: a recorded day per model, replayed many times faster than it was recorded.

The trace is a canonical trace CSV (`egs trace convert` writes one; the default is a day of ServeGen's
Bailian traces, `examples/demand-day.csv`). Its rates are scaled by one factor, so that the busiest
model peaks at `peak_rps` (what a few simulated GPU nodes serve) and the models keep their shapes
and their ratio; a gap (NaN) repeats the sample before it, as a replayed client would go on. The
replay may start at any hour of the trace and wraps around its end (a day follows itself), so that a
run can begin before the daily peak and end after the night's trough.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from autoscaler.adapters.files import read_trace
from common.errors import InputError


@dataclass(frozen=True)
class Replay:
    """Demand per model (req/s, scaled) on the trace's grid, played `speed` times faster than real time."""

    step_s: float
    demand_rps: Mapping[str, npt.NDArray[np.float64]]
    speed: float
    start_s: float = 0.0
    """Where in the trace the replay starts (seconds since the trace's start)."""

    @property
    def models(self) -> list[str]:
        return sorted(self.demand_rps)

    @property
    def length_s(self) -> float:
        """The trace's length (seconds of recorded time)."""
        return len(next(iter(self.demand_rps.values()))) * self.step_s

    @property
    def span(self) -> str:
        """The recorded time the trace covers, as the demo says it: "a day" for the default trace."""
        hours = self.length_s / 3600
        if abs(hours - 24) < 0.5:
            return "a day"
        return f"{hours / 24:.1f} days" if hours > 36 else f"{hours:.1f} h"

    @property
    def duration_s(self) -> float:
        """Real seconds the whole trace takes to replay."""
        return self.length_s / self.speed

    def trace_time_s(self, elapsed_s: float) -> float:
        """Where in the trace (seconds since its start) the replay is after `elapsed_s` real seconds."""
        return (self.start_s + min(elapsed_s, self.duration_s) * self.speed) % self.length_s

    def demand_at(self, elapsed_s: float) -> dict[str, float]:
        """Each model's demand `elapsed_s` real seconds into the replay, between samples linearly."""
        position = self.trace_time_s(elapsed_s) / self.step_s
        out = {}
        for model, values in self.demand_rps.items():
            i = int(position) % len(values)
            j = (i + 1) % len(values)
            share = position - math.floor(position)
            out[model] = float(values[i] * (1 - share) + values[j] * share)
        return out


def load_replay(path: Path, minutes: float, peak_rps: float, start_hour: float = 0.0) -> Replay:
    """The trace at `path` scaled to `peak_rps` and compressed so that it lasts `minutes` real minutes,
    starting `start_hour` hours into it."""
    loaded = read_trace(path)
    trace = loaded.trace
    filled = {model: _forward_fill(values) for model, values in trace.demand_rps.items()}
    peak = max(float(np.max(v)) for v in filled.values())
    if not peak > 0:
        raise InputError("the trace has no demand above 0 to replay", source=path)
    scale = peak_rps / peak
    speed = trace.samples * trace.step_s / (minutes * 60.0)
    length_s = trace.samples * trace.step_s
    return Replay(trace.step_s, {m: v * scale for m, v in filled.items()}, speed, start_hour * 3600 % length_s)


def _forward_fill(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out = values.copy()
    known = ~np.isnan(out)
    if not known.any():
        return np.zeros_like(out)
    index = np.where(known, np.arange(len(out)), 0)
    np.maximum.accumulate(index, out=index)
    out = out[index]
    out[: int(np.argmax(known))] = out[int(np.argmax(known))]
    return out
