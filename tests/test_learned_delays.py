"""Provisioning delays learnt from the cluster: order placed -> its node Ready, per GPU class.

Covers: a node that joins ends the oldest order of its class and its delay is observed (from its Ready
condition's transition, else when it was first seen); promises keep the configured prior until
`min_observations` delays are known, then follow those observed; the controller learns them from the
nodes that join and promises a new endpoint by them. Skips the endpoint API's process (it keeps the
same order book, `autoscaler.adapters.api`).
"""

from __future__ import annotations

from typing import Any

from autoscaler.admission import admit, capacity
from autoscaler.decide import Observation, decide
from autoscaler.kubetime import deadline, rfc3339
from autoscaler.orders import TIME_RESOLUTION_S, OrderBook, track
from localplay.kube_standin import KubeCluster
from tests.clock import Clock
from tests.test_controller import ENDPOINTS, FixedSignals, controller
from tests.test_decide import CATALOG, MODEL, NOW, REGISTRY, SETTINGS, endpoint, h100
from tests.test_orders import H100, waiting
from tests.test_pods import pod


def ready_since(name: str, at: float) -> dict[str, Any]:
    node = h100(name)
    node["status"]["conditions"][0]["lastTransitionTime"] = rfc3339(at)
    return node


def test_a_node_that_joins_ends_the_oldest_order_and_its_delay_is_observed() -> None:
    pods = [waiting("a", 8, NOW - 400), waiting("b", 8, NOW - 100)]
    book = track(OrderBook(), pods, [h100("gpu-0")], CATALOG, SETTINGS, NOW)
    assert book.delays == {}  # gpu-0 was there at the first read: no order of ours brought it
    book = track(book, pods[1:], [h100("gpu-0"), ready_since("gpu-1", NOW - 10)], CATALOG, SETTINGS, NOW)  # "a" on it
    assert book.delays == {H100: (390.0,)}  # both times to the second, read as up to a second later
    nodes = [h100("gpu-0"), ready_since("gpu-1", NOW - 10), h100("gpu-2")]
    book = track(book, [], nodes, CATALOG, SETTINGS, NOW + 40)  # "b" was bound on gpu-2
    assert book.delays == {H100: (390.0, NOW + 40 - (NOW - 100 + TIME_RESOLUTION_S))}  # no time: when first seen
    assert book.orders == {}


def test_promises_follow_the_observed_delays_once_enough_are_known() -> None:
    load = REGISTRY.get(MODEL).variant("bf16").load_seconds
    step = SETTINGS.eta.step_s
    enough = SETTINGS.eta.min_observations

    def promised(delays: tuple[float, ...]) -> float | None:
        obs = Observation([], [], signals={}, orders=OrderBook(delays={H100: delays}))
        decision = decide(obs, SETTINGS, REGISTRY, CATALOG, NOW)
        return admit(
            capacity(decision, CATALOG), endpoint("new", lo=1, hi=1), SETTINGS, REGISTRY, CATALOG, NOW
        ).decision.eta

    assert promised(()) == NOW + step + 600 + load  # the prior, 300-600 s: 585 s at 95%, on the 60 s grid
    assert promised((150.0,) * (enough - 1)) == NOW + step + 600 + load
    assert promised((150.0,) * enough) == NOW + step + 180 + load
    assert promised((150.0,) * enough + (700.0,) * enough) == NOW + step + 720 + load  # slower than the prior


def test_the_controller_learns_the_delays_of_the_nodes_that_join(kube: KubeCluster) -> None:
    """Twenty nodes ordered for another team's pods came 150 s after they were ordered, and that team's
    pods took them: an endpoint created then is promised a node by those delays, not by the prior."""
    n = SETTINGS.eta.min_observations
    for i in range(n):
        kube.put("v1/pods", waiting(f"train-{i}", 8, NOW - 200))
    clock = Clock(NOW)
    ctl = controller(kube, FixedSignals(demand=1.0, clock=clock), clock=clock)
    ctl.reconcile()
    for i in range(n):
        kube.put("v1/nodes", ready_since(f"gpu-{i}", NOW - 50))
        kube.put("v1/pods", pod(f"train-{i}", {"nvidia.com/gpu": "8"}, node=f"gpu-{i}"))
    kube.put(ENDPOINTS, endpoint(lo=1, hi=1))
    clock.t = NOW + 20
    outcome = ctl.reconcile()
    assert outcome.observation.orders.delays == {H100: (150.0,) * n}  # type: ignore[union-attr]
    status = kube.get(ENDPOINTS, "team-a", "chat")["status"]  # type: ignore[index]
    load = REGISTRY.get(MODEL).variant(status["variant"]).load_seconds
    assert status["estimatedReadyTime"] == deadline(NOW + 20 + SETTINGS.eta.step_s + 180 + load)


def test_a_node_ready_before_the_order_was_placed_teaches_no_delay() -> None:
    """A node that was Ready before the pod needing it was found (one nobody ordered, listed late) still
    ends an order, but did not come for it: a delay of 0 would say nodes come at once."""
    book = track(OrderBook(), [waiting("a", 8, NOW - 100)], [], CATALOG, SETTINGS, NOW)
    book = track(book, [], [ready_since("old", NOW - 3600)], CATALOG, SETTINGS, NOW + 20)
    assert (book.orders, book.delays) == ({}, {})
