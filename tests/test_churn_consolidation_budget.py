"""The churn benchmark's consolidation figures (`--consolidation`): the moves begun, and the most begun within
one budget interval, read from the controller's `Consolidating` Events as a user reads them."""

from __future__ import annotations

import pytest

from autoscaler.decide import ConsolidationSettings
from autoscaler.kubetime import micro_time
from benchmarks.churnkit.figures import Moved, consolidation_budget, consolidation_moves, consolidation_repeats
from benchmarks.churnkit.scenario import Shape


def consolidating(t: float, count: int | None = None, reason: str = "Consolidating") -> dict[str, object]:
    return {"reason": reason, "eventTime": micro_time(t), **({"series": {"count": count}} if count else {})}


def test_moves_begun_in_one_interval_are_counted_together_and_a_series_by_its_count() -> None:
    events = [
        consolidating(100.0),
        consolidating(129.0, count=2),
        consolidating(131.0),
        consolidating(50.0, reason="Ready"),
    ]
    figures = consolidation_moves(events, 30.0)
    assert (figures["consolidation_moves"], figures["consolidation_moves_in_one_interval"]) == (4, 2)
    assert consolidation_moves(events, 1.0)["consolidation_moves_in_one_interval"] == 1
    assert consolidation_moves([], 30.0) == {"consolidation_moves": 0, "consolidation_moves_in_one_interval": 0}


def test_consolidation_is_off_unless_asked_and_its_least_saving_is_a_share() -> None:
    assert Shape().consolidation == 0.0
    with pytest.raises(ValueError, match="--consolidation"):
        Shape(consolidation=1.5)


def test_the_play_lingers_only_when_asked() -> None:
    assert Shape().linger == 0.0
    with pytest.raises(ValueError, match="--linger"):
        Shape(linger=-1.0)


def test_the_nodes_moves_took_replicas_off_are_counted_per_interval_as_the_controller_counts_them() -> None:
    # From the statuses' `consolidation` (the controller's own times): two moves off one node within an
    # interval spend one node; a move an interval or more after another spends afresh.
    moves = [Moved(100.0, frozenset({"n-1"}), 10, "u1"), Moved(110.0, frozenset({"n-1"}), 10, "u2"),
             Moved(120.0, frozenset({"n-2", "n-3"}), 30, "u3"), Moved(170.0, frozenset({"n-4"}), 10, "u4")]  # fmt: skip
    ten_percent = ConsolidationSettings().nodes_allowed
    assert consolidation_budget(moves, 50.0, ten_percent) == {
        "consolidation_nodes_in_one_interval": 3,  # n-1, n-2, n-3 by 120; at 170 the move at 120 is 50 s old
        "consolidation_moves_over_budget": 0,  # at 120, 10% of 30 Nodes: 3
    }
    assert consolidation_budget(moves, 60.0, ten_percent)["consolidation_moves_over_budget"] == 1  # 170: 3 > 1
    assert consolidation_budget(moves[:2], 50.0, ten_percent)["consolidation_nodes_in_one_interval"] == 1
    assert consolidation_budget([], 50.0, ten_percent)["consolidation_nodes_in_one_interval"] == 0


def test_an_endpoint_moved_again_within_consolidate_after_is_a_repeat_move() -> None:
    # team-a/ep-1 moved at 100, again 50 s later (a repeat) and 200 s after that (settled: not one); ep-2 once;
    # ep-3 moved, was deleted and posted again, and its new incarnation moved at once (another endpoint).
    def moved(at: float, uid: str) -> Moved:
        return Moved(at, frozenset({"n-1"}), 10, uid)

    moves = {("team-a/ep-1", "a"): moved(100.0, "u1"), ("team-a/ep-1", "b"): moved(150.0, "u1"),
             ("team-a/ep-1", "c"): moved(350.0, "u1"), ("team-a/ep-2", "a"): moved(120.0, "u2"),
             ("team-a/ep-3", "a"): moved(100.0, "u3"), ("team-a/ep-3", "b"): moved(110.0, "u4")}  # fmt: skip
    assert consolidation_repeats(moves, 100.0) == {"consolidation_repeat_moves": 1}
    assert consolidation_repeats(moves, 300.0)["consolidation_repeat_moves"] == 2  # 350 - 150 = 200 < 300
    # The statuses' times are to the second: a move a second short of the settled time is no repeat.
    assert consolidation_repeats(moves, 51.0)["consolidation_repeat_moves"] == 0
    assert consolidation_repeats({}, 100.0) == {"consolidation_repeat_moves": 0}
