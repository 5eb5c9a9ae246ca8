"""A node that registers before it can take pods (NotReady: its kubelet, network or device plugin not up yet;
tainted `node.kubernetes.io/not-ready` meanwhile) has not served its order yet.

Real nodes register NotReady and are Ready a minute or more later. The order book ended an order when a node's
name first appeared: the pods it was ordered for still waited, so a new order was counted from that read (the
202s promised by it were promised a fresh order's delay), and the delay learned was the time to register,
short by the rest: once enough were learned, promises came that much too early.
"""

from __future__ import annotations

from autoscaler.kubetime import rfc3339
from autoscaler.orders import TIME_RESOLUTION_S, OrderBook, track
from tests.test_decide import CATALOG, NOW, SETTINGS, h100
from tests.test_orders import H100, waiting


def ready_at(name: str, at: float) -> dict[str, object]:
    node = h100(name)
    node["status"]["conditions"][0]["lastTransitionTime"] = rfc3339(at)
    return node


def test_a_node_that_registers_not_ready_serves_its_order_once_it_is_ready() -> None:
    pods = [waiting("a", 8, NOW - 400)]
    placed = NOW - 400 + TIME_RESOLUTION_S
    book = track(OrderBook(), pods, [h100("gpu-0")], CATALOG, SETTINGS, NOW)
    book = track(book, pods, [h100("gpu-0"), h100("gpu-1", ready=False)], CATALOG, SETTINGS, NOW + 20)
    assert book.orders == {H100: (placed,)}  # still coming: the pod waits for it
    assert book.delays == {}
    book = track(book, [], [h100("gpu-0"), ready_at("gpu-1", NOW + 80)], CATALOG, SETTINGS, NOW + 100)
    assert book.orders == {}
    assert book.delays == {H100: (NOW + 80 + TIME_RESOLUTION_S - placed,)}  # Ready to the second, truncated


def test_a_node_back_from_not_ready_serves_no_order() -> None:
    book = track(OrderBook(), [], [h100("gpu-0")], CATALOG, SETTINGS, NOW)
    pods = [waiting("a", 8, NOW + 10)]
    book = track(book, pods, [h100("gpu-0", ready=False)], CATALOG, SETTINGS, NOW + 20)
    book = track(book, pods, [ready_at("gpu-0", NOW + 30)], CATALOG, SETTINGS, NOW + 40)
    assert book.orders == {H100: (NOW + 10 + TIME_RESOLUTION_S,)}
    assert book.delays == {}


def test_pods_a_node_just_ready_takes_need_no_order_while_they_are_bound() -> None:
    pods = [waiting("a", 8, NOW - 400)]
    book = track(OrderBook(), pods, [h100("gpu-0")], CATALOG, SETTINGS, NOW)
    book = track(book, pods, [h100("gpu-0"), h100("gpu-1", ready=False)], CATALOG, SETTINGS, NOW + 20)
    # Read between gpu-1 turning Ready and its pod being bound: the pod is still pending.
    book = track(book, pods, [h100("gpu-0"), ready_at("gpu-1", NOW + 39)], CATALOG, SETTINGS, NOW + 40)
    assert book.orders == {}
    assert track(book, [], [h100("gpu-0"), ready_at("gpu-1", NOW + 39)], CATALOG, SETTINGS, NOW + 60).orders == {}
    # A pod still pending once the node is taken needs an order, placed since the last read.
    later = [waiting("b", 8, NOW - 300)]
    book = track(book, later, [h100("gpu-0"), ready_at("gpu-1", NOW + 39)], CATALOG, SETTINGS, NOW + 60)
    assert book.orders == {H100: (NOW + 40,)}
