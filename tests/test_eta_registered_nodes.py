"""A node that registered and is not Ready yet is the end of an order: a 202 it will serve is promised it,
by how long the class's nodes took from registering to Ready, not a node ordered anew.

Churn seed 341 (80 endpoints): an L40S node nobody ordered joined and ended the oldest L40S order in the
book, so when `l40s-new-5` had registered (NotReady) the book held no L40S order; three 202s POSTed 2.5 s
real later were promised a fresh order (650-670 s) and were Ready at 73-85 s on that node.

Covers: the promise from the registered node (the quantile of the leads longer than its age, on the step
grid), its own order not counted twice, no node counted before a lead is known or once it is older than
every lead known; the order book keeping the nodes registered and learning the leads of those that join.
"""

from __future__ import annotations

from typing import Any

from autoscaler.admission import admit, capacity
from autoscaler.decide import Observation, decide
from autoscaler.eta import ClassCapacity, EtaSettings, queue_etas
from autoscaler.kubetime import rfc3339
from autoscaler.orders import TIME_RESOLUTION_S, OrderBook, track
from tests.test_decide import CATALOG, MODEL, NOW, REGISTRY, SETTINGS, endpoint, h100

ETA = EtaSettings(prior_delay_s=(300.0, 600.0), step_s=20.0)
LEADS = (40.0, 60.0, 90.0)
LOAD = 30.0
FRESH = 600.0  # a node ordered now: 95% of 300-600 s is 585 s, on the 20 s grid


def etas(capacity: ClassCapacity, replicas: int = 1) -> list[float]:
    return [t - NOW - LOAD for t in queue_etas(NOW, [1] * replicas, capacity, LOAD, (), ETA)]


def test_a_registered_node_serves_by_the_longest_lead_left_not_as_a_node_ordered_anew() -> None:
    assert etas(ClassCapacity(4)) == [FRESH]
    # Registered 50 s ago; the leads known are up to 90 s: 40 s to go (two steps of the grid).
    assert etas(ClassCapacity(4, registered_at=[NOW - 50], leads_s=LEADS)) == [40.0]
    # Registered 75 s ago: only the 90 s lead is longer, 15 s to go, a step at least.
    assert etas(ClassCapacity(4, registered_at=[NOW - 75], leads_s=LEADS)) == [20.0]


def test_a_registered_node_is_its_oldest_orders_node_not_one_more() -> None:
    booked = ClassCapacity(4, orders_placed_at=[NOW - 500], registered_at=[NOW - 50], leads_s=LEADS)
    # Four replicas on the registered node; the fifth needs a node ordered anew, not the order it ended.
    assert etas(booked, 5) == [40.0] * 4 + [FRESH]
    # The order alone, by its age (500 s of 300-600: 95 s to go, on the grid 100 s).
    assert etas(ClassCapacity(4, orders_placed_at=[NOW - 500]), 5) == [100.0] * 4 + [FRESH]


def test_no_node_counts_before_a_lead_is_known_or_once_older_than_every_lead() -> None:
    assert etas(ClassCapacity(4, registered_at=[NOW - 50])) == [FRESH]
    assert etas(ClassCapacity(4, registered_at=[NOW - 120], leads_s=LEADS)) == [FRESH]  # not coming up


def registering(name: str, at: float, ready_at: float | None = None) -> dict[str, Any]:
    """An H100 node created (registered) at `at`, NotReady, or Ready since `ready_at`."""
    node = h100(name, ready=ready_at is not None)
    node["metadata"]["creationTimestamp"] = rfc3339(at)
    if ready_at is not None:
        node["status"]["conditions"][0]["lastTransitionTime"] = rfc3339(ready_at)
    return node


def test_the_book_keeps_the_nodes_registered_and_learns_how_long_they_took_to_be_ready() -> None:
    book = track(OrderBook(), [], [h100("gpu-0")], CATALOG, SETTINGS, NOW)
    book = track(book, [], [h100("gpu-0"), registering("gpu-1", NOW + 10)], CATALOG, SETTINGS, NOW + 20)
    assert book.registered == {"H100-80GB": (NOW + 10 + TIME_RESOLUTION_S,)} and book.leads == {}
    nodes = [h100("gpu-0"), registering("gpu-1", NOW + 10, ready_at=NOW + 70)]
    book = track(book, [], nodes, CATALOG, SETTINGS, NOW + 80)
    assert book.registered == {} and book.leads == {"H100-80GB": (60.0 + TIME_RESOLUTION_S,)}
    # A Ready node that goes NotReady came for no order: it is not registering.
    nodes = [h100("gpu-0", ready=False), registering("gpu-1", NOW + 10, ready_at=NOW + 70)]
    assert track(book, [], nodes, CATALOG, SETTINGS, NOW + 100).registered == {}


def test_a_202_is_promised_the_registered_node_the_book_holds_no_order_for() -> None:
    """Seed 341's case, as data: no order in the book, a node registered 10 s ago, leads up to 90 s."""
    step, load = SETTINGS.eta.step_s, REGISTRY.get(MODEL).variant("bf16").load_seconds
    book = OrderBook(registered={"H100-80GB": (NOW - 10,)}, leads={"H100-80GB": LEADS})
    decision = decide(Observation([], [], signals={}, orders=book), SETTINGS, REGISTRY, CATALOG, NOW)
    answer = admit(capacity(decision, CATALOG), endpoint("new", lo=1, hi=1), SETTINGS, REGISTRY, CATALOG, NOW)
    # From the next step (60 s): 90 s less 10 + 60 of age, on the step grid; and its load.
    assert answer.decision.eta == NOW + step + step + load
    assert answer.decision.eta < NOW + step + 600 + load  # a node ordered anew
