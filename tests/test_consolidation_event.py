"""A consolidation move's `Consolidating` Event is written once the status that records the move is (issue 16).

The status records the move (`status.consolidation`): where its write fails, no leader counts the move or
knows its new workloads replace the old ones, and a new leader decides it again. Before, the Event was written
whatever became of the status, so churn counted such a move twice (`consolidation_moves`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from autoscaler.decide import Decision, Observation, decide
from autoscaler.events import event
from localplay.kube_standin import KubeCluster
from tests.test_controller import ENDPOINTS, EVENTS, FixedSignals, controller
from tests.test_decide import endpoint, h100


def test_a_move_is_told_only_once_the_status_recording_it_is_written(
    kube: KubeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    ctl = controller(kube, FixedSignals(demand=3.0))
    assert ctl.reconcile().errors == []
    move = {"at": "2027-01-15T08:00:00Z", "replacing": ["chat-bf16-h100-80gb"], "nodes": ["gpu-0"]}

    def moving(obs: Observation, *args: Any) -> Decision:
        """The decision, with chat moving: its status records the move, and its Event says so."""
        decision = decide(obs, *args)
        [chat] = [e for e in obs.endpoints if e["metadata"]["name"] == "chat"]
        told = event(chat, "Normal", "Consolidating", "Consolidate", "moving to bf16 on H100-80GB off gpu-0")
        statuses = {
            k: {**s, "consolidation": move} if k == ("team-a", "chat") else s for k, s in decision.statuses.items()
        }
        return replace(decision, statuses=statuses, events=(*decision.events, told))

    monkeypatch.setattr("autoscaler.controller.decide", moving)
    kube.fail("PATCH", 422, times=1, path_part="/inferenceendpoints/chat/status")
    refused = ctl.reconcile()
    assert refused.errors == ["rejected"]
    reasons = [e["reason"] for e in kube.all(EVENTS)]
    assert "WriteFailed" in reasons and "Consolidating" not in reasons
    assert "consolidation" not in kube.get(ENDPOINTS, "team-a", "chat")["status"]  # type: ignore[index]
    # The next loop writes the status: the move is told.
    assert ctl.reconcile().errors == []
    assert kube.get(ENDPOINTS, "team-a", "chat")["status"]["consolidation"] == move  # type: ignore[index]
    [told] = [e for e in kube.all(EVENTS) if e["reason"] == "Consolidating"]
    assert (told["regarding"]["name"], told["note"]) == ("chat", "moving to bf16 on H100-80GB off gpu-0")
