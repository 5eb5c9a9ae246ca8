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
    assert consolidation_moves(events, 30.0) == {"consolidation_moves": 4, "consolidation_moves_in_one_interval": 2}
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
