"""A run of loops on stale metrics writes the endpoint's status once, when the hold starts: the
`ScalingActive` message said the metrics' age, which grows every loop, so each quiet loop wrote the
status again (the churn target is 0 writes on a quiet reconcile)."""

from __future__ import annotations

from autoscaler.signals import ModelSignals, Snapshot
from localplay.kube_standin import KubeCluster
from tests.clock import Clock
from tests.test_controller import ENDPOINTS, NOW, controller
from tests.test_decide import MODEL, endpoint, h100

LOOPS_HELD = 4


class LastSampled:
    """Prometheus whose model series was last sampled at `at` (`timestamp()` stays there while it is stale)."""

    def __init__(self, at: float) -> None:
        self.at = at

    def snapshot(self, at: float, history_s: float, step_s: float, live: bool = True) -> Snapshot:
        return Snapshot({MODEL: ModelSignals(MODEL, 1.0, 0.0, 1.0, 0.3, self.at)}, {}, {})


def test_loops_held_on_stale_metrics_write_nothing_after_the_first(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    clock = Clock(NOW)
    ctl = controller(kube, LastSampled(NOW - 5.0), clock=clock)
    ctl.reconcile()
    clock.t += 3600.0
    first = ctl.reconcile()
    assert first.decision is not None and [h.cause for h in first.decision.holds] == [f"stale metrics for {MODEL}"]
    assert first.writes == 1  # the status: ScalingActive False
    for _ in range(LOOPS_HELD):
        clock.t += 10.0
        outcome = ctl.reconcile()
        assert outcome.decision is not None and outcome.decision.holds
        assert (outcome.writes, outcome.errors) == (0, [])
