"""Churn's figures: what the last line's JSON reports, computed from plain records (benchmarks/churn.py).

The promises scored (`Promised`, `promise_figures`, the bound `least_mean_slack`, from `autoscaler.eta`),
what `egs api`'s debug line said (`answered`), the settled cluster's cost and stale workloads
(`settled_figures`), the conditions left stuck (`loose_ends`) and consolidation's moves
(`consolidation_moves`). Each figure's meaning is documented in benchmarks/churn.py's docstring.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.metrics_core import Metric

from autoscaler.decide.placement import serving_cost
from autoscaler.decide.state import read_owned
from autoscaler.decide.status import CONSOLIDATING, PROMISE_KEPT, SCALING_ACTIVE
from autoscaler.eta import least_mean_slack, promise_slacks
from autoscaler.kubetime import parse_time
from benchmarks.churnkit.kinds import DEPLOYMENTS, ENDPOINTS, log
from localplay.kube_standin import KubeCluster
from scheduler.catalog import Catalog


@dataclass
class Promised:
    """A 202's promise, scored once per incarnation (uid): an endpoint deleted and posted again is another
    endpoint, whose promise neither replaces its first incarnation's nor is read from that one's status."""

    key: str
    """The endpoint (namespace/name)."""
    posted: float
    eta: float
    """The ETA the 202 answered."""
    last: float
    """The ETA its status last showed before it was Ready (revised earlier or later)."""
    ready: float | None = None
    median: float | None = None
    """The median the same ETA rule gave when it answered (`answered`): the promise less this is the
    slack its quantile alone leaves."""
    cause: tuple[str, str, float | None] | None = None
    """What served it, the node and the delay drawn for it if ordered (`Play.early_cause`), once Ready."""
    law: tuple[float, ...] = ()
    """When its queue would serve had the delays their own law (`answered`): each percent's middle
    quantile, equally likely points that `least_mean_slack` bounds the slack of any promise from."""


@dataclass(frozen=True)
class Moved:
    """A consolidation move read from its status: when it began (the controller's clock), the nodes it took
    replicas off, the Nodes in the cluster when the play first read it (the budget's base), and the endpoint's
    incarnation (uid) whose status held it: one deleted and posted again is another endpoint, unmoved."""

    at: float
    nodes: frozenset[str]
    fleet: int
    uid: str


@dataclass
class Tally:
    promises: dict[str, Promised] = field(default_factory=dict)
    """Incarnation (uid) -> its 202's promise."""
    posted: dict[str, float] = field(default_factory=dict)
    incarnation: dict[str, str] = field(default_factory=dict)
    """Endpoint (namespace/name) -> the uid its last answered POST created: a status of another is not read."""
    ready_at: dict[str, float] = field(default_factory=dict)
    answered_201: set[str] = field(default_factory=set)
    demoted: set[str] = field(default_factory=set)
    """Of the endpoints answered 201 and not deleted since, those a status reported Provisioning."""
    answers_201: int = 0
    demotions: int = 0
    """201s answered, and reported Provisioning, over the run: a delete does not take one back."""
    changed: set[str] = field(default_factory=set)
    """Endpoints whose spec changed or that were deleted (their replicas may move)."""
    ready_pods: dict[str, set[str]] = field(default_factory=dict)
    ready_uids: dict[str, str] = field(default_factory=dict)
    """Pod -> the uid of the endpoint incarnation its Deployment was written for, read while it was Ready."""
    lost_pods: set[str] = field(default_factory=set)
    """Pods on a node that was lost, until a pod of that name is Ready again: their going is no disruption."""
    lost_capacity: set[str] = field(default_factory=set)
    """Endpoints with capacity on a node that was lost (a pod bound there, or a 201 answered there): a 201 among
    them may wait again."""
    disruptions: int = 0
    consolidations: int = 0
    exits: int = 0
    unexplained: int = 0
    """A 202's ETA moved later with no PromiseKept condition False saying why."""
    off_answer: int = 0
    """Pods of a 201 bound to another node than the API answered it on (the workloads carry no per-node pin), but
    for those of an endpoint consolidation moved (its status recorded a move, in flight or done)."""
    bound: set[str] = field(default_factory=set)
    """The pods of 201s whose node was compared with the answer."""
    served_otherwise: int = 0
    """201s Ready for the first time in another variant or class than answered (their spec unchanged)."""
    moves: dict[tuple[str, str], Moved] = field(default_factory=dict)
    """Each consolidation move as its endpoint's status recorded it (`status.consolidation`), by (endpoint,
    its time as written)."""
    doubled: set[str] = field(default_factory=set)
    """Endpoints POSTed twice at once, one of whose POSTs was answered."""
    answered_twice: int = 0
    """POSTs of such a pair answered 201 or 202 after the other was: Kubernetes' create is not idempotent."""

    def drop_waiting(self, key: str, now: float) -> None:
        """Drop the promise of endpoint `key` not Ready yet (deleted, or its capacity lost) and not due yet:
        nothing is left to hold it to. A promise of an incarnation that was Ready before stays scored, and so
        does one already past its ETA (broken before the delete: dropped, a late 202 deleted went unseen)."""
        self.promises = {
            uid: p for uid, p in self.promises.items() if p.key != key or p.ready is not None or p.eta < now
        }


def promise_figures(promises: Iterable[Promised], factor: float) -> dict[str, Any]:
    """The 202s' figures (`etas_kept`, `eta_mean_slack_s` and the same against the last ETA shown), each
    incarnation's promise once, and of the first promises kept the slack their quantile alone leaves
    (`eta_quantile_slack_s`: the promise less the median then); slack in uncompressed seconds."""
    scored = list(promises)
    figures: dict[str, Any] = {"answered_202": len(scored)}
    for suffix, etas in (("", [p.eta for p in scored]), ("_last", [p.last for p in scored])):
        slack = [(eta - p.ready) * factor for p, eta in zip(scored, etas, strict=True) if p.ready and p.ready <= eta]
        figures[f"etas_kept{suffix}"] = round(len(slack) / len(scored), 3) if scored else None
        figures[f"eta_mean_slack{suffix}_s"] = round(sum(slack) / len(slack), 1) if slack else None
    kept = [(p, p.median, p.ready) for p in scored if p.median is not None and p.ready and p.ready <= p.eta]
    spread = [(p.eta - median) * factor for p, median, _ in kept]
    figures["eta_quantile_slack_s"] = round(sum(spread) / len(spread), 1) if spread else None
    early: dict[str, list[tuple[str, float | None, float]]] = {}
    for p, median, ready in kept:
        cause, node, delay = p.cause or ("not traced", "", None)
        early.setdefault(cause, []).append((node, delay, (median - ready) * factor))
    # Promises served by one node share its draw: the nodes say how many draws a mean stands on, and the delays
    # drawn how much of it is their luck (against the prior's median) rather than the rule's bias.
    figures["eta_early_by_cause"] = {cause: _early_figures(e) for cause, e in sorted(early.items())}
    return figures | _bound_figures([p for p in scored if p.law], factor)


KEPT = 0.95
"""The share of first promises the issue asks kept."""


def _bound_figures(scored: Sequence[Promised], factor: float) -> dict[str, Any]:
    """What the first promises' slack is bounded by, from each answer's law (`Promised.law`): knowing the true
    delay law, the queue, the orders and the nodes registered at each answer, but not the later draws or POSTs,
    `eta_bound_slack_s` is the least mean slack over those kept that any rule keeping `KEPT` of them in
    expectation leaves (`least_mean_slack`); `eta_bound_q95_slack_s` the same for the rule that promises each
    answer the point of its own law that keeps 0.95 of it (`eta.promise_slacks`), and `eta_bound_q95_kept`,
    `eta_bound_q95_realized_slack_s` that rule's promises scored against this run's Ready times (later POSTs
    and draws make them kept more, with more slack). Uncompressed seconds; all None without a law."""
    if not scored:
        return dict.fromkeys(("eta_bound_slack_s", "eta_bound_q95_slack_s", "eta_bound_q95_kept",
                              "eta_bound_q95_realized_slack_s"))  # fmt: skip
    # Each answer promised the point that keeps KEPT of its law (all laws have as many points, ascending).
    m = round(KEPT * len(scored[0].law))
    kept = [(p.law[m - 1] - p.ready) * factor for p in scored if p.ready and p.ready <= p.law[m - 1]]
    own = sum(float(promise_slacks(p.law)[m - 1]) for p in scored) / (len(scored) * m / len(scored[0].law))
    return {
        "eta_bound_slack_s": round(least_mean_slack([p.law for p in scored], KEPT) * factor, 1),
        "eta_bound_q95_slack_s": round(own * factor, 1),
        "eta_bound_q95_kept": round(len(kept) / len(scored), 3),
        "eta_bound_q95_realized_slack_s": round(sum(kept) / len(kept), 1) if kept else None,
    }


def _early_figures(served: Sequence[tuple[str, float | None, float]]) -> dict[str, Any]:
    """Of (node, its delay drawn if ordered, seconds Ready before the median) per promise: how many promises
    and nodes, the mean seconds early, and the mean delay drawn where the nodes were ordered."""
    delays = [d for _, d, _ in served if d is not None]
    figures = {
        "promises": len(served),
        "nodes": len({node for node, _, _ in served}),
        "mean_early_s": round(sum(s for _, _, s in served) / len(served), 1),
    }
    return figures | ({"mean_delay_drawn_s": round(sum(delays) / len(delays), 1)} if delays else {})


ANSWERED = re.compile(
    r"POST (\S+): \w+, ETA in \S+ s \(at ([\d.]+), its median at ([\d.]+)\).*?(?:; law ([\d.]+) \+ \[([^\]]*)\])?$",
    re.MULTILINE,
)
"""`egs api`'s debug line for a POST it answered 202 (`autoscaler.adapters.api`)."""


def answered(api_log: str) -> dict[tuple[str, int], tuple[float, tuple[float, ...]]]:
    """(endpoint, the ETA answered: to the second, rounded up as written) -> the median the same ETA rule gave
    it then, and the law of when its queue serves (`autoscaler.admission.waiting_law`, in its clock; () where
    the line has none), read from `egs api`'s debug log."""
    return {
        (m[1], math.ceil(float(m[2]))): (
            float(m[3]),
            tuple(float(m[4]) + float(t) for t in m[5].split(",")) if m[4] else (),
        )
        for m in ANSWERED.finditer(api_log)
    }


def workload_cost(d: Mapping[str, Any], catalog: Catalog) -> float:
    """$/h of a Deployment's replicas at the shape recorded on it (`scheduler.manifests`)."""
    return serving_cost(read_owned([d], catalog), catalog)


def _shape(d: Mapping[str, Any]) -> tuple[str, str]:
    a = d["metadata"].get("annotations") or {}
    return a.get("egs.io/variant", ""), a.get("egs.io/gpu-class", "")


def settled_figures(kube: KubeCluster, catalog: Catalog) -> dict[str, Any]:
    statuses: dict[str, dict[str, Any]] = {
        f"{e['metadata']['namespace']}/{e['metadata']['name']}": e["status"]
        for e in kube.all(ENDPOINTS)
        if isinstance(e.get("status"), dict)
    }
    intended = sum(float(s.get("costPerHour") or 0.0) for s in statuses.values())
    applied, stale = 0.0, 0
    by_endpoint: dict[str, list[dict[str, Any]]] = {}
    for d in kube.all(DEPLOYMENTS):
        a = d["metadata"].get("annotations") or {}
        if "egs.io/request-name" in a:
            applied += workload_cost(d, catalog)
            by_endpoint.setdefault(f"{d['metadata']['namespace']}/{a['egs.io/request-name']}", []).append(d)
    for key, workloads in by_endpoint.items():
        # An endpoint may run replicas of several shapes (incumbents kept, new ones elsewhere): its workloads
        # count, those of the status's shape first, until they hold its desired replicas; the rest are stale.
        status = statuses.get(key) or {}
        shape = (status.get("variant"), status.get("gpuClass"))
        workloads.sort(key=lambda d: (_shape(d) != shape, -int((d.get("spec") or {}).get("replicas", 0))))
        held = 0
        for d in workloads:
            if status and held < int(status.get("desiredReplicas") or 0):
                held += int((d.get("spec") or {}).get("replicas", 0))
                continue
            stale += 1
            log(f"stale: {d['metadata']['namespace']}/{d['metadata']['name']} ({d['spec'].get('replicas')} x "
                f"{_shape(d)}; its endpoint: {status.get('desiredReplicas')} x {shape})")  # fmt: skip
    return {"applied": applied, "intended": intended, "stale": stale, "statuses": statuses}


STUCK = {("Ready", "False"), ("Degraded", "True"), (SCALING_ACTIVE, "False"), (PROMISE_KEPT, "False")}
"""A condition that says something is wrong, which a Ready endpoint, once settled, should no longer show."""


def loose_ends(statuses: Mapping[str, Mapping[str, Any]], families: Iterable[Metric]) -> tuple[int, int]:
    """Once settled: the Ready endpoints whose status still shows a condition of `STUCK`, and the endpoints
    with no `egs_endpoint_ready` series in the controller's /metrics (`families`)."""
    stuck = 0
    for key, status in sorted(statuses.items()):
        wrong = [c for c in status.get("conditions") or () if (c.get("type"), c.get("status")) in STUCK]
        if status.get("phase") == "Ready" and wrong:
            stuck += 1
            log(f"Ready with a condition stuck: {key}: {wrong}")
    metered: set[str] = set()
    for family in families:
        if family.name == "egs_endpoint_ready":
            metered |= {f"{x.labels['namespace']}/{x.labels['endpoint']}" for x in family.samples}
    for key in sorted(statuses.keys() - metered):
        log(f"no egs_endpoint_ready series: {key}")
    return stuck, len(statuses.keys() - metered)


def consolidation_moves(events: Iterable[Mapping[str, Any]], interval_s: float) -> dict[str, int]:
    """Moves consolidation began (its `Consolidating` Events, a series by its count) and the most of them begun
    within `interval_s` (real: the budget's interval less a loop) by each Event's first time."""
    mine = [e for e in events if e.get("reason") == CONSOLIDATING]
    starts = sorted(parse_time(str(e["eventTime"])) for e in mine)
    for e in sorted(mine, key=lambda e: str(e["eventTime"])):
        regarding, series = e.get("regarding") or {}, e.get("series") or {}
        log(f"consolidating {regarding.get('namespace')}/{regarding.get('name')} at {e['eventTime']} "
            f"({series.get('count', 1)}, last {series.get('lastObservedTime', '-')}): {e.get('note')}")  # fmt: skip
    return {
        "consolidation_moves": sum(int((e.get("series") or {}).get("count", 1)) for e in mine),
        "consolidation_moves_in_one_interval": max(
            (sum(1 for t in starts if start <= t < start + interval_s) for start in starts), default=0
        ),
    }


def consolidation_repeats(moves: Mapping[tuple[str, str], Moved], settled_s: float) -> dict[str, int]:
    """The moves of an endpoint (one incarnation of it) begun less than `settled_s` after its move before
    (`consolidateAfter`, or the interval where longer; its statuses' times are to the second, so a second
    less): each reloads a model the move before had just loaded (0)."""
    times: dict[tuple[str, str], list[float]] = {}
    for (key, _), m in moves.items():
        times.setdefault((key, m.uid), []).append(m.at)
    gaps = (b - a for at in times.values() for a, b in itertools.pairwise(sorted(at)))
    return {"consolidation_repeat_moves": sum(1 for gap in gaps if gap < settled_s - 1)}


def consolidation_budget(moves: Iterable[Moved], interval_s: float, allowed: Callable[[int], int]) -> dict[str, int]:
    """The budget in nodes as the controller keeps it (`maxNodesPerInterval`), from the moves' statuses: at
    each move, the nodes it and the moves begun less than `interval_s` before it took replicas off, the most
    of those, and the moves where they exceed `allowed` of the Nodes then (all the Nodes: the controller's
    inventory skips a node it cannot read, so its budget may be less, never more)."""
    moves = sorted(moves, key=lambda m: m.at)
    spent = [(m, frozenset().union(*(o.nodes for o in moves if m.at - interval_s < o.at <= m.at))) for m in moves]
    return {
        "consolidation_nodes_in_one_interval": max((len(nodes) for _, nodes in spent), default=0),
        "consolidation_moves_over_budget": sum(1 for m, nodes in spent if len(nodes) > allowed(m.fleet)),
    }
