"""Workloads prefer the nodes their replicas were planned on, and keep the preference they were created with.

The workloads carried no node pin (a new pin would restart running pods), so kube-scheduler put a pod on
any node of its class with room: often another than planned, and then on the GPUs the endpoint API had
just answered a 201 on (churn at factor 30, seed 109: three 201s reported Provisioning, their GPUs taken by
pods of endpoints answered on other nodes, a tensor-parallel one's node split by two one-GPU pods). The
pin is now a preference, written when a workload is created and kept as it is after: a new plan never
changes a running workload's pod template, so nothing restarts for it.
"""

from __future__ import annotations

import copy
from typing import Any

from autoscaler.decide import Decision, Observation, decide
from autoscaler.decide.workloads import HOSTNAME, PREFERRED
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, signals
from tests.test_reconcile_state import applied, l40s, observed, workloads

NODES = [l40s("l40s-0", 2), l40s("l40s-1", 2)]


def preference(workload: dict[str, Any]) -> Any:
    return workload["spec"]["template"]["spec"]["affinity"]["nodeAffinity"].get(PREFERRED)


def only_workload(decision: Decision) -> dict[str, Any]:
    (workload,) = workloads(decision, "alpha").values()
    return workload


def test_a_new_workload_prefers_its_planned_nodes_and_requires_only_its_class() -> None:
    first = decide(Observation(NODES, [endpoint("alpha")], signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    workload = only_workload(first)
    planned = sorted({p.workers[0].node for p in first.placed.placements})
    assert preference(workload) == [
        {"weight": 100, "preference": {"matchExpressions": [{"key": HOSTNAME, "operator": "In", "values": planned}]}}
    ]
    required = workload["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    terms = required["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert all(e["key"] != HOSTNAME for t in terms for e in t["matchExpressions"])


def test_a_workload_keeps_the_preference_it_was_created_with_or_none_so_that_nothing_restarts() -> None:
    eps = [endpoint("alpha")]
    first = decide(Observation(NODES, eps, signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    owned, pods = applied(first)
    for kept in ([{"weight": 100, "preference": {"matchExpressions": [{"key": HOSTNAME, "operator": "In",
                                                                        "values": ["gone-0"]}]}}], None):  # fmt: skip
        cluster = copy.deepcopy(owned)
        workload = next(o for o in cluster if o["kind"] == "Deployment")
        affinity = workload["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
        affinity.pop(PREFERRED)
        affinity.update({PREFERRED: kept} if kept else {})
        obs = Observation(NODES, observed(first, eps), cluster, signals(), pods=pods)
        second = decide(obs, SETTINGS, REGISTRY, CATALOG, NOW + 60)
        assert only_workload(second)["spec"]["template"] == workload["spec"]["template"]
