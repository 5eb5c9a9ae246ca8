"""An endpoint whose spec is not applied reports the cost of what serves, worked out from its workloads.

`not_applied` (a variant that cannot be rendered, a changed spec no node can serve) used to carry the
previous status's `costPerHour` over, 0 where that status was a Failed one without a cost, while the
replicas from before went on running: the controller's intended $/h then left them out (the churn
benchmark's applied over intended). Covers both causes, from a Failed status without a cost.
"""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.decide import Decision, Observation, decide
from autoscaler.signals import ModelSignals
from scheduler.registry import Registry
from tests.test_decide import CATALOG, NOW, SETTINGS, endpoint, h100
from tests.test_isolation import unrenderable
from tests.test_not_applied import renderable
from tests.test_reconcile_state import applied, observed

MODEL = "qwen-int8"
SIGNALS = {MODEL: ModelSignals(MODEL, 3.0, sampled_at=NOW - 10)}


def failed_without_cost(first: Decision, spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The endpoints of `first` as read back, `spec` changed, the status a Failed one without a cost."""
    eps = observed(first, [endpoint("odd", model=MODEL, qualityFloor=0.9, **spec)])
    status = {k: v for k, v in eps[0]["status"].items() if k != "costPerHour"}
    eps[0]["status"] = {**status, "phase": "Failed"}
    return eps


@pytest.mark.parametrize(
    ("registry", "spec", "reason"),
    [(unrenderable(), {}, "CannotRender"), (renderable(), {"gpuClasses": ["L40S"]}, "Unschedulable")],
    ids=["cannot-render", "change-held"],
)
def test_a_spec_not_applied_costs_what_its_replicas_from_before_hold(
    registry: Registry, spec: dict[str, Any], reason: str
) -> None:
    nodes = [h100("gpu-0")]
    eps = [endpoint("odd", model=MODEL, qualityFloor=0.9)]
    first = decide(Observation(nodes, eps, signals=SIGNALS), SETTINGS, renderable(), CATALOG, NOW)
    owned, pods = applied(first)
    cost = first.statuses[("team-a", "odd")]["costPerHour"]
    assert cost > 0 and first.endpoints[0].replicas > 1  # the cost of every replica, not of one
    read = failed_without_cost(first, spec)
    second = decide(Observation(nodes, read, owned, SIGNALS, pods=pods), SETTINGS, registry, CATALOG, NOW + 60)
    (odd,) = second.endpoints
    assert odd.not_applied is not None and odd.not_applied[0] == reason
    assert second.statuses[("team-a", "odd")]["costPerHour"] == cost
