"""Capacity that arrives goes to the 202s promised earliest first (`placement._earliest_first`).

Churn seed 4 (eleventh session): an L40S node joined with four GPUs for six 202s answered within a second;
the decide step placed the two answered last (promised 650-660 s, a node ordered anew) and left two answered
before them (promised 103-107 s, on that very node) waiting: those two were late by about 290 s, and the two
placed were Ready with 590 s of slack each."""

from __future__ import annotations

from autoscaler.decide import Observation, decide
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, signals
from tests.test_reconcile_state import node, promised


def _h100(name: str, gpus: int) -> dict[str, object]:
    return node(name, "NVIDIA-H100-80GB-HBM3", gpus)


def _placed(etas: dict[str, float], gpus: int) -> dict[str, int]:
    eps = [promised(name, "Accepted", "H100-80GB", eta=eta) for name, eta in etas.items()]
    decision = decide(Observation([_h100("gpu-0", gpus)], eps, signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    return {d.name: d.placed for d in decision.endpoints}


def test_the_one_gpu_that_arrives_goes_to_the_202_promised_first() -> None:
    # Listed first (and so first in the scheduler's batch), `alpha` was promised later than `beta`.
    assert _placed({"alpha": NOW + 660, "beta": NOW + 105}, gpus=1) == {"alpha": 0, "beta": 1}
    assert _placed({"alpha": NOW + 105, "beta": NOW + 660}, gpus=1) == {"alpha": 1, "beta": 0}


def test_the_earliest_promises_take_what_arrives_and_the_rest_wait_in_promise_order() -> None:
    etas = {"a": NOW + 700, "b": NOW + 650, "c": NOW + 110, "d": NOW + 100, "e": NOW + 600}
    assert _placed(etas, gpus=3) == {"a": 0, "b": 0, "c": 1, "d": 1, "e": 1}


def test_room_for_every_202_places_every_one() -> None:
    etas = {"a": NOW + 700, "b": NOW + 100, "c": NOW + 400}
    assert _placed(etas, gpus=8) == dict.fromkeys(etas, 1)
