"""Promises for replicas that share a GPU by memory (KAI, HAMi): counted by their share, not as whole GPUs.

Covers: `nodes_needed` binpacks shares onto the GPUs already shared (whole GPUs as before); the endpoint
API promises a KAI replica the node already coming when its share fits there behind the replicas ahead
of it (the churn benchmark's seed 7: promised a fresh order, 640 s, Ready 97 s after its POST).
Skips: how the node autoscaler counts such pods (`autoscaler.orders`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from autoscaler.admission import admit, capacity
from autoscaler.decide import ClassSettings, Observation, decide
from autoscaler.eta import ClassCapacity, EtaSettings, nodes_needed, queue_etas
from autoscaler.orders import OrderBook
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint

KAI_L40S = replace(SETTINGS, classes={"L40S": ClassSettings(gpus_per_node=4)}, sharing={"L40S": "kai"})
SMALL: dict[str, Any] = {"gpuClasses": ["L40S"], "contextTokens": 4096}
"""An 8B model at fp8 with a short context: 17770 MiB, two to an L40S (46068 MiB)."""


def test_shares_of_a_gpu_are_binpacked_and_whole_gpus_counted_as_before() -> None:
    assert nodes_needed([0.4] * 10, 0, 4) == [1] * 8 + [2, 2]  # two a GPU, eight a 4-GPU node
    assert nodes_needed([0.6, 0.3, 0.3, 0.4], 0, 1) == [1, 1, 2, 2]  # the least room that holds it
    assert nodes_needed([1, 2, 0.5, 1, 0.5], 1, 4) == [0, 1, 1, 1, 1]
    assert nodes_needed([1, 1, 1, 1, 1], 2, 2) == [0, 0, 1, 1, 2]


def test_shares_that_fit_the_node_in_flight_are_promised_it_not_a_new_order() -> None:
    eta = EtaSettings(prior_delay_s=(300.0, 600.0), step_s=60.0)
    in_flight = ClassCapacity(4, (), [NOW - 500.0])
    promises = queue_etas(NOW, [0.4] * 6, in_flight, 0.0, (), eta)
    assert promises == [NOW + 120.0] * 6  # 500 s waited: the 0.95 quantile of U(500, 600) is 95 s on
    whole = queue_etas(NOW, [1] * 6, in_flight, 0.0, (), eta)
    assert whole[4:] == [NOW + 600.0] * 2  # six whole GPUs on a 4-GPU node: the fifth needs a new order


def test_the_api_promises_a_kai_replica_the_node_coming_for_those_ahead() -> None:
    """Four KAI L40S replicas wait for the one L40S node in flight; a fifth shares their GPUs there."""
    others = [endpoint(f"e{i}", lo=1, hi=1, **SMALL) for i in range(4)]
    orders = {"L40S": (NOW - 500.0,)}
    decision = decide(Observation([], others, signals={}, orders=OrderBook(orders)), KAI_L40S, REGISTRY, CATALOG, NOW)
    assert {d.waiting for d in decision.endpoints} == {1}
    new = admit(capacity(decision, CATALOG), endpoint("new", lo=1, hi=1, **SMALL), KAI_L40S,
                REGISTRY, CATALOG, NOW).decision  # fmt: skip
    assert new.eta is not None and new.eta == decision.endpoints[0].eta
    fresh = admit(capacity(decide(Observation([], [], signals={}), KAI_L40S, REGISTRY, CATALOG, NOW), CATALOG),
                  endpoint("new", lo=1, hi=1, **SMALL), KAI_L40S, REGISTRY, CATALOG, NOW).decision  # fmt: skip
    assert fresh.eta is not None and new.eta < fresh.eta - 300.0
