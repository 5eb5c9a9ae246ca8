"""Ready-time promises for replicas that must wait for GPU capacity.

Part of the autoscaler's pure core. When a replica cannot start at once, the endpoint API answers
202 Accepted with the time it will serve; the controller (and `egs simulate`) calls `queue_etas` for
the waiting replicas of a GPU class. A replica is served by, in this order: a free GPU now, an order
already in flight (whichever is ready first), or a node ordered now; it serves `load_s` after it has
its GPU. A node that registered and is not Ready yet comes before any order: it is the end of one
(`registered_ready_in`).

The promise is an upper quantile, not an average: a delay model built from the provisioning delays
observed so far (an empirical distribution, Kaplan-Meier's where orders went or are still in flight
unready, conditioned on how long an order has already waited) falls back to a prior range until
`min_observations` delays are known. A promise is never earlier than physically possible: not before
now + load, and for an order not before its placement plus the shortest delay known, plus load.
Capacity is handed out at decide steps, so a promise rounds up to the next step.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EtaSettings:
    """How ready-time promises are made."""

    prior_delay_s: tuple[float, float] = (300.0, 600.0)
    """Provisioning delay range assumed (uniform) before enough delays are observed, seconds."""
    quantile: float = 0.95
    """Promise the delay's upper quantile: about this fraction of promises are kept."""
    min_observations: int = 20
    """Observed delays (longer than the elapsed time) needed before they replace the prior."""
    step_s: float = 60.0
    """Decide-step length: capacity is handed out once a step, so promises round up to it."""

    def __post_init__(self) -> None:
        low, high = self.prior_delay_s
        if not 0 <= low <= high:
            raise ValueError(f"EtaSettings.prior_delay_s must be [min, max] with 0 <= min <= max, got {low}, {high}")
        if not 0 < self.quantile < 1:
            raise ValueError(f"EtaSettings.quantile must be in (0, 1), got {self.quantile}")
        if self.min_observations < 1 or self.step_s <= 0:
            raise ValueError("EtaSettings: min_observations must be >= 1 and step_s positive")


def remaining_delay(elapsed_s: float, observed_s: Sequence[float], settings: EtaSettings) -> tuple[float, float]:
    """(earliest, promised) seconds until an order that has waited `elapsed_s` is ready.

    `promised` is the `quantile` of the delay given that it exceeds `elapsed_s`: from the observed
    delays when enough of them are that long, else from the prior range. An order already past every
    delay known is promised one more step.
    """
    low, high = settings.prior_delay_s
    observed = np.asarray(observed_s, dtype=np.float64)
    shortest = min(low, float(observed.min())) if observed.size else low
    earliest = max(0.0, shortest - elapsed_s)
    left = _quantile_left(observed, elapsed_s, settings, settings.min_observations)
    if left is not None:
        promised = left
    elif elapsed_s < high:
        start = max(low, elapsed_s)
        promised = start + settings.quantile * (high - start) - elapsed_s
    else:
        promised = settings.step_s
    return earliest, max(earliest, promised)


def _quantile_left(observed: np.ndarray, elapsed_s: float, settings: EtaSettings, at_least: int = 1) -> float | None:
    """The `quantile` of the `observed` durations longer than `elapsed_s`, less `elapsed_s` (what is left of
    one that lasted that long already); None when fewer than `at_least` are that long."""
    longer = observed[observed > elapsed_s]
    if longer.size < at_least:
        return None
    return float(np.quantile(longer, settings.quantile, method="higher")) - elapsed_s


@dataclass(frozen=True)
class ClassCapacity:
    """The GPU capacity of one class that a waiting replica can get, as plain numbers."""

    gpus_per_node: int
    free_gpus: Sequence[int] = ()
    """Free GPUs per ready node, now."""
    orders_placed_at: Sequence[float] = ()
    """When each order still provisioning was placed (any order: whichever is ready first serves first)."""
    registered_at: Sequence[float] = ()
    """When each node that registered and is not Ready yet registered: the oldest orders' nodes (or nodes
    of orders nobody counted), Ready first."""
    leads_s: Sequence[float] = ()
    """How long the class's nodes took from registering to Ready, observed."""

    def nodes_needed(self, waiting_gpus: Sequence[float]) -> list[int]:
        """`nodes_needed` of the waiting replicas on this capacity: 0 a free GPU now, j >= 1 the j-th node."""
        return nodes_needed(waiting_gpus, sum(max(0, g) for g in self.free_gpus), self.gpus_per_node)


def queue_etas(
    now: float,
    waiting_gpus: Sequence[float],
    capacity: ClassCapacity,
    load_s: Sequence[float] | float,
    observed_delays_s: Sequence[float],
    settings: EtaSettings,
    cancelled_s: Sequence[float] = (),
) -> list[float]:
    """The promised serving time for each waiting replica (GPUs each, in queue order), in `now`'s clock.

    Replicas take free GPUs first; the rest are served by the orders in flight in the order they
    become ready (whichever finishes first serves the head of the queue), then by nodes ordered now.
    The replica that needs the j-th node is promised the `quantile` of the j-th earliest ready time
    of all those orders (each order's remaining delay conditioned on how long it has waited), on the
    decide-step grid, plus its own model load time (`load_s`: one value or one per replica).
    A replica of less than one GPU (`waiting_gpus` below 1: the share of one GPU's memory it takes
    where GPUs are shared by memory) is binpacked with the others sharing a GPU (`nodes_needed`).
    The delays observed are weighed with the orders that have not brought their node: those in
    flight and those cancelled at the ages `cancelled_s` (`_survival`; in a cluster, where nothing
    cancels an order, those that lapsed: `autoscaler.orders`).
    """
    loads = [float(load_s)] * len(waiting_gpus) if isinstance(load_s, int | float) else [float(x) for x in load_s]
    if len(loads) != len(waiting_gpus):
        raise ValueError(f"queue_etas: {len(loads)} load times for {len(waiting_gpus)} waiting replicas")
    needs = capacity.nodes_needed(waiting_gpus)
    coming = registered_ready_in([now - t for t in capacity.registered_at], capacity.leads_s, settings)
    ages = sorted((now - placed for placed in capacity.orders_placed_at), reverse=True)
    in_flight = ages[len(coming) :]  # the oldest orders are those whose nodes registered
    elapsed = in_flight + [0.0] * max(0, max(needs, default=0) - len(coming) - len(in_flight))  # ordered now
    ordered = _order_statistic_quantiles(elapsed, observed_delays_s, [*cancelled_s, *ages], settings)
    ready_in = coming + [max([t, *coming[-1:]]) for t in ordered]
    return [now + (ready_in[j - 1] if j else 0.0) + load for j, load in zip(needs, loads, strict=True)]


def registered_ready_in(ages_s: Sequence[float], leads_s: Sequence[float], settings: EtaSettings) -> list[float]:
    """Seconds until each node registered `ages_s` ago is Ready, soonest first: the `quantile` of the leads
    observed (registered -> Ready) longer than its age, less its age, on the step grid. Before any lead is
    observed no node counts, and neither does one registered longer than every lead known (its kubelet is
    not coming up). Left out, churn seed 341's 202s that such a node served within 85 s were promised a
    node ordered anew (650-670 s): the order of it had left the book for a node nobody ordered."""
    leads = np.asarray(leads_s, dtype=np.float64)
    out = []
    for age in ages_s:
        left = _quantile_left(leads, age, settings)
        if left is not None:
            out.append(settings.step_s * max(1, math.ceil(left / settings.step_s)))
    return sorted(out)


def nodes_needed(waiting_gpus: Sequence[float], free: int, gpus_per_node: int) -> list[int]:
    """Which node each waiting replica (in queue order) needs: 0 a free GPU now, j >= 1 the j-th to join.

    Whole GPUs are taken in queue order. A share of a GPU goes, as KAI Scheduler and HAMi binpack, to
    a GPU already shared that holds it (of the first node to join, the least room), else to a GPU of
    its own. Counted as a whole GPU, a KAI replica in the churn benchmark was promised a node ordered
    anew (640 s) that the node already coming for the replicas ahead of it served (Ready at 97 s)."""
    needs: list[int] = []
    opened = 0  # GPUs taken of the nodes to come
    shared: list[tuple[float, int]] = []  # (room left, node) of each GPU the shares are on
    for gpus in waiting_gpus:
        if 0 < gpus < 1:
            fits = [(node, room, i) for i, (room, node) in enumerate(shared) if room >= gpus - 1e-9]
            if fits:
                node, room, i = min(fits)
                shared[i] = (room - gpus, node)
                needs.append(node)
                continue
        whole = math.ceil(gpus)
        if free >= whole:
            free -= whole
            node = 0
        else:
            opened += whole
            node = math.ceil(opened / gpus_per_node)
        if 0 < gpus < 1:
            shared.append((1.0 - gpus, node))
        needs.append(node)
    return needs


def _order_statistic_quantiles(
    elapsed: Sequence[float], observed_s: Sequence[float], unready_s: Sequence[float], settings: EtaSettings
) -> list[float]:
    """For j = 1..n: the smallest step-grid t with P(at least j of the orders are ready within t) >= quantile."""
    if not elapsed:
        return []
    high = settings.prior_delay_s[1]
    observed = np.sort(np.asarray(observed_s, dtype=np.float64))
    unready = np.sort(np.asarray(unready_s, dtype=np.float64))
    longest = max(float(observed[-1]) if observed.size else 0.0, float(unready[-1]) if unready.size else 0.0)
    horizon = max(high, longest) + settings.step_s
    grid = settings.step_s * np.arange(1, math.ceil(horizon / settings.step_s) + 1)
    known = _survival(observed, unready)
    at_least = _at_least(np.array([_remaining_cdf(e, grid, observed, known, settings) for e in elapsed]))
    out = []
    for j in range(1, len(elapsed) + 1):
        hit = np.flatnonzero(at_least[j] >= settings.quantile - 1e-12)
        out.append(float(grid[hit[0]]) if hit.size else float(grid[-1]))
    return out


def _at_least(cdf: np.ndarray) -> np.ndarray:
    """Poisson-binomial, from P(each order is ready within each grid time) (orders x grid): row j is P(at
    least j of them are ready within each grid time)."""
    count = np.zeros((len(cdf) + 1, cdf.shape[1]))
    count[0] = 1.0
    for p in cdf:
        count[1:] = count[1:] * (1 - p) + count[:-1] * p
        count[0] *= 1 - p
    return np.asarray(np.cumsum(count[::-1], axis=0)[::-1], dtype=np.float64)


def ready_law(
    now: float,
    waiting_gpus: Sequence[float],
    capacity: ClassCapacity,
    load_s: Sequence[float],
    settings: EtaSettings,
    resolution_s: float,
) -> tuple[float, np.ndarray]:
    """When the last of the waiting replicas (`queue_etas`' queue) serves, as a law: (t0, P(served by t0 + k *
    `resolution_s`) for k = 0, 1, ...), had every order the delay law of `settings.prior_delay_s` (uniform,
    conditioned on its age) and each registered node the leads observed (conditioned likewise), and were
    nothing else to happen. Not a promise: what a rule that knew the true delay law could promise from the
    same queue, which the churn benchmark scores its promises against (`least_mean_slack`)."""
    needs = capacity.nodes_needed(waiting_gpus)
    last = max(range(len(needs)), key=lambda i: (needs[i], load_s[i]))
    return ready_laws(now, waiting_gpus, capacity, load_s, settings, resolution_s)[last]


def ready_laws(
    now: float,
    waiting_gpus: Sequence[float],
    capacity: ClassCapacity,
    load_s: Sequence[float],
    settings: EtaSettings,
    resolution_s: float,
) -> list[tuple[float, np.ndarray]]:
    """`ready_law` for each of the waiting replicas, in queue order (the j-th node's from one Poisson-binomial
    of the same orders): what the warm-pool simulator bounds each first promise's slack from."""
    needs = capacity.nodes_needed(waiting_gpus)
    most = max(needs, default=0)
    if most == 0:
        return [(now + load, np.ones(1)) for load in load_s]
    leads = np.asarray(capacity.leads_s, dtype=np.float64)
    registered = [now - t for t in capacity.registered_at if np.count_nonzero(leads > now - t)]
    ages = sorted((now - placed for placed in capacity.orders_placed_at), reverse=True)[len(registered) :]
    elapsed = ages + [0.0] * max(0, most - len(registered) - len(ages))
    horizon = settings.prior_delay_s[1] + float(leads.max(initial=0.0)) + settings.step_s
    grid = resolution_s * np.arange(math.ceil(horizon / resolution_s) + 1)
    nothing = np.zeros(0)  # no delay observed: the prior's law itself
    cdf = [_lead_cdf(age, grid, leads) for age in registered]
    cdf += [_remaining_cdf(e, grid, nothing, (nothing, nothing), settings) for e in elapsed]
    at_least = _at_least(np.array(cdf))
    return [(now + load, at_least[j] if j else np.ones(1)) for j, load in zip(needs, load_s, strict=True)]


LAW_POINTS = 100
"""A law as equally likely points: each percent's middle quantile (`law_points`)."""


def law_points(start: float, served: np.ndarray, resolution_s: float) -> tuple[float, ...]:
    """`ready_law`'s (t0, P(served by t0 + k x `resolution_s`)) as `LAW_POINTS` equally likely times, ascending:
    the form `least_mean_slack` reads."""
    levels = (np.arange(LAW_POINTS) + 0.5) / LAW_POINTS
    return tuple(start + resolution_s * float(k) for k in np.searchsorted(served, levels - 1e-12))


def promise_slacks(law: Sequence[float]) -> np.ndarray:
    """The expected slack of promising each point of `law` (equally likely ready times, ascending), the m-th at
    m - 1: the m points it keeps, each its distance to it, over all the points."""
    points = np.asarray(law, dtype=np.float64)
    return np.asarray((np.arange(1, len(points) + 1) * points - np.cumsum(points)) / len(points), dtype=np.float64)


def least_mean_slack(laws: Sequence[Sequence[float]], kept: float) -> float:
    """The least mean slack over the promises kept of any rule that promises each law (equally likely ready
    times, ascending) a time of its own and keeps the share `kept` of them in expectation. Promising a law's m-th
    point keeps m of its points, each with its distance to it; the rule spends its misses where each saves the
    most slack: along each law's lower convex hull of (points kept, slack), the segments that cost the least
    slack a point kept first, until `kept` of all points are kept (the last one in part: a promise drawn between
    two points). Equal laws (a queue's replicas that wait on the same node) are worked out once."""
    segments: list[tuple[float, float, float]] = []
    for law, count in Counter(tuple(law) for law in laws).items():
        n, slack = len(law), promise_slacks(law)
        hull = [(0.0, 0.0)]
        for m in range(1, n + 1):
            point = (m / n, float(slack[m - 1]))
            while len(hull) >= 2 and _turns_down(hull[-2], hull[-1], point):
                hull.pop()
            hull.append(point)
        segments += [
            ((s1 - s0) / (k1 - k0), count * (k1 - k0), count * (s1 - s0))
            for (k0, s0), (k1, s1) in itertools.pairwise(hull)
        ]
    need, slack_kept = kept * len(laws), 0.0
    for _, points_kept, cost in sorted(segments):
        take = min(1.0, need / points_kept)
        slack_kept, need = slack_kept + take * cost, need - take * points_kept
        if need <= 1e-12:
            break
    return slack_kept / (kept * len(laws))


def _turns_down(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> bool:
    """Whether `b` lies on or above the line from `a` to `c` (it is not on the lower convex hull)."""
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]) <= 0


def _lead_cdf(age: float, grid: np.ndarray, leads: np.ndarray) -> np.ndarray:
    """P(a node registered `age` ago is Ready within each `grid` time), from the leads observed longer than its age."""
    longer = np.sort(leads[leads > age])
    return np.asarray(np.searchsorted(longer, age + grid, side="right") / longer.size, dtype=np.float64)


def _remaining_cdf(
    elapsed: float,
    grid: np.ndarray,
    observed: np.ndarray,
    survival: tuple[np.ndarray, np.ndarray],
    settings: EtaSettings,
) -> np.ndarray:
    """P(an order that has waited `elapsed` is ready within each `grid` time from now)."""
    low, high = settings.prior_delay_s
    if np.count_nonzero(observed > elapsed) >= settings.min_observations:
        times, waiting = survival

        def left(t: np.ndarray) -> np.ndarray:
            i = np.searchsorted(times, t, side="right")
            return np.asarray(np.where(i > 0, waiting[np.maximum(i - 1, 0)], 1.0), dtype=np.float64)

        return np.asarray(1.0 - left(elapsed + grid) / left(np.array([elapsed]))[0], dtype=np.float64)
    if elapsed >= high:
        return np.ones(len(grid))
    start = max(low, elapsed)
    span = high - start
    if span <= 0:
        return np.asarray((elapsed + grid >= start).astype(float), dtype=np.float64)
    return np.asarray(np.clip((elapsed + grid - start) / span, 0.0, 1.0), dtype=np.float64)


def _survival(observed: np.ndarray, unready: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier, from sorted delays: each distinct delay observed, and the share of orders not ready
    just after it, where an order not ready at an age (in flight, or cancelled then) counts as longer.
    Left out, the sample is the orders that came, the fast ones first: in the warm-pool simulator, whose
    pools cancel most of their orders, those observed were 15 s shorter on average than those drawn
    (synthetic-1min-0 with a static pool of 3: 438 against 453 s)."""
    times = np.unique(observed)
    at_risk = observed.size - np.searchsorted(observed, times) + unready.size - np.searchsorted(unready, times)
    ready = np.searchsorted(observed, times, side="right") - np.searchsorted(observed, times)
    return times, np.cumprod(1.0 - ready / at_risk)
