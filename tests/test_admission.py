"""The endpoint API's admission as data: one new endpoint on the capacity the last decide left.

Covers: the answer is the one the full decide step gives with the endpoint added (warm fit, a
provisioning wait with the same ETA, the same behind replicas already waiting, a model no class
can serve); the capacity after an admission no longer offers the GPUs it took; a replica placed by the
decide step is not offered again.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from autoscaler.admission import admit, capacity
from autoscaler.decide import ClassSettings, EndpointDecision, Observation, decide
from tests.test_decide import CATALOG, MODEL, NOW, REGISTRY, SETTINGS, endpoint, h100


def full(nodes: list[dict[str, Any]], endpoints: list[dict[str, Any]]) -> EndpointDecision:
    """What the decide step says for the last endpoint, all of them decided together."""
    decision = decide(Observation(nodes, endpoints, signals={}), SETTINGS, REGISTRY, CATALOG, NOW)
    return decision.endpoints[-1]


def admitted(nodes: list[dict[str, Any]], others: list[dict[str, Any]], new: dict[str, Any]) -> EndpointDecision:
    base = capacity(decide(Observation(nodes, others, signals={}), SETTINGS, REGISTRY, CATALOG, NOW), CATALOG)
    return admit(base, new, SETTINGS, REGISTRY, CATALOG, NOW).decision


def shape(d: EndpointDecision) -> tuple[Any, ...]:
    return (d.phase, d.replicas, d.placed, d.waiting, d.gpu_class, d.variant, d.eta)


@pytest.mark.parametrize(
    ("nodes", "others"),
    [
        ([h100("gpu-0")], []),  # a warm GPU: 201
        ([], []),  # nothing: a node is provisioned, 202 with an ETA
        ([h100("gpu-0")], [endpoint(f"e{i}", lo=1, hi=1) for i in range(8)]),  # the node is full: 202
        ([], [endpoint(f"e{i}", lo=2, hi=2) for i in range(5)]),  # behind 10 waiting replicas: a later ETA
    ],
)
def test_the_answer_is_the_full_decide_steps(nodes: list[dict[str, Any]], others: list[dict[str, Any]]) -> None:
    new = endpoint("new", lo=2, hi=4)
    assert shape(admitted(nodes, others, new)) == shape(full(nodes, [*others, new]))


def test_a_model_no_class_can_serve_fails_and_takes_nothing() -> None:
    base = capacity(decide(Observation([h100("gpu-0")], [], signals={}), SETTINGS, REGISTRY, CATALOG, NOW), CATALOG)
    ep = endpoint("big", gpuClasses=["L4"], contextTokens=131072, concurrency=64)
    result = admit(base, ep, SETTINGS, REGISTRY, CATALOG, NOW)
    assert (result.decision.phase, result.capacity) == ("Failed", base)
    assert "GiB" in result.decision.message


def test_admitted_replicas_take_their_gpus() -> None:
    cap = capacity(decide(Observation([h100("gpu-0")], [], signals={}), SETTINGS, REGISTRY, CATALOG, NOW), CATALOG)
    answers = []
    for i in range(9):  # one GPU each on an 8-GPU node
        result = admit(cap, endpoint(f"e{i}", lo=1, hi=1), SETTINGS, REGISTRY, CATALOG, NOW)
        cap = result.capacity
        answers.append(result.decision.serves_now)
    assert answers == [True] * 8 + [False]
    assert cap.waiting == {"H100-80GB": (1,)}
    assert cap.endpoints == {f"team-a/e{i}" for i in range(9)}
    assert all(g.holders for g in cap.free.node("gpu-0").gpus)


def test_the_capacity_counts_what_the_decide_step_placed() -> None:
    decision = decide(
        Observation([h100("gpu-0")], [endpoint("a", lo=3, hi=3)], signals={}), SETTINGS, REGISTRY, CATALOG, NOW
    )
    free = capacity(decision, CATALOG).free.node("gpu-0")
    assert sum(1 for g in free.gpus if g.holders == 0) == 8 - decision.endpoints[0].placed
    assert decision.endpoints[0].model == MODEL


def test_replicas_that_wait_wait_in_the_shape_of_those_placed_warm() -> None:
    """One H100 GPU free, L40S nodes cheaper to add: the second replica used to wait for an L40S node
    while the first ran on the H100 (its 202's ETA from the L40S queue), but the controller keeps an
    endpoint in one shape and made it wait for an H100 node instead (churn seed 1: promised 167 s,
    Ready at 700 s)."""
    both = replace(SETTINGS, classes={**SETTINGS.classes, "L40S": ClassSettings(gpus_per_node=4)})
    others = [endpoint(f"e{i}", lo=1, hi=1) for i in range(7)]
    base = capacity(decide(Observation([h100("gpu-0")], others, signals={}), both, REGISTRY, CATALOG, NOW), CATALOG)
    result = admit(base, endpoint("new", lo=2, hi=2), both, REGISTRY, CATALOG, NOW)
    assert (result.decision.placed, result.decision.waiting, result.decision.gpu_class) == (1, 1, "H100-80GB")
    assert result.capacity.waiting == {"H100-80GB": (1,)}
