"""Consolidation empties a shared GPU for a waiting 202 (issue 16, Karpenter's defragmentation): two L40S GPUs
shared by KAI (or HAMi) each hold one small replica, and a 202 that needs more than either has left waits for a node. A
move of one small replica onto the other GPU empties one, within the budget and `consolidateAfter`, make before
break, where it likely serves the 202 before its node would; the 202 keeps waiting for its node meanwhile (its
promise unchanged) and is placed on the emptied GPU once the moved replica's old pod is gone, Ready before its
promise.

Before, `consolidate` only saved dollars: a move that saves nothing was never made, and the 202 waited for its
node (these tests' first `moves` assertion with consolidation on fails there).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from autoscaler.decide import (
    ClassSettings,
    ConsolidationSettings,
    Decision,
    Observation,
    Settings,
    decide,
    promise_outcome,
)
from autoscaler.decide.consolidation import Waiting, wanting
from autoscaler.decide.state import Move
from autoscaler.kubetime import rfc3339
from autoscaler.orders import OrderBook
from scheduler.plan import Placement, Worker
from tests.test_consolidation_within_class import moves
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, signals
from tests.test_reconcile_state import applied as applied_plainly
from tests.test_reconcile_state import l40s, observed, promised, workloads

KAI = replace(SETTINGS, classes={"L40S": ClassSettings(gpus_per_node=1)}, sharing={"L40S": "kai"})
ON = replace(KAI, consolidation=ConsolidationSettings(enabled=True))
HAMI = replace(ON, sharing={"L40S": "hami"})
SMALL: dict[str, Any] = {"gpuClasses": ["L40S"], "contextTokens": 4096}
"""An 8B model at fp8 with a short context: 17,770 MiB of an L40S's 46,068."""
PROMISED = NOW + 900
"""The 202's promise: bf16 on an L40S (34,003 MiB), more than either shared GPU has left (28,298 MiB)."""
NODES = [l40s("l40s-0"), l40s("l40s-1")]


def applied(decision: Decision) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`test_reconcile_state.applied`, each pod with its template's annotations: KAI's `gpu-memory` share, which
    a replaced replica's pod holds until it is gone."""
    owned, pods = applied_plainly(decision)
    templates = {o["metadata"]["name"]: o["spec"]["template"]["metadata"] for o in owned if o["kind"] == "Deployment"}
    for pod in pods:
        pod["metadata"]["annotations"] = templates[pod["metadata"]["labels"]["egs.io/workload"]].get("annotations", {})
    return owned, pods


def alone(
    name: str, node: str, settings: Settings = KAI
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """A small endpoint that came when only `node` had room: its endpoint with status, workloads and pods."""
    eps = [endpoint(name, lo=1, hi=1, **SMALL)]
    first = decide(Observation([l40s(node)], eps, signals=signals()), settings, REGISTRY, CATALOG, NOW)
    owned, pods = applied(first)
    return observed(first, eps), owned, pods


def shared_fleet(settings: Settings = KAI) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """alpha alone on l40s-0's GPU, beta alone on l40s-1's, and a 202 waiting for an L40S node."""
    alpha, beta = alone("alpha", "l40s-0", settings), alone("beta", "l40s-1", settings)
    big = promised("big", "Accepted", "L40S", eta=PROMISED, gpuClasses=["L40S"])
    return [*alpha[0], *beta[0], big], alpha[1] + beta[1], alpha[2] + beta[2]


def loop(
    eps: list[dict[str, Any]],
    owned: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    at: float = NOW,
    settings: Settings = ON,
    orders: OrderBook | None = None,
) -> Decision:
    obs = Observation(NODES, eps, owned, signals(age_s=NOW + 10 - at), pods=pods, orders=orders or OrderBook())
    return decide(obs, settings, REGISTRY, CATALOG, at)


def big(decision: Decision) -> Any:
    return next(d for d in decision.endpoints if d.name == "big")


def of(objects: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["metadata"]["name"].startswith(name)]


@pytest.mark.parametrize("on", [ON, HAMI], ids=["kai", "hami"])
def test_a_waiting_202_gets_a_gpu_emptied_by_packing_and_is_ready_before_its_promise(on: Settings) -> None:
    eps, owned, pods = shared_fleet(on)
    off = replace(on, consolidation=ConsolidationSettings())
    assert moves(loop(eps, owned, pods, settings=off)) == []  # off by default
    moved = loop(eps, owned, pods, settings=on)
    [who] = moves(moved)
    old_node, new_node = ("l40s-0", "l40s-1") if who == "alpha" else ("l40s-1", "l40s-0")
    [event] = [e for e in moved.events if e.reason == "Consolidating"]
    assert event.note == f"moving to fp8 on L40S off {old_node}: empties a GPU for team-a/big"
    record = moved.statuses[("team-a", who)]["consolidation"]
    assert (record["for"], record["nodes"], record["replacing"]) == ("team-a/big", [old_node], [f"{who}-fp8-l40s"])
    # Make before break: a new workload on the other GPU, the old one serving meanwhile.
    [(name, _)] = workloads(moved, who).items()
    assert name == f"{who}-fp8-l40s-2"
    assert [(p.node, p.sharing) for p in moved.placed.placements if p.request == who] == [
        (new_node, on.sharing["L40S"])
    ]
    assert moved.deletions == ()
    # The 202 still waits for its node, its promise as it was.
    assert (big(moved).waiting, big(moved).eta) == (1, PROMISED)
    assert moved.statuses[("team-a", "big")]["estimatedReadyTime"] == rfc3339(PROMISED)

    # The moved replica serves on the other GPU: its old workload goes; the 202 still waits, as promised.
    new_owned, new_pods = applied(moved)
    owned, pods = owned + of(new_owned, name), pods + of(new_pods, name)
    eps = observed(moved, eps)
    served = loop(eps, owned, pods, at=NOW + 60, settings=on)
    assert [d[3] for d in served.deletions] == [f"{who}-fp8-l40s"]
    assert moves(served) == [] and (big(served).waiting, big(served).eta) == (1, PROMISED)

    # Its old pod gone, the emptied GPU takes the 202 at once, its promise not made later.
    owned = [o for o in owned if o["metadata"]["name"] != f"{who}-fp8-l40s"]
    pods = [p for p in pods if p["metadata"]["labels"]["egs.io/workload"] != f"{who}-fp8-l40s"]
    eps = observed(served, eps)
    emptied = loop(eps, owned, pods, at=NOW + 120, settings=on)
    assert [(p.node, p.variant) for p in emptied.placed.placements if p.request == "big"] == [(old_node, "bf16")]
    assert big(emptied).waiting == 0 and (big(emptied).eta or PROMISED) <= PROMISED
    # Its pod bound and Ready there: Ready long before the node it was promised on.
    big_owned, big_pods = applied(emptied)
    owned, pods = owned + of(big_owned, "big-"), pods + of(big_pods, "big-")
    before = observed(emptied, eps)
    ready = loop(before, owned, pods, at=NOW + 180, settings=on)
    assert big(ready).phase == "Ready" and NOW + 180 < PROMISED
    assert promise_outcome(next(e for e in before if e["metadata"]["name"] == "big"), big(ready), NOW + 180) == "kept"


def test_no_gpu_is_emptied_beyond_the_budget_nor_for_an_endpoint_moved_within_consolidate_after() -> None:
    eps, owned, pods = shared_fleet()
    none = replace(ON, consolidation=ConsolidationSettings(enabled=True, max_nodes_per_interval=0))
    assert moves(loop(eps, owned, pods, settings=none)) == []
    # A move begun within the interval spent the one node 10% of two allows.
    spent = Move(NOW - 100, "team-b", (), nodes=("other-node",))
    obs = Observation(NODES, eps, owned, signals(), pods=pods, moves_begun=(("team-b/gone", spent),))
    assert moves(decide(obs, ON, REGISTRY, CATALOG, NOW)) == []
    # Both small endpoints moved 1,200 s ago (within consolidateAfter, beyond the interval): neither moves again.
    lately = {"consolidation": {"at": rfc3339(NOW - 1200), "replacing": [], "nodes": ["l40s-9"]}}
    settled = [{**e, "status": {**e.get("status", {}), **lately}} if e["metadata"]["name"] != "big" else e for e in eps]
    assert moves(loop(settled, owned, pods)) == []


def test_no_gpu_is_emptied_when_the_node_likely_comes_first_nor_off_an_endpoint_that_keeps_a_promise() -> None:
    eps, owned, pods = shared_fleet()
    # An L40S ordered 300 s ago (5-10 minutes a node): likely to come within 217 s, sooner than a move and two
    # loads (254 s), though a promise reads 337 s from it (its 0.95 point). Against that point, alpha was moved.
    soon = OrderBook({"L40S": (NOW - 300.0,)})
    waits = loop(eps, owned, pods, orders=soon)
    assert (big(waits).waiting, moves(waits)) == (1, [])
    # Both small endpoints keep a 201's promise (their status holds it still): neither is moved.
    answered = {"answer": "Created", "variant": "fp8", "gpuClass": "L40S", "observedGeneration": 3}
    kept = [e if e["metadata"]["name"] == "big" else {**e, "status": {**e["status"], "promise": answered}} for e in eps]
    assert moves(loop(kept, owned, pods)) == []
    # Nor while they do not serve every replica.
    unready = [o | {"status": {"readyReplicas": 0}} if o["kind"] == "Deployment" else o for o in owned]
    assert moves(loop(eps, unready, pods)) == []


def placement(request: str, replica: int = 0, sharing: str = "kai", tp: int = 1) -> Placement:
    worker = Worker("egs-provisioning-l40s-0", tuple(range(tp)))
    return Placement(request, replica, "m", "bf16", "bf16", 1.0, "L40S", sharing, tp, 34003, (worker,), "team-a")


def test_a_waiting_replica_is_served_by_one_move_at_a_time() -> None:
    """A GPU being emptied for a waiting replica is not sought again while the move replaces, nor within the
    budget's interval after: the replica's node still comes if the GPU went to another pod."""
    waiting = [Waiting("team-a/big", placement("big", i), NOW + 600) for i in range(2)]
    waiting += [Waiting("team-a/tp2", placement("tp2", tp=2), NOW + 600)]  # two GPUs: no one GPU serves it
    waiting += [Waiting("team-a/whole", placement("whole", sharing="exclusive"), NOW + 600)]
    assert [(w.key, w.placement.replica) for w in wanting(waiting, (), NOW - 600)] == [("team-a/big", 0)] * 1 + [
        ("team-a/big", 1)
    ]
    replacing = Move(NOW - 900, "team-b", ("alpha-fp8-l40s",), for_="team-a/big")
    assert [w.placement.replica for w in wanting(waiting, [("team-b/alpha", replacing)], NOW - 600)] == [1]
    done_lately = replace(replacing, at=NOW - 300, replacing=())
    assert [w.placement.replica for w in wanting(waiting, [("team-b/alpha", done_lately)], NOW - 600)] == [1]
    # The controller's memory and the status name one move: counted once.
    both = [("team-b/alpha", done_lately), ("team-b/alpha", done_lately)]
    assert [w.placement.replica for w in wanting(waiting, both, NOW - 600)] == [1]
    done_long_ago = replace(done_lately, at=NOW - 700)
    assert len(wanting(waiting, [("team-b/alpha", done_long_ago)], NOW - 600)) == 2
    assert Move(NOW, "team-b", (), for_="team-a/big").as_status()["for"] == "team-a/big"
