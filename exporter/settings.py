"""The exporter's collection settings and their bounds, apart from the collector that uses them.

`egs exporter --help` shows these defaults and bounds, and its parser checks them; the collector
(`exporter.collector`, which loads prometheus_client) is imported only when the exporter runs, so
that the help and a bad option answer without loading it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

INTERVAL_BOUNDS_S = (0.1, 3600.0)
"""Allowed collection intervals: faster spins a core at 64 GPUs; slower makes data an hour stale."""
READ_TIMEOUT_BOUNDS_S = (0.01, 600.0)
"""Allowed read timeouts: a GPU that takes longer than 10 minutes to answer is hung, not slow."""


def seconds_problem(value: float, bounds: tuple[float, float]) -> str:
    """Why `value` is not a usable number of seconds within `bounds`, or "" when it is.

    nan and inf are refused by name: nan compares false with everything (a wait of nan seconds
    spins), and inf overflows every timer.
    """
    low, high = bounds
    if not math.isfinite(value):
        return f"must be a finite number of seconds, got {value}"
    if not low <= value <= high:
        return f"must be between {low:g} and {high:g} seconds, got {value:g}"
    return ""


@dataclass(frozen=True)
class CollectorSettings:
    """How often and how patiently the collector reads; bad values are refused at construction."""

    interval_s: float = 10.0
    """Seconds between collection cycles (default 10: a fifth of the 30 s that dcgm-exporter uses,
    still well under 1% of a core at 64 GPUs), within INTERVAL_BOUNDS_S."""
    read_timeout_s: float = 2.0
    """Longest wait for one cycle's reads; a device that has not answered by then is marked down.
    Within READ_TIMEOUT_BOUNDS_S."""
    unsupported_retry_cycles: int = 30
    """Cycles before a field a device called unsupported is asked for again (a driver upgrade or a
    MIG change can make it supported): 5 minutes at the default interval."""

    def __post_init__(self) -> None:
        for name, value, bounds in (
            ("interval_s", self.interval_s, INTERVAL_BOUNDS_S),
            ("read_timeout_s", self.read_timeout_s, READ_TIMEOUT_BOUNDS_S),
        ):
            problem = seconds_problem(value, bounds)
            if problem:
                raise ValueError(f"{name} {problem}")
        if self.unsupported_retry_cycles < 1:
            raise ValueError(f"unsupported_retry_cycles must be at least 1, got {self.unsupported_retry_cycles}")

    @property
    def stale_after_s(self) -> float:
        """/health fails once no cycle has completed for this long: three missed cycles."""
        return 3 * self.interval_s + self.read_timeout_s
