"""`egs api` plans no consolidation move: moves are the leader's, and its capacity holds no GPUs for one (issue 16).

The API answers POSTs from the capacity a decide step leaves (`autoscaler.admission.capacity`). With consolidation
on, that decide step planned moves too, and its capacity held the GPUs a move would take (and, since the old
replicas serve until the new ones do, the old ones as well): room the leader, which places new endpoints before it
moves anything, would have given the POST. A move the leader has begun is on the endpoint's status and its new
workload in the cluster, so the API still counts it.
"""

from __future__ import annotations

from autoscaler import endpoint as ie
from autoscaler.adapters.api import Services, _Admissions
from autoscaler.adapters.kubernetes import Cluster
from localplay.kube_standin import KubeCluster
from tests.test_consolidation_recorded_first import serving_on_h100
from tests.test_controller import ENDPOINTS
from tests.test_decide import CATALOG, NOW, REGISTRY, endpoint
from tests.test_endpoint_api import kube as kube  # kmock, as the API's tests start it
from tests.test_reconcile_state import CONSOLIDATING


def test_the_api_answers_on_the_room_a_move_not_begun_would_take(kube: KubeCluster) -> None:
    # chat serves on an H100 and the L40S beside it is free: a cheaper shape, which the leader's next loop would
    # move chat to. A POST comes first: the leader places it before it moves anything, so the API answers it there.
    ctl = serving_on_h100(kube)
    api = _Admissions(Services(Cluster(kube.api_client()), CONSOLIDATING, REGISTRY, CATALOG, clock=lambda: NOW))
    answer, created, _ = api.admit(ie.manifest("team-a", "beta", endpoint("beta", lo=1, hi=1)["spec"]))
    assert created is not None and answer.serves_now
    assert answer.gpu_class == "L40S"  # before: an H100, the L40S held for chat's move the API had planned
    # The leader agrees: beta goes where it was answered, and chat stays where it serves.
    assert ctl.reconcile().errors == []
    chat, beta = (kube.get(ENDPOINTS, "team-a", name) for name in ("chat", "beta"))
    assert chat is not None and beta is not None
    assert "consolidation" not in chat["status"] and beta["status"]["gpuClass"] == "L40S"
