"""ETA promises as the simulator and queue_etas make them: the j-th waiting replica is promised the
j-th earliest of the orders in flight (each conditioned on how long it has waited), tight on the step
grid; later promises of a waiting replica only move it earlier, and the figures score the first one
(what the user was answered) apart from the last. The controller's revisions are in test_decide_promises."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from autoscaler.eta import ClassCapacity, EtaSettings, queue_etas
from autoscaler.pool import PoolSettings
from autoscaler.simulator import Policy, simulate
from tests.test_simulator import SCENARIO, SCORE, _trace

LOAD = 120.0


@pytest.mark.parametrize("elapsed", [(0.0, 0.0, 0.0), (0.0, 120.0, 400.0), (700.0, 30.0, 0.0, 1000.0)])
def test_the_jth_replica_is_promised_the_jth_earliest_of_the_orders_in_flight(elapsed):
    eta = EtaSettings(prior_delay_s=(300.0, 1200.0), quantile=0.95, step_s=60.0)
    now = 5000.0
    capacity = ClassCapacity(8, (), [now - e for e in elapsed])
    promises = queue_etas(now, [8] * len(elapsed), capacity, LOAD, (), eta)
    # Monte Carlo of the same orders: each delay uniform on the prior range given it exceeds its age.
    rng = np.random.default_rng(0)
    remaining = np.sort(np.column_stack([rng.uniform(max(300.0, e), 1200.0, 40_000) - e for e in elapsed]), axis=1)
    for j, promised in enumerate(promises):
        within = promised - now - LOAD
        assert np.mean(remaining[:, j] <= within) >= 0.95 - 0.005  # kept
        assert np.mean(remaining[:, j] <= within - eta.step_s) < 0.95  # and no step later than it must be
    assert promises == sorted(promises)


def test_simulated_promises_are_revised_only_earlier_and_scored_against_the_first():
    # 5-20 minute orders: a replica promised with one order in flight is served sooner when more orders
    # are placed for the replicas behind it, whichever is ready first serving the head of the queue.
    scenario = replace(SCENARIO, gpu_class=replace(SCENARIO.gpu_class, provision_delay_s=(300.0, 1200.0)))
    result, timeline = simulate(_trace(), scenario, Policy("reactive", PoolSettings(8)), SCORE, 0, timeline=True)
    assert timeline is not None
    first, last = np.asarray(timeline.eta_promised_s), np.asarray(timeline.eta_last_s)
    actual = np.asarray(timeline.eta_actual_s)
    assert result.eta_revised > 0 and np.any(last < first)
    assert np.all(last <= first)
    made = np.asarray(timeline.eta_made_s)
    assert np.all(last >= made + 60.0 + LOAD)  # waiting at the end of its first step: a GPU a step later at best
    assert result.eta_mean_slack_s == pytest.approx(np.mean(first - actual))
    assert result.eta_kept_frac == pytest.approx(np.mean(actual <= first + 1e-9))
    assert result.eta_mean_slack_last_s == pytest.approx(np.mean(last - actual))
    assert result.eta_mean_slack_last_s < result.eta_mean_slack_s
