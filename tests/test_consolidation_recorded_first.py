"""A consolidation move's new workloads are written only once the status recording the move is (issue 16).

The status records the move (`status.consolidation`: the workloads it replaces, the nodes it takes replicas
off): a new leader counts the budget and knows what is being replaced from it alone. Before, the move's new
workloads were written first: where the status write then failed, they ran unrecorded, and a new leader neither
counted the move's nodes nor knew the old workloads were being replaced.
"""

from __future__ import annotations

from typing import Any

from localplay.kube_standin import KubeCluster
from tests.test_controller import DEPLOYMENTS, ENDPOINTS, FixedSignals, controller
from tests.test_decide import endpoint, h100, training
from tests.test_reconcile_state import CONSOLIDATING, applied, l40s

STATUS = "/inferenceendpoints/chat/status"


def serving_on_h100(kube: KubeCluster) -> Any:
    """chat serving its one replica on an H100 (a training job held the L40S when it came, and ended since):
    a controller with consolidation on, one loop in."""
    kube.put("v1/nodes", l40s("l40s-0"))
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put("v1/pods", training("l40s-0", 1))
    kube.put(ENDPOINTS, endpoint())
    ctl = controller(kube, FixedSignals(demand=1.0), settings=CONSOLIDATING)
    first = ctl.reconcile()
    assert first.errors == [] and first.decision is not None
    assert first.decision.endpoints[0].gpu_class == "H100-80GB"
    owned, pods = applied(first.decision)
    for obj in owned:
        if obj["kind"] == "Deployment":
            kube.patch(DEPLOYMENTS, "team-a", obj["metadata"]["name"], {"status": obj["status"]})
    for pod in pods:
        kube.put("v1/pods", pod)
    kube.delete("v1/pods", "ml", "train-l40s-0")
    return ctl


def deployments(kube: KubeCluster) -> set[str]:
    return {d["metadata"]["name"] for d in kube.all(DEPLOYMENTS) if d["metadata"]["namespace"] == "team-a"}


def test_a_moves_workloads_wait_for_the_status_that_records_it(kube: KubeCluster) -> None:
    ctl = serving_on_h100(kube)
    assert deployments(kube) == {"chat-bf16-h100-80gb"}
    kube.fail("PATCH", 422, times=1, path_part=STATUS)
    refused = ctl.reconcile()
    assert refused.decision is not None and refused.decision.endpoints[0].move is not None  # it decided the move
    assert refused.errors == ["rejected"]
    # Nothing of the move written: no workload runs that no status says replaces the H100 one.
    assert deployments(kube) == {"chat-bf16-h100-80gb"}
    assert "consolidation" not in kube.get(ENDPOINTS, "team-a", "chat")["status"]  # type: ignore[index]
    # The next loop decides it again: its status first, then its workload.
    assert ctl.reconcile().errors == []
    recorded = kube.get(ENDPOINTS, "team-a", "chat")["status"]["consolidation"]  # type: ignore[index]
    assert recorded["replacing"] == ["chat-bf16-h100-80gb"]
    assert deployments(kube) == {"chat-bf16-h100-80gb", "chat-bf16-l40s"}


def test_a_moves_status_is_written_before_its_workloads(kube: KubeCluster) -> None:
    ctl = serving_on_h100(kube)
    before = len(kube.requests())
    assert ctl.reconcile().errors == []
    writes = [r.url.path for r in kube.requests()[before:] if r.method in ("PATCH", "POST", "PUT")]
    status = next(i for i, path in enumerate(writes) if path.endswith(STATUS))
    workload = next(i for i, path in enumerate(writes) if "/deployments/chat-bf16-l40s" in path)
    assert status < workload


def test_a_move_recorded_whose_workload_write_failed_is_made_the_next_loop(kube: KubeCluster) -> None:
    # The other way round: the status written, the new workload refused. The status says what it replaces, so
    # the next loop (this leader or a new one) places the endpoint afresh and writes it.
    ctl = serving_on_h100(kube)
    kube.fail("PATCH", 422, times=1, path_part="/deployments/chat-bf16-l40s")
    assert ctl.reconcile().errors == ["rejected"]
    recorded = kube.get(ENDPOINTS, "team-a", "chat")["status"]["consolidation"]  # type: ignore[index]
    assert (recorded["replacing"], deployments(kube)) == (["chat-bf16-h100-80gb"], {"chat-bf16-h100-80gb"})
    assert ctl.reconcile().errors == []
    assert deployments(kube) == {"chat-bf16-h100-80gb", "chat-bf16-l40s"}


def test_a_move_whose_status_was_written_before_the_lease_was_lost_stays_counted(kube: KubeCluster) -> None:
    """The leader's memory of moves counts against the budget beside the statuses: a loop that stops leading
    after writing a move's status (and before its workloads) still remembers the move, as the status says."""
    ctl = serving_on_h100(kube)
    # The lease is lost once the move's status is written: the next write (its workload) is not made.
    ctl.elector.leading = lambda: "consolidation" not in kube.get(ENDPOINTS, "team-a", "chat")["status"]  # type: ignore[index]
    lost = ctl.reconcile()
    assert lost.errors == ["lease_lost"]
    assert "consolidation" in kube.get(ENDPOINTS, "team-a", "chat")["status"]  # type: ignore[index]
    assert [key for key, _ in ctl.moves_begun] == ["team-a/chat"]
