"""Consolidation's node budget counts every move begun within its interval (issue 16, churn seed 2400).

Churn seed 2400 counted three moves over the budget: team-b/ep-13 moved twice 7.6 s apart (its `Consolidating`
Event, a series keyed by reason, showed count 2 and the second note), and its second move took the place of its
first in the controller's memory (`begun_moves`, by endpoint) and on its status (`status.consolidation`, one
move): the first one's node was counted no more, and the next loop's moves spent a fifth node where 10% of the
fleet allowed four. Each scenario runs the decide step over loops as `tests/test_reconcile_state.py` does.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from autoscaler.controller import begun_moves
from autoscaler.decide import ConsolidationSettings, Decision, Observation, decide
from autoscaler.decide.state import Move
from tests.test_consolidation_within_class import ON, lone_endpoints
from tests.test_decide import CATALOG, NOW, REGISTRY, signals
from tests.test_reconcile_state import applied, observed

TWO = replace(ON, consolidation=ConsolidationSettings(enabled=True, max_nodes_per_interval=2))
"""A budget of two nodes an interval."""
EARLIER = Move(NOW - 100, "team-a", (), nodes=("l40s-9",))
"""gamma's move 100 s ago off l40s-9 (a node gone since), done: its new replica serves, its old one went."""


def with_move_recorded(ep: dict[str, Any], move: Move) -> dict[str, Any]:
    """`ep` with `move` on its status, as the controller writes it."""
    return {**ep, "status": {**ep.get("status", {}), "consolidation": move.as_status()}}


def moved(decision: Decision) -> list[tuple[str, Move]]:
    """The moves `decision` began: each endpoint's key and its move."""
    began = {e.regarding.name for e in decision.events if e.reason == "Consolidating"}
    return [(d.key, d.move) for d in decision.endpoints if d.name in began and d.move is not None]


@pytest.mark.parametrize("remembers", [True, False], ids=["the leader", "a new leader each loop"])
def test_an_endpoint_moved_once_in_the_interval_keeps_its_first_moves_nodes_in_the_budget(remembers: bool) -> None:
    # Four endpoints each alone on a half-empty node: any node can be emptied onto another. gamma moved 100 s
    # ago; the budget of two has one node left. Before, gamma (the largest key: first of equal savings) moved
    # again, its status and the controller's memory forgot l40s-9, and the next loop emptied a third node.
    names = ("alpha", "beta", "gamma", "delta")
    nodes, eps, owned, pods = lone_endpoints(names)
    eps = [with_move_recorded(e, EARLIER) if e["metadata"]["name"] == "gamma" else e for e in eps]
    begun: tuple[tuple[str, Move], ...] = (("team-a/gamma", EARLIER),) if remembers else ()
    spent: list[tuple[str, Move]] = [("team-a/gamma", EARLIER)]
    at = NOW
    for _ in range(3):
        obs = Observation(nodes, eps, owned, signals(age_s=NOW + 10 - at), pods=pods, moves_begun=begun)
        decision = decide(obs, TWO, REGISTRY, CATALOG, at)
        spent += moved(decision)
        begun = begun_moves(begun, decision, TWO.consolidation.interval_s, at) if remembers else ()
        # The moves' new workloads written, their pods bound and not Ready yet: the old ones still serve.
        owned_new, pods_new = applied(decision, ready=False)
        names_before = {o["metadata"]["name"] for o in owned}
        owned += [o for o in owned_new if o["metadata"]["name"] not in names_before]
        pods += [p for p in pods_new if p["metadata"]["labels"]["egs.io/workload"] not in names_before]
        eps, at = observed(decision, eps), at + 10
    assert [key for key, _ in spent[1:]] == ["team-a/delta"]  # gamma waits for the next interval
    assert len({node for _, move in spent for node in move.nodes}) <= 2


def test_the_controller_remembers_every_move_of_one_endpoint_within_the_interval() -> None:
    # The memory held one move an endpoint: a second one's took the first one's place, nodes and all.
    nodes, eps, owned, pods = lone_endpoints(("alpha", "beta"))
    decision = decide(Observation(nodes, eps, owned, signals(), pods=pods), ON, REGISTRY, CATALOG, NOW)
    [(key, now_moved)] = moved(decision)
    first = Move(NOW - 100, "team-a", (), nodes=("l40s-9",))
    kept = begun_moves(((key, first),), decision, ON.consolidation.interval_s, NOW)
    assert kept == ((key, first), (key, now_moved))
    # Read back from its status the next loop (`at` to the second), it is the move remembered, not another.
    recorded = replace(now_moved, at=float(int(NOW)), saving=0.0)  # as `move_of` reads it
    again = replace(
        decision, endpoints=tuple(replace(d, move=recorded) if d.key == key else d for d in decision.endpoints)
    )
    assert begun_moves(kept, again, ON.consolidation.interval_s, NOW + 10) == kept
