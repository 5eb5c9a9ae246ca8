"""The drift check's memo of rendered templates (`workloads._rendered`) answers as a fresh render does.

It is keyed by request and placement, and for a replica not asked of before by its placement less its nodes (one
template serves every replica of a shape): a replica on other nodes or GPUs must read the shape and template hash
a render of its own gives, or the check would renew (or miss) a workload whose template never changed.
"""

from __future__ import annotations

from autoscaler.decide import Observation, decide, workloads
from autoscaler.endpoint import parse
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, h100, signals, training


def test_a_replica_on_other_nodes_reads_from_the_memo_what_a_render_of_its_own_gives() -> None:
    # alpha's two replicas on two H100 nodes, one each (a job holds the rest of each): one shape, two placements.
    nodes, jobs = [h100("gpu-0"), h100("gpu-1")], [training("gpu-0", 7), training("gpu-1", 7)]
    decision = decide(Observation(nodes, [endpoint("alpha", lo=2)], signals=signals(), pods=jobs),
                      SETTINGS, REGISTRY, CATALOG, NOW)  # fmt: skip
    placements = decision.placed.placements
    assert len({w.node for p in placements for w in p.workers}) == 2
    request = parse(endpoint("alpha", lo=2)).request(1)
    workloads._RENDERED.clear()
    warm = [workloads._rendered(request, p, REGISTRY, CATALOG) for p in placements]  # the second from the memo
    cold = []
    for placement in placements:
        workloads._RENDERED.clear()
        cold.append(workloads._rendered(request, placement, REGISTRY, CATALOG))
    assert warm == cold and None not in cold
