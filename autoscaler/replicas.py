"""Replica target: how many replicas a model needs for a demand, the one formula everyone uses.

Part of the autoscaler's pure core; the controller's decide step and `egs simulate` both call it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# A demand of exactly k replicas' worth must not round up to k + 1 through float noise.
_EPSILON = 1e-9


@dataclass(frozen=True)
class ReplicaBounds:
    """The endpoint's own limits on its replica count."""

    min_replicas: int = 0
    """Never fewer replicas than this (0 lets an idle model scale to zero)."""
    max_replicas: int | None = None
    """Never more replicas than this; None for no limit."""

    def __post_init__(self) -> None:
        if self.min_replicas < 0:
            raise ValueError(f"min_replicas must be >= 0, got {self.min_replicas}")
        if self.max_replicas is not None and self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})")


def replica_target(
    demand_rps: float, throughput_rps: float, headroom: float, bounds: ReplicaBounds = ReplicaBounds()
) -> int:
    """R = ceil(demand x (1 + headroom) / per-replica throughput), clamped to the endpoint's bounds."""
    if throughput_rps <= 0:
        raise ValueError(f"throughput_rps must be positive, got {throughput_rps}")
    if headroom < 0:
        raise ValueError(f"headroom must be >= 0, got {headroom}")
    if not demand_rps >= 0:  # also refuses NaN: missing demand is the caller's decision, not a zero
        raise ValueError(f"demand_rps must be >= 0, got {demand_rps}")
    needed = demand_rps * (1.0 + headroom) / throughput_rps - _EPSILON
    if bounds.max_replicas is not None and needed > bounds.max_replicas:
        # Before the rounding: a finite demand past every bound (one sample of 1.7e308 req/s) is the maximum,
        # where its replicas overflow to infinity, which no integer is.
        return bounds.max_replicas
    return max(0, math.ceil(needed), bounds.min_replicas)
