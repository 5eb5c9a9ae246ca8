"""What a standby replica reads of Prometheus: only what it keeps warm for a new leader.

Covers: a standby asks Prometheus for the demand history (incrementally, as the leader:
tests/test_handover.py) and the GPU indexes, not the nine instant queries of the model and pod signals
that it would drop; once it leads, its loop reads them all. Skips the history's contents
(tests/test_history_reads.py) and the leader's reads (tests/test_prometheus_reads.py).
"""

from __future__ import annotations

from autoscaler.adapters.prometheus import DEMAND, PrometheusMetrics
from localplay.kube_standin import KubeCluster
from tests.clock import Clock
from tests.test_controller import ENDPOINTS
from tests.test_decide import MODEL, NOW, endpoint, h100
from tests.test_handover import pair
from tests.test_prometheus_reads import FakePrometheus, sample


def test_a_standby_reads_only_the_gpu_indexes_of_the_instant_queries_and_all_of_them_once_it_leads(
    kube: KubeCluster,
) -> None:
    clock, lease_clock = Clock(NOW), Clock(0.0)
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    leader, standby = (FakePrometheus({DEMAND: [sample(MODEL, "1")]}) for _ in range(2))
    a, b = pair(kube, clock, lease_clock, a=PrometheusMetrics(leader.url), b=PrometheusMetrics(standby.url))
    try:
        assert a.reconcile().errors == []
        assert len(leader.times) == 10  # 9 signals and the GPU indexes
        for _ in range(2):
            assert not b.reconcile().leader
            clock.t += 30
        assert len(standby.times) == 2  # the GPU indexes, once a loop
        a.elector.release()  # SIGTERM
        assert b.elector.step()
        assert b.reconcile().errors == []
        assert len(standby.times) == 2 + 10
    finally:
        leader.shutdown()
        standby.shutdown()
