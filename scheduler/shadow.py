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
(`scheduler.solver`).

The duals of the capacity rows are the shadow prices: USD/hour one more unit of that capacity would
save the batch. Capacity nobody is short of is worth 0; a class every request wants is worth what
its marginal user pays more at its next best place.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from scheduler.catalog import MigProfile
from scheduler.fleet import SHARED, UNPLACED_PENALTY, FleetState, NodeState, Shape
from scheduler.plan import Request
from scheduler.solver import Model

SHADOW_TIME_LIMIT_S = 5.0
"""A bound on the fluid LP's time, which takes milliseconds: what HiGHS cannot solve in it gives no
shadow prices, and the online policy compares options at real prices."""
Row = tuple[str, str]
"""A capacity row: (node kind, "") for its GPUs, (node kind, profile) for its instances of a profile."""


@dataclass(frozen=True)
class Shadow:
    """What the fluid relaxation says of a batch on a fleet."""

    prices: dict[Row, float]
    """USD/hour one more unit of each capacity row would save (rows worth nothing left out)."""
    left_out: dict[str, int]
    """Request -> replicas even the relaxation cannot place (rounded; requests with none left out)."""
    split: dict[str, list[tuple[Way, float]]] = field(default_factory=dict)
    """Request -> where the relaxation puts its replicas: each way and how many (fractions)."""


@dataclass(frozen=True)
class Way:
    """Where the relaxation puts replicas: `shape` on nodes of `kind`, in instances of `profile`
    (MIG or AMD partition) when given, else on GPUs."""

    shape: Shape
    kind: str
    profile: str = ""


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
    way_of: dict[int, tuple[str, Way]] = {}
    """Column -> the request and the way it stands for."""
    for index, request in enumerate(requests):
        for shape in options[request.name]:
            price = shape.gpu.price_per_hour
            for kind in state.kinds_for(request, shape):
                node = state.first(kind)
                ways = [(replica_use(node, shape), price, "")]
                if shape.gpus == 1:
                    ways += [
                        (replica_use(node, shape, p.name), p.gpu_share * price, p.name)
                        for p in profiles[kind].values()
                        if p.memory_mib >= shape.per_gpu_mib
                    ]
                for use, unit_price, profile in ways:
                    if use.row in rows:
                        way_of[len(costs)] = (request.name, Way(shape, kind, profile))
                        uses.append((rows[use.row], len(costs), use.amount))
                        serves.append((index, len(costs)))
                        costs.append(shape.cost(unit_price * use.amount))
        left_out.append(len(costs))
        serves.append((index, len(costs)))
        costs.append(UNPLACED_PENALTY)
    if not uses:
        return Shadow({}, {})
    capacity_rows = len(rows)
    lp = Model(
        [-math.inf] * capacity_rows + [float(r.replicas) for r in requests],
        [*free.values(), *(float(r.replicas) for r in requests)],
    )
    columns: list[dict[int, float]] = [{} for _ in costs]
    for i, j, amount in uses:
        columns[j][i] = amount
    for index, j in serves:
        columns[j][capacity_rows + index] = 1.0
    lp.add_columns(costs, columns)
    result = lp.solve(SHADOW_TIME_LIMIT_S)
    if result is None or not result.optimal:
        return Shadow({}, {})
    prices = {row: -float(result.duals[i]) for row, i in rows.items() if result.duals[i] < -1e-9}
    out = {r.name: round(float(result.x[j])) for r, j in zip(requests, left_out, strict=True)}
    split: dict[str, list[tuple[Way, float]]] = {}
    for j, (name, way) in way_of.items():
        if result.x[j] > 1e-6:
            split.setdefault(name, []).append((way, float(result.x[j])))
    return Shadow(prices, {name: n for name, n in out.items() if n}, split)


def surcharge(prices: dict[Row, float], node: NodeState, shape: Shape, profile: str = "") -> float:
    """What one replica of `shape` on a node like `node` (in an instance of `profile` when given)
    takes of capacity priced at `prices`, in USD/hour."""
    use = replica_use(node, shape, profile)
    return prices.get(use.row, 0.0) * use.amount
