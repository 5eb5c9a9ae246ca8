"""Node orders in flight (`autoscaler.orders`) and the 202 promises that count on them, as data.

Covers: the nodes unschedulable pods need, packed by GPUs in the order kube-scheduler found them, each
dated by its pod's `PodScheduled=False` condition (EGS's own pods, which list a product and its
`-SHARED` form, included); an order whose pods went is remembered until a node of its class joins or
the prior's longest delay passes; the endpoint API promises a waiting replica the order already in
flight, by its age, and the controller (every loop) and the API (every decide step) remember an order
whose pod went and promise its node. Skips the processes (the churn benchmark runs them).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from autoscaler.adapters.api import Services, create_app
from autoscaler.adapters.kubernetes import Cluster
from autoscaler.admission import admit, capacity
from autoscaler.decide import Observation, decide
from autoscaler.kubetime import deadline, parse_time, rfc3339
from autoscaler.orders import TIME_RESOLUTION_S, OrderBook, pending_orders, track
from localplay.kube_standin import KubeCluster
from tests.clock import Clock
from tests.test_controller import ENDPOINTS, FixedSignals, controller
from tests.test_decide import CATALOG, MODEL, NOW, REGISTRY, SETTINGS, endpoint, h100
from tests.test_endpoint_api import ALICE, body, post
from tests.test_pods import pod

H100 = "H100-80GB"
PRODUCT = "NVIDIA-H100-80GB-HBM3"


def waiting(name: str, gpus: int, since: float, **spec: Any) -> dict[str, Any]:
    """A pod kube-scheduler found no H100 node for at `since`."""
    spec = spec or {"nodeSelector": {"nvidia.com/gpu.product": PRODUCT}}
    p = pod(name, {"nvidia.com/gpu": str(gpus)}, node=None, phase="Pending", **spec)
    p["status"]["conditions"][0]["lastTransitionTime"] = rfc3339(since)
    return p


def test_unschedulable_pods_need_nodes_packed_in_the_order_they_were_found() -> None:
    products = {"key": "nvidia.com/gpu.product", "operator": "In", "values": [PRODUCT, f"{PRODUCT}-SHARED"]}
    terms = {"nodeSelectorTerms": [{"matchExpressions": [products]}]}
    ours = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": terms}}}
    pods = [
        waiting("late", 8, NOW - 100),
        waiting("first", 6, NOW - 300),
        waiting("egs", 4, NOW - 200, **ours),  # 6 + 4 GPUs: a second node, ordered when this one was found
        pod("bound", {"nvidia.com/gpu": "8"}, phase="Running"),
        pod("anywhere", {"nvidia.com/gpu": "8"}, node=None, phase="Pending"),  # names no class
    ]
    found = pending_orders(pods, CATALOG, {H100: 8}, NOW)
    assert found == {H100: tuple(t + TIME_RESOLUTION_S for t in (NOW - 300, NOW - 200, NOW - 100))}


def test_an_order_whose_pods_went_stays_until_a_node_of_its_class_joins() -> None:
    pods = [waiting("a", 8, NOW - 400), waiting("b", 8, NOW - 100)]
    book = track(OrderBook(), pods, [h100("gpu-0")], CATALOG, SETTINGS, NOW)
    placed = (NOW - 400 + TIME_RESOLUTION_S, NOW - 100 + TIME_RESOLUTION_S)
    assert book.orders == {H100: placed}
    # The pods are deleted while their nodes come: neither node autoscaler cancels an order.
    book = track(book, [], [h100("gpu-0")], CATALOG, SETTINGS, NOW + 20)
    assert book.orders == {H100: placed}
    # A node joins: one order is served (the oldest is forgotten, so the rest are promised no earlier).
    book = track(book, [], [h100("gpu-0"), h100("gpu-1")], CATALOG, SETTINGS, NOW + 40)
    assert book.orders == {H100: placed[1:]}
    # Past the prior's longest delay an order is not counted on: its node would have come.
    longest = SETTINGS.eta.prior_delay_s[1]
    book = track(book, [], [h100("gpu-0"), h100("gpu-1")], CATALOG, SETTINGS, placed[1] + longest)
    assert book.orders == {}


def test_new_pending_pods_beyond_the_orders_remembered_are_new_orders() -> None:
    book = track(OrderBook(), [waiting("a", 8, NOW - 400)], [], CATALOG, SETTINGS, NOW)
    pods = [waiting("b", 4, NOW + 5), waiting("c", 8, NOW + 10)]  # 12 GPUs: two nodes, one already coming
    book = track(book, pods, [], CATALOG, SETTINGS, NOW + 20)
    assert book.orders == {H100: (NOW - 400 + TIME_RESOLUTION_S, NOW + 10 + TIME_RESOLUTION_S)}


def test_a_202_is_promised_the_node_already_coming_by_its_age() -> None:
    """An order placed 480 s ago (delays 300-600 s) brings its node within 120 s: a new endpoint behind
    nothing is promised that node, not one ordered anew (issue 16: 315 s of slack on seed 4)."""
    load = REGISTRY.get(MODEL).variant("bf16").load_seconds
    step = SETTINGS.eta.step_s

    def promised(orders: dict[str, tuple[float, ...]]) -> float | None:
        decision = decide(Observation([], [], signals={}, orders=OrderBook(orders)), SETTINGS, REGISTRY, CATALOG, NOW)
        cap = capacity(decision, CATALOG)
        return admit(cap, endpoint("new", lo=1, hi=1), SETTINGS, REGISTRY, CATALOG, NOW).decision.eta

    # From the next step, 540 s waited: ready within the last 60 s of the range; 95% of it on the step grid.
    assert promised({H100: (NOW - 480,)}) == NOW + step + 60 + load
    assert promised({}) == NOW + step + 600 + load
    # 100 s waited: 200-500 s to go, 485 s at 95%, on the grid 540 s.
    assert promised({H100: (NOW - 40,)}) == NOW + step + 540 + load


def test_an_order_found_after_a_read_is_dated_no_earlier_than_that_read() -> None:
    """A pod found unschedulable long ago whose node went to another pod needs an order placed since:
    dated by the pod, it would be promised a node about to come."""
    book = track(OrderBook(), [waiting("a", 8, NOW - 400)], [], CATALOG, SETTINGS, NOW - 300)
    assert book.orders == {H100: (NOW - 400 + TIME_RESOLUTION_S,)}
    # Its node joined and went to a pod never seen pending; "b" was missed by the read: both need
    # orders placed since that read. The read that sees the node join takes it for "a"'s (its pod may
    # not be bound yet); the next, "a" still pending, counts its order from the read before.
    pods = [waiting("a", 8, NOW - 400), waiting("b", 8, NOW - 350)]
    book = track(book, pods, [h100("gpu-1")], CATALOG, SETTINGS, NOW)
    assert book.orders == {H100: (NOW - 300,)}
    book = track(book, pods, [h100("gpu-1")], CATALOG, SETTINGS, NOW + 20)
    assert book.orders == {H100: (NOW - 300, NOW)}


def test_the_controller_remembers_an_order_whose_pod_went_and_promises_its_node(kube: KubeCluster) -> None:
    """Another team's pod found no H100 node 400 s ago and was deleted: the node it made the node
    autoscaler order still comes, and an endpoint created after is promised it, not a node ordered anew."""
    pending = waiting("train", 8, NOW - 400)
    kube.put("v1/pods", pending)
    clock = Clock(NOW)
    ctl = controller(kube, FixedSignals(demand=1.0, clock=clock), clock=clock)
    assert ctl.reconcile().observation.orders.orders == {H100: (NOW - 400 + TIME_RESOLUTION_S,)}  # type: ignore[union-attr]
    kube.delete("v1/pods", "batch", "train")
    kube.put(ENDPOINTS, endpoint())
    clock.t = NOW + 20
    outcome = ctl.reconcile()
    assert outcome.observation.orders.orders == {H100: (NOW - 400 + TIME_RESOLUTION_S,)}  # type: ignore[union-attr]
    status = kube.get(ENDPOINTS, "team-a", "chat")["status"]  # type: ignore[index]
    load = REGISTRY.get(MODEL).variant(status["variant"]).load_seconds
    # From the next step the order has waited 479 s of 300-600: 95% of the rest is 115 s, 120 s on the grid.
    assert status["estimatedReadyTime"] == deadline(NOW + 20 + 60 + 120 + load)


@pytest.fixture
def alice(kube: KubeCluster) -> KubeCluster:
    """The stand-in, where Alice may create endpoints in team-a."""
    kube.emulator.tokens |= {ALICE["Authorization"].removeprefix("Bearer "): ("alice", ("team-a",))}
    kube.emulator.grants |= {("alice", verb, "team-a") for verb in ("create", "get", "list")}
    return kube


def test_the_api_promises_an_order_placed_for_pods_that_went_between_two_posts(alice: KubeCluster) -> None:
    """The API reads the orders every decide step while it runs: a pod that waited for an H100 node
    between two POSTs, and went, left its order coming, and the second POST is promised it."""
    step = 0.05  # the API reads the orders this often (real seconds) and promises on this grid
    settings = replace(SETTINGS, eta=replace(SETTINGS.eta, step_s=step))
    clock = Clock(NOW)
    load = REGISTRY.get(MODEL).variant("bf16").load_seconds
    with TestClient(create_app(Services(Cluster(alice.api_client()), settings, REGISTRY, CATALOG, clock=clock))) as api:
        first = post(api, body("first"))
        assert first.status_code == 202, first.text
        assert parse_time(first.json()["estimatedReadyTime"]) == pytest.approx(NOW + step + 585 + load, abs=1.0)
        clock.t = NOW + 100
        pending = waiting("train", 8, NOW + 90)
        alice.put("v1/pods", pending)
        time.sleep(20 * step)
        alice.delete("v1/pods", "batch", "train")
        clock.t = NOW + 400
        second = post(api, body("second"))
    assert second.status_code == 202, second.text
    # Its node is the order placed at NOW + 91: 95% of what is left of the range, not 585 s for a new one.
    waited = 400 + step - 91
    assert parse_time(second.json()["estimatedReadyTime"]) == pytest.approx(
        NOW + 400 + step + 0.95 * (600 - waited) + load, abs=1.0
    )
