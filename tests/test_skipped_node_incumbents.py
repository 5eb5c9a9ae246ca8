"""A Node that cannot be read (a label GPU Feature Discovery or an admin wrote wrong) has not gone.

The inventory skips such a Node, so that one bad Node never stops the others. Its replicas were then read
as gone too: the decide step placed them again in another class and the old, Ready workload went once the
new one served, a restart its endpoint never asked for. They stay now, where their workload planned them,
and nothing new is placed on the Node; the endpoint API's capacity is built beside them.
"""

from __future__ import annotations

import copy
from typing import Any

from autoscaler.admission import capacity
from autoscaler.decide import Observation, decide
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, h100, signals
from tests.test_reconcile_state import applied, l40s, observed, workloads


def unreadable(node: dict[str, Any]) -> dict[str, Any]:
    bad = copy.deepcopy(node)
    bad["metadata"]["labels"]["nvidia.com/gpu.count"] = "lots"
    return bad


def test_a_ready_replica_stays_on_its_node_when_a_label_of_that_node_cannot_be_read() -> None:
    # The cheaper L40S serves the endpoint; an H100 node has room for it too.
    nodes = [l40s("l40s-0"), h100("gpu-0")]
    eps = [endpoint("alpha")]
    first = decide(Observation(nodes, eps, signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    assert first.endpoints[0].gpu_class == "L40S"
    owned, pods = applied(first)
    broken = [unreadable(nodes[0]), nodes[1]]
    obs = Observation(broken, observed(first, eps), owned, signals(), pods=pods)
    second = decide(obs, SETTINGS, REGISTRY, CATALOG, NOW + 60)
    assert [s.node for s in second.inventory.skipped] == ["l40s-0"]
    assert (second.endpoints[0].gpu_class, second.endpoints[0].phase) == ("L40S", "Ready")
    assert workloads(second, "alpha") == workloads(first, "alpha")  # nothing rewritten, nothing restarted
    assert second.deletions == ()
    # The endpoint API answers beside it: the skipped Node offers nothing, the H100 node all it has.
    free = capacity(second, CATALOG).free
    assert [n.node for n in free] == ["gpu-0"]
    assert all(g.holders == 0 for g in free.node("gpu-0").gpus)


def test_a_replica_on_a_node_skipped_and_not_ready_is_placed_again_as_on_any_node_not_ready() -> None:
    # Its kubelet stopped posting too: the pod is not Ready and will be evicted, so the replica is
    # placed again now (it stayed until its eviction, minutes later, while nothing served).
    nodes = [l40s("l40s-0"), h100("gpu-0")]
    eps = [endpoint("alpha")]
    first = decide(Observation(nodes, eps, signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    owned, pods = applied(first)
    broken = unreadable(nodes[0])
    broken["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    obs = Observation([broken, nodes[1]], observed(first, eps), owned, signals(), pods=pods)
    second = decide(obs, SETTINGS, REGISTRY, CATALOG, NOW + 60)
    assert [(s.node, s.ready) for s in second.inventory.skipped] == [("l40s-0", False)]
    assert second.endpoints[0].gpu_class == "H100-80GB"
