"""Orders that left the book without their node weigh in the promises, in the cluster as in the simulator.

The warm-pool simulator weighs the delays it observed with the orders its pools cancelled, at the ages
they were cancelled (Kaplan-Meier: they took longer); the controller and the API left the cluster's
equivalent out, the orders the book drops unready past the prior's longest delay, and so learnt from
the orders that came, the fast ones first. Covers: such an order lapses at its age, and the API's
promise counts it as the simulator counts a cancelled order.
"""

from __future__ import annotations

from autoscaler.admission import admit, capacity
from autoscaler.decide import Observation, decide
from autoscaler.orders import TIME_RESOLUTION_S, OrderBook, track
from tests.test_decide import CATALOG, MODEL, NOW, REGISTRY, SETTINGS, endpoint
from tests.test_orders import H100, waiting


def test_an_order_dropped_unready_past_the_longest_delay_lapsed_at_its_age() -> None:
    book = track(OrderBook(), [waiting("a", 8, NOW - 100)], [], CATALOG, SETTINGS, NOW)
    book = track(book, [], [], CATALOG, SETTINGS, NOW + 300)  # its pod went: the order stays, 400 s old
    assert (book.orders, book.lapsed) == ({H100: (NOW - 100 + TIME_RESOLUTION_S,)}, {})
    book = track(book, [], [], CATALOG, SETTINGS, NOW + 600)  # past 600 s, the prior's longest, and no node
    assert (book.orders, book.lapsed) == ({}, {H100: (700.0 - TIME_RESOLUTION_S,)})


def test_an_order_whose_pod_pends_for_good_lapses_never() -> None:
    """A pod no node comes for (its node group at its maximum) is ordered again each longest delay: none of
    those orders lapsed, or one stuck pod would put every promise of its class at the horizon."""
    pod = waiting("stuck", 8, NOW - 100)
    book = OrderBook()
    for after in range(0, 3_600, 120):
        book = track(book, [pod], [], CATALOG, SETTINGS, NOW + after)
    assert book.lapsed == {} and len(book.orders[H100]) == 1


def test_the_apis_promise_weighs_lapsed_orders_as_the_simulator_weighs_cancelled_ones() -> None:
    load = REGISTRY.get(MODEL).variant("bf16").load_seconds
    step = SETTINGS.eta.step_s
    came = (150.0,) * SETTINGS.eta.min_observations

    def promised(lapsed: tuple[float, ...]) -> float | None:
        obs = Observation([], [], signals={}, orders=OrderBook(delays={H100: came}, lapsed={H100: lapsed}))
        decision = decide(obs, SETTINGS, REGISTRY, CATALOG, NOW)
        return admit(
            capacity(decision, CATALOG), endpoint("new", lo=1, hi=1), SETTINGS, REGISTRY, CATALOG, NOW
        ).decision.eta

    assert promised(()) == NOW + step + 180 + load  # every order came in 150 s
    # Two of 22 orders not ready at 700 s: at most 91% come by any time seen, short of the 95% promised, so
    # the promise is the horizon, the longest age known (700 s) and a step, on the grid: 780 s.
    assert promised((700.0, 700.0)) == NOW + step + 780 + load
