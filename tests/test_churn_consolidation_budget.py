"""The churn benchmark's consolidation figures (`--consolidation`): the moves begun, and the most begun within
one budget interval, read from the controller's `Consolidating` Events as a user reads them."""

from __future__ import annotations

import pytest

from autoscaler.kubetime import micro_time
from benchmarks.churnkit.figures import consolidation_moves
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
    assert consolidation_moves([], 30.0) == dict.fromkeys(
        ("consolidation_moves", "consolidation_moves_in_one_interval", "consolidation_nodes_in_one_interval"), 0
    )


def test_consolidation_is_off_unless_asked_and_its_least_saving_is_a_share() -> None:
    assert Shape().consolidation == 0.0
    with pytest.raises(ValueError, match="--consolidation"):
        Shape(consolidation=1.5)


def test_the_play_lingers_only_when_asked() -> None:
    assert Shape().linger == 0.0
    with pytest.raises(ValueError, match="--linger"):
        Shape(linger=-1.0)


def test_the_nodes_moves_took_replicas_off_are_counted_per_interval_from_their_notes() -> None:
    # The budget counts nodes: two moves off one node within an interval spend one, as the controller counts.
    def off(t: float, nodes: str) -> dict[str, object]:
        return {**consolidating(t), "note": f"moving to bf16 on L40S off {nodes}: saves $1.5/h"}

    events = [off(100.0, "n-1"), off(110.0, "n-1"), off(120.0, "n-2, n-3"), off(200.0, "n-4")]
    figures = consolidation_moves(events, 50.0)
    assert (figures["consolidation_moves_in_one_interval"], figures["consolidation_nodes_in_one_interval"]) == (3, 3)
    assert consolidation_moves(events[:2], 50.0)["consolidation_nodes_in_one_interval"] == 1
