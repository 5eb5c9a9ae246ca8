"""A consolidation move never lands on GPUs a stuck replica found taken (issue 16; churn seed 3004).

`unstuck` takes a replica whose pod kube-scheduler found no room for out of the plan, and the GPUs it was
planned on are withheld (`refused_placements`): something EGS cannot see holds them. Consolidation searched
the inventory less the new replicas only, so it could move a running endpoint onto those very GPUs. The plan
then held them twice: `egs api`'s capacity (`admission.capacity`) raised InventoryError on every POST until
the stuck pod was bound (churn seed 3004, `--fleet shared --consolidation 0.1 --api-replicas 3`: all three
replicas answered 500, "GPU 2 of node l40s-new-7 would hold 83785 of its 46068 MiB"), and the leader moved
a serving endpoint onto GPUs kube-scheduler had just refused.
"""

from __future__ import annotations

from autoscaler.admission import capacity
from autoscaler.decide import Decision, Observation, decide
from tests.test_decide import CATALOG, NOW, REGISTRY, endpoint, h100, signals, training
from tests.test_reconcile_state import CONSOLIDATING, applied, l40s, observed
from tests.test_stuck_replicas import UNSCHEDULABLE

CONSOLIDATED = (CONSOLIDATING, REGISTRY, CATALOG, NOW)


def refused_on_the_l40s() -> Decision:
    """`chat` serves on an H100 (both L40S GPUs were busy when it came). `new` comes once the job on l40s-0
    ends and is placed there; its pod finds no room (something EGS cannot see took it). The next loop, the
    job on l40s-1 ends too: `new` is planned there and taken out as stuck, l40s-1 withheld (`refused_placements`)."""
    nodes = [l40s("l40s-0"), l40s("l40s-1"), h100("gpu-0")]
    jobs = [training("l40s-0", 1), training("l40s-1", 1)]
    first = decide(Observation(nodes, [endpoint()], signals=signals(), pods=jobs), *CONSOLIDATED)
    assert first.endpoints[0].gpu_class == "H100-80GB"
    owned, pods = applied(first)
    eps = [*observed(first, [endpoint()]), endpoint("new")]
    second = decide(Observation(nodes, eps, owned, signals(), pods=[*pods, jobs[1]]), *CONSOLIDATED)
    assert [(e.name, e.gpu_class) for e in second.endpoints] == [("chat", "H100-80GB"), ("new", "L40S")]
    owned_new, pods_new = applied(second, ready=False)
    stuck = next(p for p in pods_new if p["metadata"]["labels"]["egs.io/request"] == "new")
    stuck["spec"] = {**stuck["spec"], "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-L40S"}}
    del stuck["spec"]["nodeName"]
    stuck["status"] = {"phase": "Pending", "conditions": [UNSCHEDULABLE]}
    known = {o["metadata"]["name"] for o in owned}
    obs = Observation(
        nodes, observed(second, eps), [*owned, *(o for o in owned_new if o["metadata"]["name"] not in known)],
        signals(), pods=[*pods, stuck],
    )  # fmt: skip
    return decide(obs, *CONSOLIDATED[:3], NOW + 20)


def held_on(decision: Decision, node: str) -> list[str]:
    """Who the plan puts on `node`."""
    return [p.request for p in decision.placed.placements for w in p.workers if w.node == node]


def test_no_move_onto_gpus_a_stuck_replica_found_taken() -> None:
    decision = refused_on_the_l40s()
    assert held_on(decision, "l40s-1") == []
    assert not any(e.reason == "Consolidating" for e in decision.events)
    capacity(decision, CATALOG)  # raised InventoryError: the L40S held twice
