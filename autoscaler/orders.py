"""Node orders in flight per GPU class, and when each was placed: what a 202's promise counts on.

Part of the autoscaler's pure core. A replica that waits for a node is served by the next node of
its class to join, and a node ordered minutes ago joins sooner than one ordered now (`queue_etas`
conditions each order's delay on its age). Neither Cluster Autoscaler nor Karpenter says per order
when it was placed, but both order for pods kube-scheduler found no node for, and neither cancels an
order once placed: Cluster Autoscaler raises a node group's target size and lowers it only by
scaling an empty node down after it joined; a Karpenter NodeClaim launched for pods that went is
consolidated once its node registers. So the orders are read from the pods and remembered:

- `pending_orders`: the nodes the unschedulable pods of each class need, packed by GPUs in the order
  they were found unschedulable (`PodScheduled=False`'s `lastTransitionTime`, else the pod's
  creation), each placed when the pod that needed it was found (kube-scheduler's condition is
  what the node autoscaler reacts to);
- `track`: the orders remembered from earlier reads, less one (the oldest) per node of the class
  that joined (became Ready: a node registers NotReady and takes no pod before) and those older than
  the prior's longest delay, plus the newest pending ones beyond them and beyond the nodes that just
  joined (a node autoscaler orders what the pending pods need beyond what it has coming), placed no
  earlier than the last read (a pod still pending when its node went to another is not dated by
  its own order). An order whose pods were deleted, or bound on a node nobody ordered, stays until
  a node of its class joins. Each order a joining node ends is a provisioning delay observed (the
  oldest orders paired with the nodes that joined first: the mean is exact, the spread about it),
  the latest `OBSERVED_DELAYS` per class, which promises learn from (`eta.EtaSettings.min_observations`)
  instead of the configured prior alone. Each order dropped past the prior's longest delay, no pod
  pending for it still, lapsed unready at its age: promises weigh those with the delays observed
  (`OrderBook.lapsed`), as the warm-pool simulator weighs the orders its pools cancel. The nodes
  that registered and were not Ready yet, with how long those that joined took from registering to
  Ready (`OrderBook.registered`, `OrderBook.leads`), come first (`eta.registered_ready_in`).

Every error this makes is late, never early, but one: an order the node autoscaler did not place
(its node group at its maximum) is counted until the prior's longest delay. The controller and the
endpoint API each keep an `OrderBook` in memory and read it every loop or capacity build; after a
restart it starts from the pending pods alone, which only makes promises later.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autoscaler.events import find_condition
from autoscaler.kubetime import parse_time
from autoscaler.pods import unschedulable, waiting_for
from scheduler.catalog import Catalog

if TYPE_CHECKING:  # the decide step's data carries an OrderBook: importing the package here would be a cycle
    from autoscaler.decide.settings import Settings

TIME_RESOLUTION_S = 1.0
"""metav1.Time is written to the second and truncated: the event came up to this much later."""
OBSERVED_DELAYS = 200
"""Delays remembered per class: the latest, so that promises follow a provider that slows down."""


@dataclass(frozen=True)
class OrderBook:
    """Per GPU class: when each node order still in flight was placed, and the nodes seen."""

    orders: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    """GPU class -> Unix times the orders were placed, oldest first."""
    nodes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """GPU class -> the names of its nodes seen Ready, still there at the last read (a new name is a node
    that joined)."""
    read_at: float | None = None
    """When the last read was (None: never): an order not known then was placed after it."""
    delays: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    """GPU class -> provisioning delays observed (order placed -> its node joined), the latest last."""
    lapsed: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    """GPU class -> the ages at which orders left the book without their node, the latest last. Their
    delays were longer: left out of what promises learn (`eta._survival`), the sample is the orders that
    came, the fast ones first, and promises come out early; `queue_etas` counts them as the simulator
    counts the orders it cancels, one rule for both."""
    registered: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    """GPU class -> when each of its nodes that registered and was not seen Ready yet registered (its
    creation): the next to join, whether the book still holds their orders or not."""
    leads: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    """GPU class -> how long its nodes that joined took from registering to Ready, the latest last."""


def pending_orders(
    pods: Iterable[Mapping[str, Any]], catalog: Catalog, gpus_per_node: Mapping[str, int], now: float
) -> dict[str, tuple[float, ...]]:
    """Per class of `gpus_per_node`: when each node its unschedulable pods need was ordered, oldest first."""
    found: dict[str, list[tuple[float, int]]] = {}
    for pod in pods:
        wants = waiting_for(pod, catalog) if unschedulable(pod) else None
        if wants is not None and wants[0] in gpus_per_node:
            found.setdefault(wants[0], []).append((min(now, _unschedulable_since(pod, now)), wants[1]))
    orders: dict[str, tuple[float, ...]] = {}
    for gpu_class, waiting in found.items():
        times: list[float] = []
        asked = 0
        for since, gpus in sorted(waiting):
            asked += gpus
            times += [since] * (math.ceil(asked / gpus_per_node[gpu_class]) - len(times))
        orders[gpu_class] = tuple(times)
    return orders


def track(
    book: OrderBook,
    pods: Iterable[Mapping[str, Any]],
    nodes: Iterable[Mapping[str, Any]],
    catalog: Catalog,
    settings: Settings,
    now: float,
) -> OrderBook:
    """The orders in flight now for the configured classes, from those `book` remembers and what the
    cluster shows (module docstring)."""
    gpus_per_node = {name: cls.gpus_per_node for name, cls in settings.classes.items()}
    longest_delay_s = settings.eta.prior_delay_s[1]
    # A node joins when it is Ready: one registers NotReady (tainted not-ready) and takes no pod until then.
    seen: dict[str, dict[str, float]] = {c: {} for c in gpus_per_node}
    present: dict[str, set[str]] = {c: set() for c in gpus_per_node}
    created: dict[str, float] = {}
    for node in nodes:
        meta = node.get("metadata") or {}
        gpu = catalog.for_node_labels(meta.get("labels") or {})
        if gpu is not None and gpu.name in seen:
            present[gpu.name].add(str(meta.get("name")))
            if meta.get("creationTimestamp"):
                created[str(meta.get("name"))] = _parsed(str(meta["creationTimestamp"]), now)
            ready = find_condition((node.get("status") or {}).get("conditions"), "Ready")
            if ready is not None and ready.get("status") == "True":
                seen[gpu.name][str(meta.get("name"))] = _joined_at(meta, ready, now)
    pending = pending_orders(pods, catalog, gpus_per_node, now)
    orders: dict[str, tuple[float, ...]] = {}
    delays, lapsed, leads = dict(book.delays), dict(book.lapsed), dict(book.leads)
    for gpu_class, names in seen.items():
        before = book.nodes.get(gpu_class)
        arrived = {name: at for name, at in names.items() if before is not None and name not in before}
        joined = sorted(arrived.values())
        # Both times are to the second: the lead counted is the longest they allow.
        if came := [at - created[name] + TIME_RESOLUTION_S for name, at in arrived.items() if name in created]:
            leads[gpu_class] = (*leads.get(gpu_class, ()), *came)[-OBSERVED_DELAYS:]
        ended = book.orders.get(gpu_class, ())[: len(joined)]
        # A node Ready before the order was placed did not come for it: no delay to learn.
        observed = [at - t for t, at in zip(ended, joined, strict=False) if at > t]
        if observed:
            delays[gpu_class] = (*delays.get(gpu_class, ()), *observed)[-OBSERVED_DELAYS:]
        left = book.orders.get(gpu_class, ())[len(joined) :]
        kept = [t for t in left if now - t < longest_delay_s]
        # The nodes that joined take the pods that waited longest: a read between a node turning Ready and its
        # pods being bound saw them pending still, and counted an order nobody placed (churn seed 137: three
        # 202s promised 346-380 s on it, served by an order placed after them, 64-74 s late).
        new = pending.get(gpu_class, ())[len(joined) :]
        # An aged order whose pods still pend is placed again below, not lapsed: counted, one pod stuck for good
        # (its node group at its maximum) lapsed again every longest delay, and two such ages among 20 delays
        # put every promise of the class at the horizon.
        aged = [now - t for t in left if now - t >= longest_delay_s]
        if gone := aged[max(0, len(new) - len(kept)) :]:
            lapsed[gpu_class] = (*lapsed.get(gpu_class, ()), *gone)[-OBSERVED_DELAYS:]
        kept += [max(t, book.read_at or t) for t in new[len(kept) :]]
        if kept:
            orders[gpu_class] = tuple(sorted(kept))
    # A node seen Ready stays known while it is there: back from NotReady, it came for no order.
    known = {c: frozenset(names) | (book.nodes.get(c, frozenset()) & present[c]) for c, names in seen.items()}
    registering = {c: tuple(sorted(created[n] for n in present[c] - known[c] if n in created)) for c in seen}
    registered = {c: times for c, times in registering.items() if times}
    return OrderBook(orders, known, now, delays, lapsed, registered, leads)


def _joined_at(meta: Mapping[str, Any], ready: Mapping[str, Any], now: float) -> float:
    """When a node became Ready (its `ready` condition's transition, else its creation; no later than `now`)."""
    when = ready.get("lastTransitionTime") or meta.get("creationTimestamp")
    return min(now, _parsed(str(when), now)) if when else now


def _unschedulable_since(pod: Mapping[str, Any], now: float) -> float:
    """When kube-scheduler first found no node for `pod` (to the second, so up to a second later)."""
    status, meta = pod.get("status") or {}, pod.get("metadata") or {}
    for c in status.get("conditions") or ():
        if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("lastTransitionTime"):
            return _parsed(str(c["lastTransitionTime"]), now)
    created = meta.get("creationTimestamp")
    return _parsed(str(created), now) if created else now


def _parsed(text: str, now: float) -> float:
    try:
        return parse_time(text) + TIME_RESOLUTION_S
    except ValueError:
        return now  # unreadable: as if found now, which only makes the promise later
