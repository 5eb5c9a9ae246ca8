"""A spec that cannot be applied is said in one condition, while what serves is reported as it is.

Covers the two causes through the one rule (`autoscaler.decide.status.not_applied`): a variant that can
no longer be rendered while the endpoint's replicas from before serve is Ready on their variant and
class, with `SpecApplied` False and reason `CannotRender` (as a changed spec no node can serve is,
with `Unschedulable`: tests/test_held_change.py), counted as held for that reason; a loop after it
writes the same status. Nothing serving, it is Failed (tests/test_isolation.py).
"""

from __future__ import annotations

import dataclasses

from prometheus_client import CollectorRegistry

from autoscaler.controller import ControllerMetrics, Outcome
from autoscaler.decide import Observation, decide
from autoscaler.events import find_condition
from autoscaler.signals import ModelSignals
from scheduler.registry import Registry
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, h100
from tests.test_isolation import unrenderable
from tests.test_reconcile_state import applied, observed, workloads


def renderable() -> Registry:
    """`unrenderable()`'s model as it was before its variant lost its pre-quantised checkpoint."""
    qwen = REGISTRY.get("qwen2.5-14b-instruct")
    return Registry((*REGISTRY.models, dataclasses.replace(qwen, name="qwen-int8", variants=(qwen.variant("int8"),))))


def test_a_serving_endpoint_whose_variant_cannot_be_rendered_is_ready_with_spec_applied_false() -> None:
    nodes = [h100("gpu-0")]
    eps = [endpoint("odd", model="qwen-int8", qualityFloor=0.9)]
    sig = {"qwen-int8": ModelSignals("qwen-int8", 1.0, sampled_at=NOW - 10)}
    first = decide(Observation(nodes, eps, signals=sig), SETTINGS, renderable(), CATALOG, NOW)
    owned, pods = applied(first)
    before = first.statuses[("team-a", "odd")]
    second = decide(Observation(nodes, observed(first, eps), owned, sig, pods=pods), SETTINGS, unrenderable(),
                    CATALOG, NOW + 60)  # fmt: skip
    status = second.statuses[("team-a", "odd")]
    assert (status["phase"], status["readyReplicas"]) == ("Ready", before["desiredReplicas"])
    assert (status["variant"], status["gpuClass"]) == (before["variant"], before["gpuClass"])
    assert find_condition(status["conditions"], "Degraded")["status"] == "False"  # type: ignore[index]
    held = find_condition(status["conditions"], "SpecApplied")
    assert held is not None and (held["status"], held["reason"]) == ("False", "CannotRender")
    assert "pre-quantised `source`" in held["message"]
    assert second.kept == ("team-a/odd",) and second.deletions == () and not workloads(second, "odd")
    exposed = CollectorRegistry()
    ControllerMetrics(exposed).record(Outcome(leader=True, decision=second), 0.1, NOW + 60)
    labels = {"namespace": "team-a", "endpoint": "odd", "reason": "CannotRender"}
    assert exposed.get_sample_value("egs_autoscaler_held_endpoints", labels) == 1
    third = decide(Observation(nodes, observed(second, eps), owned, sig, pods=pods), SETTINGS, unrenderable(),
                   CATALOG, NOW + 120)  # fmt: skip
    assert third.statuses == second.statuses  # a quiet loop writes nothing
