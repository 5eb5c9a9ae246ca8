"""Ready-time promises for replicas that must wait for GPU capacity.

Part of the autoscaler's pure core. When a replica cannot start at once, the endpoint API answers
202 Accepted with the time it will serve; the controller (and `egs simulate`) calls `queue_etas` for
the waiting replicas of a GPU class. A replica is served by, in this order: a free GPU now, an order
already in flight (oldest first), or a node ordered now; it serves `load_s` after it has its GPU.

The promise is an upper quantile, not an average: a delay model built from the provisioning delays
observed so far (an empirical distribution, conditioned on how long an order has already waited)
falls back to a prior range until `min_observations` delays are known. A promise is never earlier
than physically possible: not before now + load, and for an order not before its placement plus the
shortest delay known, plus load. Capacity is handed out at decide steps, so a promise rounds up to
the next step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EtaSettings:
    """How ready-time promises are made."""

    prior_delay_s: tuple[float, float] = (300.0, 600.0)
    """Provisioning delay range assumed (uniform) before enough delays are observed, seconds."""
    quantile: float = 0.95
    """Promise the delay's upper quantile: about this fraction of promises are kept."""
    min_observations: int = 20
    """Observed delays (longer than the elapsed time) needed before they replace the prior."""
    step_s: float = 60.0
    """Decide-step length: capacity is handed out once a step, so promises round up to it."""

    def __post_init__(self) -> None:
        low, high = self.prior_delay_s
        if not 0 <= low <= high:
            raise ValueError(f"EtaSettings.prior_delay_s must be [min, max] with 0 <= min <= max, got {low}, {high}")
        if not 0 < self.quantile < 1:
            raise ValueError(f"EtaSettings.quantile must be in (0, 1), got {self.quantile}")
        if self.min_observations < 1 or self.step_s <= 0:
            raise ValueError("EtaSettings: min_observations must be >= 1 and step_s positive")


def remaining_delay(elapsed_s: float, observed_s: Sequence[float], settings: EtaSettings) -> tuple[float, float]:
    """(earliest, promised) seconds until an order that has waited `elapsed_s` is ready.

    `promised` is the `quantile` of the delay given that it exceeds `elapsed_s`: from the observed
    delays when enough of them are that long, else from the prior range. An order already past every
    delay known is promised one more step.
    """
    low, high = settings.prior_delay_s
    observed = np.asarray(observed_s, dtype=np.float64)
    shortest = min(low, float(observed.min())) if observed.size else low
    earliest = max(0.0, shortest - elapsed_s)
    longer = observed[observed > elapsed_s]
    if longer.size >= settings.min_observations:
        promised = float(np.quantile(longer, settings.quantile, method="higher")) - elapsed_s
    elif elapsed_s < high:
        start = max(low, elapsed_s)
        promised = start + settings.quantile * (high - start) - elapsed_s
    else:
        promised = settings.step_s
    return earliest, max(earliest, promised)


@dataclass(frozen=True)
class ClassCapacity:
    """The GPU capacity of one class that a waiting replica can get, as plain numbers."""

    gpus_per_node: int
    free_gpus: Sequence[int] = ()
    """Free GPUs per ready node, now."""
    orders_placed_at: Sequence[float] = ()
    """When each order still provisioning was placed (any order: they are served oldest first)."""


def queue_etas(
    now: float,
    waiting_gpus: Sequence[int],
    capacity: ClassCapacity,
    load_s: Sequence[float] | float,
    observed_delays_s: Sequence[float],
    settings: EtaSettings,
) -> list[float]:
    """The promised serving time for each waiting replica (GPUs each, in queue order), in `now`'s clock.

    Replicas take free GPUs first, then the orders in flight, oldest first, then nodes ordered now;
    each replica's promise is when its GPU is promised plus its own model load time (`load_s`: one
    value or one per replica).
    """
    loads = [float(load_s)] * len(waiting_gpus) if isinstance(load_s, int | float) else [float(x) for x in load_s]
    if len(loads) != len(waiting_gpus):
        raise ValueError(f"queue_etas: {len(loads)} load times for {len(waiting_gpus)} waiting replicas")
    # Each slot: (time its GPUs are promised, GPUs free in it); consumed in order.
    slots: list[list[float]] = [[now, float(g)] for g in capacity.free_gpus if g > 0]
    for placed in sorted(capacity.orders_placed_at):
        _, promised = remaining_delay(now - placed, observed_delays_s, settings)
        slots.append([now + promised, float(capacity.gpus_per_node)])
    _, fresh = remaining_delay(0.0, observed_delays_s, settings)
    etas = []
    for gpus, load in zip(waiting_gpus, loads, strict=True):
        slot = next((s for s in slots if s[1] >= gpus), None)
        if slot is None:
            slot = [now + fresh, float(capacity.gpus_per_node)]
            slots.append(slot)
        slot[1] -= gpus
        etas.append(now + _round_up(slot[0] - now, settings.step_s) + load)
    return etas


def _round_up(seconds: float, step_s: float) -> float:
    return math.ceil(seconds / step_s - 1e-9) * step_s
