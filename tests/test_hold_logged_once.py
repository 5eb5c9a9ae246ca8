"""What the controller logs while it holds its last decision: each cause once when holding for it starts
(with how many endpoints it holds) and once when it ends, as Kubernetes controllers report a condition's
transitions; a Prometheus outage once at each end, with its error; a replica that stops leading and leads
again logs a hold it finds anew, as another would. It logged every held endpoint every loop: 1,158 lines in
4 minutes of a Prometheus outage at 150 endpoints (churn seed 405). Each endpoint still says so itself
(`ScalingActive`, a `HoldingReplicas` Event), which tests/test_controller.py covers."""

from __future__ import annotations

import logging

import pytest

from autoscaler.signals import ModelSignals, Snapshot
from common.errors import TemporaryError
from localplay.kube_standin import KubeCluster
from tests.clock import Clock
from tests.test_controller import ENDPOINTS, NOW, controller
from tests.test_decide import MODEL, endpoint, h100
from tests.test_stale_hold_quiet import LastSampled

ENDPOINTS_HELD = 3
LOOPS_HELD = 5


class Outage:
    """Prometheus, down while `down` is set (as the adapter says it: a TemporaryError)."""

    def __init__(self, clock: Clock) -> None:
        self.clock, self.down = clock, False

    def snapshot(self, at: float, history_s: float, step_s: float, live: bool = True) -> Snapshot:
        if self.down:
            raise TemporaryError("Prometheus: connection refused")
        return Snapshot({MODEL: ModelSignals(MODEL, 1.0, 0.0, 1.0, 0.3, self.clock() - 5.0)}, {}, {})


def test_a_prometheus_outage_logs_one_line_at_each_end_with_its_error_not_each_endpoint_each_loop(
    kube: KubeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    for i in range(ENDPOINTS_HELD):
        kube.put(ENDPOINTS, endpoint(f"chat-{i}"))
    clock = Clock(NOW)
    prometheus = Outage(clock)
    ctl = controller(kube, prometheus, clock=clock)
    ctl.reconcile()
    prometheus.down = True
    with caplog.at_level(logging.INFO, logger="egs.controller"):
        for _ in range(LOOPS_HELD):
            clock.t += 10.0
            outcome = ctl.reconcile()
            assert outcome.decision is not None and len(outcome.decision.holds) == ENDPOINTS_HELD
        prometheus.down = False
        clock.t += 10.0
        assert ctl.reconcile().decision.holds == ()  # type: ignore[union-attr]
    said = [r.getMessage() for r in caplog.records if "holding" in r.getMessage() or "metrics" in r.getMessage()]
    # One line at each end, the error named: the hold's own line ("holding the last decision for 3 ...:
    # Prometheus unavailable", and "no longer holding") said the same a second time.
    assert said == ["metrics unavailable: Prometheus: connection refused", "metrics available again"]


def test_a_hold_on_stale_metrics_logs_its_start_with_how_many_it_holds_and_its_end(
    kube: KubeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    for i in range(ENDPOINTS_HELD):
        kube.put(ENDPOINTS, endpoint(f"chat-{i}"))
    clock = Clock(NOW)
    prometheus = LastSampled(NOW - 3600.0)
    ctl = controller(kube, prometheus, clock=clock)
    with caplog.at_level(logging.INFO, logger="egs.controller"):
        for _ in range(LOOPS_HELD):
            clock.t += 10.0
            assert len(ctl.reconcile().decision.holds) == ENDPOINTS_HELD  # type: ignore[union-attr]
        clock.t += 10.0
        prometheus.at = clock.t - 5.0
        assert ctl.reconcile().decision.holds == ()  # type: ignore[union-attr]
    said = [r.getMessage() for r in caplog.records if "holding" in r.getMessage()]
    assert said == [
        f"holding the last decision for 3 (team-a/chat-0, team-a/chat-1, team-a/chat-2): stale metrics for {MODEL}",
        f"no longer holding the last decision: stale metrics for {MODEL}",
    ]


def test_a_new_term_logs_the_hold_and_the_notice_it_finds_though_the_last_term_logged_them(
    kube: KubeCluster, caplog: pytest.LogCaptureFixture
) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    bad = h100("gpu-bad")
    bad["metadata"]["labels"]["nvidia.com/gpu.replicas"] = "two"
    kube.put("v1/nodes", bad)
    kube.put(ENDPOINTS, endpoint("chat-0"))
    clock, lease_clock = Clock(NOW), Clock(0.0)
    ctl = controller(kube, LastSampled(NOW - 3600.0), clock=clock, monotonic=lease_clock)
    with caplog.at_level(logging.WARNING, logger="egs.controller"):
        assert ctl.reconcile().leader
        lease_clock.t += 11.0  # past the renew deadline, not renewed: this replica stops leading
        assert not ctl.reconcile().leader
        assert ctl.elector.step()  # and leads again, the metrics still stale
        assert ctl.reconcile().leader
    held = [r.getMessage() for r in caplog.records if r.getMessage().startswith("holding")]
    assert held == [f"holding the last decision for 1 (team-a/chat-0): stale metrics for {MODEL}"] * 2
    skipped = [r.getMessage() for r in caplog.records if "gpu-bad" in r.getMessage()]
    assert len(skipped) == 2 and skipped[0] == skipped[1] and "'two' is not a whole number" in skipped[0]
