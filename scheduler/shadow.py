"""Shadow prices of a fleet's capacity: what one more GPU (or instance) of each node kind is worth to a batch.

The online policy places one replica at a time at its lowest marginal cost, which is blind to what
a cheap GPU is worth to the replicas still to come: a small model takes the last cheap 48 GB GPU,
and the larger one after it goes to a GPU that costs ten times as much. The exact engine sees that
through the duals of its LP; this module gives the online policy the same signal from a far smaller
LP, in milliseconds.

The *fluid* relaxation: replicas may be split over GPUs, so a replica on a shared GPU class takes
the fraction of one GPU its VRAM is (under time-slicing, at least one device-plugin replica's share),
an exclusive or tensor-parallel one its GPUs, one in a MIG instance or AMD partition one instance.
Variables are (request, shape, node kind) counts; rows are each request's replicas (met exactly, or
at a dear penalty per replica left out) and each capacity row: the GPUs of a node kind, the
instances of a profile on it. A few thousand variables and a hundred rows: milliseconds for HiGHS
(`scipy.optimize.linprog`).

The duals of the capacity rows are the shadow prices: USD/hour one more unit of that capacity would
save the batch. Capacity nobody is short of is worth 0; a class every request wants is worth what
its marginal user pays more at its next best place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_array

from scheduler.catalog import MigProfile
from scheduler.fleet import SHARED, UNPLACED_PENALTY, FleetState, NodeState, Shape
from scheduler.plan import Request

Row = tuple[str, str]
"""A capacity row: (node kind, "") for its GPUs, (node kind, profile) for its instances of a profile."""


@dataclass(frozen=True)
class Shadow:
    """What the fluid relaxation says of a batch on a fleet."""

    prices: dict[Row, float]
    """USD/hour one more unit of each capacity row would save (rows worth nothing left out)."""
    left_out: dict[str, int]
    """Request -> replicas even the relaxation cannot place (rounded; requests with none left out)."""


@dataclass(frozen=True)
class Use:
    """What one replica takes of one capacity row."""

    row: Row
    amount: float


def replica_use(node: NodeState, shape: Shape, profile: str = "") -> Use:
    """What one replica of `shape` takes on a node like `node`: one instance of `profile` when
    given, else its share of a shared GPU, else its GPUs."""
    if profile:
        return Use((node.kind, profile), 1.0)
    if node.sharing in SHARED and shape.gpus == 1:
        fraction = shape.per_gpu_mib / node.model.vram_mib
        if node.sharing == "timeslice":
            fraction = max(fraction, 1 / node.inventory.timeslice_replicas)
        return Use((node.kind, ""), fraction)
    return Use((node.kind, ""), float(shape.gpus))


def capacity(state: FleetState) -> dict[Row, float]:
    """The free units of each capacity row of `state`: GPUs (of a shared GPU, its free fraction) and
    instances."""
    free: dict[Row, float] = {}
    for node in state.nodes:
        if node.gpus:
            shared = node.sharing in SHARED
            room = sum(node.available(g) / g.vram_mib if shared else float(g.holders == 0) for g in node.gpus)
            free[(node.kind, "")] = free.get((node.kind, ""), 0.0) + room
        for mig in node.mig:
            row = (node.kind, mig.profile.name)
            free[row] = free.get(row, 0.0) + mig.free
    return free


def shadow(state: FleetState, requests: Sequence[Request], options: dict[str, list[Shape]]) -> Shadow:
    """The fluid relaxation of placing `requests` (whose shapes are `options`) on `state`; no prices
    and nothing left out when HiGHS finds no solution."""
    free = capacity(state)
    rows = {row: i for i, row in enumerate(free)}
    profiles: dict[str, dict[str, MigProfile]] = {}
    for node in state.nodes:
        profiles.setdefault(node.kind, {}).update((m.profile.name, m.profile) for m in node.mig)
    costs: list[float] = []
    uses: list[tuple[int, int, float]] = []
    """(row, column, amount): the capacity matrix."""
    serves: list[tuple[int, int]] = []
    """(request, column): the demand matrix."""
    left_out: list[int] = []
    """The column of each request's penalty."""
    for index, request in enumerate(requests):
        for shape in options[request.name]:
            price = shape.gpu.price_per_hour
            for kind in state.kinds_for(request, shape):
                node = state.first(kind)
                ways = [(replica_use(node, shape), price)]
                if shape.gpus == 1:
                    ways += [
                        (replica_use(node, shape, p.name), p.gpu_share * price)
                        for p in profiles[kind].values()
                        if p.memory_mib >= shape.per_gpu_mib
                    ]
                for use, unit_price in ways:
                    if use.row in rows:
                        uses.append((rows[use.row], len(costs), use.amount))
                        serves.append((index, len(costs)))
                        costs.append(shape.cost(unit_price * use.amount))
        left_out.append(len(costs))
        serves.append((index, len(costs)))
        costs.append(UNPLACED_PENALTY)
    if not uses:
        return Shadow({}, {})
    n = len(costs)
    a_ub = csr_array(([a for *_, a in uses], ([i for i, *_ in uses], [j for _, j, _ in uses])), shape=(len(rows), n))
    a_eq = csr_array((np.ones(len(serves)), ([i for i, _ in serves], [j for _, j in serves])), shape=(len(requests), n))
    result = linprog(  # type: ignore[call-overload]  # the stubs do not take sparse matrices; HiGHS does
        np.array(costs),
        A_ub=a_ub,
        b_ub=np.array(list(free.values())),
        A_eq=a_eq,
        b_eq=np.array([float(r.replicas) for r in requests]),
        bounds=(0, None),
        method="highs",
    )
    if result.status != 0:
        return Shadow({}, {})
    marginals = result.ineqlin.marginals
    prices = {row: -float(marginals[i]) for row, i in rows.items() if marginals[i] < -1e-9}
    out = {r.name: round(float(result.x[j])) for r, j in zip(requests, left_out, strict=True)}
    return Shadow(prices, {name: n for name, n in out.items() if n})


def surcharge(prices: dict[Row, float], node: NodeState, shape: Shape, profile: str = "") -> float:
    """What one replica of `shape` on a node like `node` (in an instance of `profile` when given)
    takes of capacity priced at `prices`, in USD/hour."""
    use = replica_use(node, shape, profile)
    return prices.get(use.row, 0.0) * use.amount
