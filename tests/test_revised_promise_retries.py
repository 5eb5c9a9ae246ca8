"""A 202's promise moved earlier once its pods are bound counts the retries of one loop whose writes fail.

Covers: the decide step's margin, two loop periods and `Observation.write_retries_s`; the controller giving
it its own retry waits. Seed 7's churn run (after 0fa8021) showed team-b/late-1 Ready 2 s after such a
promise: its pod turned Ready while a loop retried a failing apply for 3.25 s (65 s at x20), longer than
the two periods measured before. Skips: the churn run itself.
"""

from __future__ import annotations

from dataclasses import replace

from autoscaler.decide import decide
from autoscaler.kubetime import deadline
from localplay.kube_standin import KubeCluster
from tests.test_controller import FixedSignals, controller
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, h100
from tests.test_decide_promises import KEY, _load_s, _loading


def test_a_promise_moved_earlier_counts_two_loop_periods_and_one_loops_retries() -> None:
    obs, _ = _loading(eta=NOW + 900)
    at, period, retries = NOW + 30, SETTINGS.eta.step_s + 2.0, 3.25
    moved = decide(replace(obs, loop_period_s=period, write_retries_s=retries), SETTINGS, REGISTRY, CATALOG, at)
    expected = at + _load_s() + 2 * period + retries
    assert moved.statuses[KEY]["promise"]["estimatedReadyTime"] == deadline(expected)


def test_the_controller_gives_the_decide_step_its_own_retry_waits(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    outcome = controller(kube, FixedSignals(demand=1.0), retry_delays_s=(0.25, 1.0, 2.0)).reconcile()
    assert outcome.observation is not None and outcome.observation.write_retries_s == 3.25
