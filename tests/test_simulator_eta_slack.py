"""The slack a promise's quantile alone leaves (`Result.eta_quantile_slack_s`), beside the slack measured.

Covers the simulator's report of it, on rises that each wait for one fresh order (the lead's bound on
5-20 minute orders is this figure); what `queue_etas` promises is tests/test_eta*.py's business."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.pool import PoolSettings
from autoscaler.simulator import GpuClass, ModelSpec, Policy, Scenario, Trace, Window, simulate

SCENARIO = Scenario(GpuClass("g", 8, 10.0, (300.0, 600.0)), 0.1, {"m": ModelSpec(4.0, 1, 120.0)})


def _one_order_per_rise(days: int = 2, every_h: int = 3) -> Trace:
    """R 1 (3 req/s) rising to 9 (32 req/s) for an hour every `every_h` hours: the first node's 7 free GPUs
    take 7 of the 8 added, the 8th waits for one order, and the fall empties the node it brought."""
    demand = np.full(days * 144, 3.0)
    for start in range(6, len(demand), every_h * 6):
        demand[start : start + 6] = 32.0
    return Trace(600.0, {"m": demand})


def test_a_promise_on_one_fresh_order_leaves_the_prior_ranges_quantile_over_its_median_whatever_the_draw() -> None:
    policy = Policy("reactive", PoolSettings(8))
    results = [simulate(_one_order_per_rise(), SCENARIO, policy, Window(1, 2), seed)[0] for seed in range(4)]
    assert [r.eta_promised for r in results] == [8] * 4  # one replica waits at each of day 2's rises
    # Fewer than 20 delays observed: the prior 5-10 min, 0.95 -> 585 s and 0.5 -> 450 s, on the 60 s grid.
    assert [r.eta_quantile_slack_s for r in results] == pytest.approx([600.0 - 480.0] * 4)
    assert len({r.eta_mean_slack_s for r in results}) > 1  # the slack measured is the draws'


def test_the_bound_on_one_fresh_order_is_the_laws_own_whatever_the_draw_and_below_the_quantiles_slack() -> None:
    """`Result.eta_bound_slack_s`: one fresh 5-10 minute order, ready at the first 60 s step after its draw, is
    ready by 360, 420, ... 600 s with 0.2 each; keeping 0.95 of such promises costs at least all of the points
    up to 540 s (72 s of slack a promise) and 0.75 of the step to 600 s (48 s more): 108 s over 0.95 kept."""
    policy = Policy("reactive", PoolSettings(8))
    results = [simulate(_one_order_per_rise(), SCENARIO, policy, Window(1, 2), seed)[0] for seed in range(4)]
    assert [r.eta_bound_slack_s for r in results] == pytest.approx([(72.0 + 0.75 * 48.0) / 0.95] * 4)
    assert all(r.eta_bound_slack_s < r.eta_quantile_slack_s for r in results)
