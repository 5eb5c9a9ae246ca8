"""A run of loops held for want of vLLM metrics writes the endpoint's status once, when the hold starts,
however its GPUs' saturation moves below the mark that adds a replica: the `ScalingActive` message
carried that saturation to two decimals, so each loop whose load moved wrote the status again (the churn
target is 0 writes on a quiet reconcile)."""

from __future__ import annotations

from autoscaler.signals import PodSignals, Snapshot
from localplay.kube_standin import KubeCluster
from tests.clock import Clock
from tests.test_controller import ENDPOINTS, NOW, FixedSignals, controller
from tests.test_decide import MODEL, endpoint, h100, serving_pod

SATURATIONS = (0.41, 0.52, 0.47, 0.63, 0.58)
"""The GPUs' saturation, a loop each: moving, never at the 0.95 that adds a replica."""


class NoVllmSeries:
    """Prometheus with no series of the model's vLLM servers, only its GPUs' saturation per pod."""

    def __init__(self, pods: tuple[str, ...]) -> None:
        self.pods, self.saturation = pods, SATURATIONS[0]

    def snapshot(self, at: float, history_s: float, step_s: float, live: bool = True) -> Snapshot:
        return Snapshot({}, {("team-a", pod): PodSignals(gpu_saturation=self.saturation) for pod in self.pods}, {})


def test_loops_held_without_vllm_metrics_write_nothing_after_the_first_while_the_load_moves(
    kube: KubeCluster,
) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    clock = Clock(NOW)
    ctl = controller(kube, FixedSignals(demand=1.0, clock=clock), clock=clock)
    ctl.reconcile()
    kube.put("v1/pods", serving_pod("chat-0", "chat"))
    prometheus = NoVllmSeries(("chat-0",))
    ctl.metrics = prometheus
    clock.t += 10.0
    first = ctl.reconcile()
    assert first.decision is not None and [h.cause for h in first.decision.holds] == [f"no metrics for {MODEL}"]
    assert first.writes >= 1  # the status: ScalingActive False
    for saturation in SATURATIONS[1:]:
        prometheus.saturation = saturation
        clock.t += 10.0
        outcome = ctl.reconcile()
        assert outcome.decision is not None and [h.cause for h in outcome.decision.holds] == [f"no metrics for {MODEL}"]
        assert (outcome.writes, outcome.errors) == (0, [])
