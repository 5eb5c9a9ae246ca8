"""Delays learnt from orders that came, weighed with those that had not come when they went (Kaplan-Meier).

Covers: orders cancelled older than every delay observed keep a new order's promise from resting on the
fast orders that came first; an order cancelled before any delay observed tells nothing; with nothing
cancelled and nothing in flight, the promise is the plain empirical quantile it was. Skips the
simulator's bookkeeping of cancelled orders (`autoscaler.simulator`).
"""

from __future__ import annotations

import numpy as np

from autoscaler.eta import ClassCapacity, EtaSettings, queue_etas

ETA = EtaSettings(prior_delay_s=(300.0, 600.0), quantile=0.95, step_s=60.0)
FAST = np.linspace(300.0, 490.0, 20).tolist()
"""Twenty delays observed, all of them under 500 s: 95% of them within 480 s."""


def promised(cancelled: list[float]) -> float:
    return queue_etas(0.0, [1], ClassCapacity(8), 0.0, FAST, ETA, cancelled)[0]


def test_orders_cancelled_later_than_every_delay_observed_keep_the_promise_from_the_fast_ones() -> None:
    assert promised([]) == 480.0
    # As many orders went unready at 495 s: half of all outlasted every delay seen, so 95% is beyond
    # what was seen: the promise is the longest known (the prior's 600 s) and a step.
    assert promised([495.0] * 20) == 660.0


def test_an_order_cancelled_before_any_delay_observed_tells_nothing() -> None:
    assert promised([10.0] * 20) == 480.0


def test_with_nothing_cancelled_the_promise_is_the_empirical_quantile() -> None:
    rng = np.random.default_rng(7)
    observed = rng.uniform(300.0, 600.0, 200)
    grid = ETA.step_s * np.arange(1, 12)
    expected = grid[np.flatnonzero([np.mean(observed <= t) >= ETA.quantile for t in grid])[0]]
    assert queue_etas(0.0, [1], ClassCapacity(8), 0.0, observed.tolist(), ETA) == [expected]
