"""Which workload a pod belongs to is read in one place (`state.workload_of`, `Owned.workload`).

Covers: each pod of a decided endpoint's Deployment names the workload the controller reads back, as
incumbents and the GPUs found taken count them. Skips: LeaderWorkerSets (their pods carry the same label,
written by the same template code in `scheduler.manifests`).
"""

from __future__ import annotations

from autoscaler.decide import Observation, decide
from autoscaler.decide.state import read_owned, workload_of
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, h100, signals
from tests.test_reconcile_state import applied


def test_every_pod_names_the_workload_it_is_read_back_as() -> None:
    first = decide(Observation([h100("gpu-0")], [endpoint(lo=2)], signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    owned, pods = applied(first)
    (workload,) = read_owned(owned, CATALOG)
    assert len(pods) == 2 and {workload_of(p) for p in pods} == {workload.workload}
    assert workload.workload == ("team-a", workload.name)
