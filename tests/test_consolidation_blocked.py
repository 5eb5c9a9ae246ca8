"""A consolidation move larger than the whole node budget is searched for once, not every loop (issue 16).

A search places the endpoints afresh over the whole fleet (about 0.1 s of CPU at 10,000 GPUs). A move that
takes replicas off more nodes than an interval allows never happens until the budget is raised, or the fleet
or the endpoint changes; before, each loop searched for it again to report it (`ConsolidationBlocked`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from autoscaler.decide import Decision, Observation, consolidation, decide
from tests.conftest import Spy
from tests.test_consolidation_within_class import ON
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, h100, signals, training
from tests.test_reconcile_state import applied, l40s, observed


def blocked_events(decision: Decision) -> list[str]:
    return [e.regarding.name for e in decision.events if e.reason == "ConsolidationBlocked"]


Loop = Callable[[list[dict[str, Any]], list[dict[str, Any]], Decision | None, float], tuple[Decision, int]]


def alpha_blocked(spy: Spy) -> tuple[list[dict[str, Any]], Loop]:
    """alpha's two replicas came on two H100 nodes, one each (a job held the rest of each); an L40S node joined.
    Moving alpha there takes replicas off two nodes; 10% of three nodes rounds up to one. The nodes, and a loop
    over `(fleet, other pods, last decision, time)` that says how often it searched for a move."""
    h100s, jobs = [h100("gpu-0"), h100("gpu-1")], [training("gpu-0", 7), training("gpu-1", 7)]
    first = decide(Observation(h100s, [endpoint("alpha", lo=2)], signals=signals(), pods=jobs),
                   SETTINGS, REGISTRY, CATALOG, NOW)  # fmt: skip
    owned, pods = applied(first)
    nodes, eps = [*h100s, l40s("l40s-0", 2)], observed(first, [endpoint("alpha", lo=2)])
    searched = spy(consolidation, "place_requests")

    def loop(
        fleet: list[dict[str, Any]], others: list[dict[str, Any]], last: Decision | None, at: float
    ) -> tuple[Decision, int]:
        searched.clear()
        obs = Observation(fleet, eps, owned, signals(age_s=NOW + 10 - at), pods=[*pods, *jobs, *others],
                          blocked=last.blocked if last else ())  # fmt: skip
        return decide(obs, ON, REGISTRY, CATALOG, at), len(searched)

    return nodes, loop


def test_a_blocked_move_is_reported_each_loop_and_searched_again_only_once_the_fleet_changes(spy: Spy) -> None:
    nodes, loop = alpha_blocked(spy)
    found, searches = loop(nodes, [], None, NOW)
    assert blocked_events(found) == ["alpha"] and searches >= 1
    # The next loops, nothing changed: reported as before, not searched for again.
    again, searches = loop(nodes, [], found, NOW + 10)
    assert (blocked_events(again), searches, again.blocked) == (["alpha"], 0, found.blocked)
    assert [e.note for e in again.events] == [e.note for e in found.events]
    # Found on other replicas of alpha's (a replica replaced since): searched for again.
    other = replace(found, blocked=(replace(found.blocked[0], held=((),)),))
    assert loop(nodes, [], other, NOW + 10)[1] >= 1
    # A node joins: the budget's base changed, so the move is searched for again (still blocked: 10% of 4).
    joined, searches = loop([*nodes, l40s("l40s-1", 2)], [], again, NOW + 20)
    assert blocked_events(joined) == ["alpha"] and searches >= 1
    assert replace(joined.blocked[0], room=found.blocked[0].room) == found.blocked[0]


def test_a_blocked_move_is_searched_again_once_other_workloads_take_the_room_it_needed(spy: Spy) -> None:
    # Then a job takes both L40S GPUs: the move alpha was blocked on has no room left, though the fleet's node
    # count and alpha's replicas stay. Remembered, it was reported blocked for good, unsearched.
    nodes, loop = alpha_blocked(spy)
    found, _ = loop(nodes, [], None, NOW)
    assert blocked_events(found) == ["alpha"]
    taken, searches = loop(nodes, [training("l40s-0", 2)], found, NOW + 10)
    assert (blocked_events(taken), taken.blocked) == ([], ()) and searches >= 1
    # The room comes back: found blocked again.
    back, searches = loop(nodes, [], taken, NOW + 20)
    assert blocked_events(back) == ["alpha"] and searches >= 1
