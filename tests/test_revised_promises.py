"""A 202's promise moved earlier once its pods are bound is a promise too: it counts the load and two of
the controller's loop periods as measured (the interval and the loop's own time), not the ETA's step.

Covers: the decide step's margin from `Observation.loop_period_s` (the ETA step where none was measured);
the controller measuring it over its recent loops while `run()` loops, and not when loops are called
one by one. Seed 341's churn run showed 4 of 35 such promises Ready 5-21 s late with the step alone.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

from autoscaler.decide import decide
from autoscaler.kubetime import deadline
from localplay.kube_standin import KubeCluster
from tests.test_controller import FixedSignals, controller
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS
from tests.test_decide_promises import KEY, RETRIES_S, _load_s, _loading


def test_a_promise_moved_earlier_counts_two_measured_loop_periods_not_the_eta_step() -> None:
    obs, _ = _loading(eta=NOW + 900)
    at, period = NOW + 30, SETTINGS.eta.step_s + 17.0  # the interval and a loop of 17 s, measured
    moved = decide(replace(obs, loop_period_s=period), SETTINGS, REGISTRY, CATALOG, at)
    assert moved.statuses[KEY]["promise"]["estimatedReadyTime"] == deadline(at + _load_s() + 2 * period + RETRIES_S)
    unmeasured = decide(obs, SETTINGS, REGISTRY, CATALOG, at)
    step = SETTINGS.eta.step_s
    assert unmeasured.statuses[KEY]["promise"]["estimatedReadyTime"] == deadline(at + _load_s() + 2 * step + RETRIES_S)


class SlowSignals(FixedSignals):
    """Prometheus answering after `delay_s`: each loop takes at least that long."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(demand=1.0)
        self.delay_s = delay_s

    def snapshot(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(self.delay_s)
        return super().snapshot(*args, **kwargs)


def test_the_loop_period_is_the_interval_plus_the_longest_recent_loop_once_run_loops(kube: KubeCluster) -> None:
    ctl = controller(kube, SlowSignals(0.2))
    ctl.reconcile()
    assert ctl.loop_period_s() is None  # loops called one by one: no interval to count from
    runner = threading.Thread(target=ctl.run, args=(0.05,))
    runner.start()
    try:
        deadline_s = time.monotonic() + 10
        while len(ctl.loop_s) < 3 and time.monotonic() < deadline_s:
            time.sleep(0.05)
    finally:
        ctl.shutdown()
        runner.join(10)
    period = ctl.loop_period_s()
    assert period is not None and 0.05 + 0.2 <= period == 0.05 + max(ctl.loop_s)
