"""A run of loops held for want of vLLM metrics, or on metrics that contradict each other, writes the endpoint's
status once, when the hold starts, however the figures move: the `ScalingActive` message carried its GPUs'
saturation to two decimals, or the contradicting figure (a KV-cache use of 1.31, then 1.7), so each loop whose
figures moved wrote the status again (the churn target is 0 writes on a quiet reconcile)."""

from __future__ import annotations

from autoscaler.signals import ModelSignals, PodSignals, Snapshot
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


class KvCacheOver:
    """Prometheus whose model's KV-cache use is `kv` (outside 0-1: the metrics contradict each other)."""

    def __init__(self, clock: Clock) -> None:
        self.clock, self.kv = clock, 1.3

    def snapshot(self, at: float, history_s: float, step_s: float, live: bool = True) -> Snapshot:
        return Snapshot({MODEL: ModelSignals(MODEL, 1.0, 0.0, 1.0, self.kv, self.clock() - 5.0)}, {}, {})


def test_loops_held_on_contradicting_metrics_write_nothing_after_the_first_while_the_figure_moves(
    kube: KubeCluster,
) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    clock = Clock(NOW)
    prometheus = KvCacheOver(clock)
    ctl = controller(kube, prometheus, clock=clock)
    ctl.reconcile()
    for kv in (1.31, 1.7, 2.4, 1.05):
        prometheus.kv = kv
        clock.t += 10.0
        outcome = ctl.reconcile()
        assert outcome.decision is not None
        assert [h.cause for h in outcome.decision.holds] == [f"metrics for {MODEL} contradict each other"]
        assert (outcome.writes, outcome.errors) == (0, [])
