"""A change of an endpoint's spec that no node can serve is held while its replicas from before serve.

Covers: the status says what is true (Ready on the old class and variant, the change held with the
scheduler's reason in `SpecApplied`, counted as held for that reason), the old workload is neither
deleted nor rewritten, a loop after it writes the same status, and once a node can serve the change
it goes ahead and the condition goes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from autoscaler.controller import ControllerMetrics, Outcome
from autoscaler.decide import Observation, decide
from autoscaler.events import find_condition
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, h100, signals
from tests.test_reconcile_state import applied, l40s, observed, workloads


def test_a_class_no_node_can_serve_is_held_while_the_old_replica_serves() -> None:
    nodes = [h100("gpu-0")]
    first = decide(Observation(nodes, [endpoint(gpuClasses=["H100-80GB"])], signals=signals()), SETTINGS, REGISTRY,
                   CATALOG, NOW)  # fmt: skip
    old = set(workloads(first, "chat"))
    owned, pods = applied(first)
    moved = observed(first, [endpoint(gpuClasses=["L40S"])])  # no L40S node, and the class is not provisioned
    moved[0]["metadata"]["generation"] = 4
    second = decide(Observation(nodes, moved, owned, signals(), pods=pods), SETTINGS, REGISTRY, CATALOG, NOW + 60)
    chat = second.endpoints[0]
    assert (chat.phase, chat.ready_replicas, chat.gpu_class, chat.variant) == ("Ready", 1, "H100-80GB", "bf16")
    status = second.statuses[("team-a", "chat")]
    assert (status["phase"], status["gpuClass"], status["observedGeneration"]) == ("Ready", "H100-80GB", 4)
    held = find_condition(status["conditions"], "SpecApplied")
    assert held is not None and (held["status"], held["reason"]) == ("False", "Unschedulable")
    assert held["message"].startswith("needs 25 GiB")  # the scheduler's reason
    assert second.deletions == () and not set(workloads(second, "chat"))  # the old one stays as it is
    exposed = CollectorRegistry()
    ControllerMetrics(exposed).record(Outcome(leader=True, decision=second), 0.1, NOW + 60)
    labels = {"namespace": "team-a", "endpoint": "chat", "reason": "Unschedulable"}
    assert exposed.get_sample_value("egs_autoscaler_held_endpoints", labels) == 1
    third = decide(Observation(nodes, observed(second, moved), owned, signals(), pods=pods), SETTINGS, REGISTRY,
                   CATALOG, NOW + 120)  # fmt: skip
    assert third.statuses == second.statuses and third.deletions == ()  # a quiet loop writes nothing
    # An L40S joins: the change goes ahead, make-before-break, and the condition goes.
    joined = [*nodes, l40s("l40s-0")]
    fourth = decide(Observation(joined, observed(third, moved), owned, signals(), pods=pods), SETTINGS, REGISTRY,
                    CATALOG, NOW + 180)  # fmt: skip
    assert fourth.endpoints[0].gpu_class == "L40S" and not set(workloads(fourth, "chat")) & old
    assert find_condition(fourth.statuses[("team-a", "chat")]["conditions"], "SpecApplied") is None
    assert fourth.deletions == ()
