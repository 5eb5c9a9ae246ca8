"""The scheduler's one entry point: place a batch of requests on a fleet with the engine that fits.

    schedule(requests, registry, inventory, engine="auto", time_limit_s=2.0) -> Scheduled

Pure: a function of plain data (a `Registry`, an `Inventory` built from Node objects and the
allocations of running replicas, `Request`s); nothing is applied. `egs plan` and the controller
call it; the engines behind it are in `scheduler.replan`, with the greedy policy of
`scheduler.placement`.

- `online`: the cutting-stock LP relaxation (column generation for at most 0.3 s), rounded, and
  what the rounding leaves placed one replica at a time, cheapest first, without fragmenting; the
  greedy passes of `scheduler.placement` when no LP is solved in time or the rounding leaves
  replicas out that the LP places; 0.05-0.35 s per batch of ~150 replicas on ~250 GPUs.
- `exact`: the cutting-stock re-plan under `time_limit_s`, with a proven lower bound; when HiGHS has
  no integer solution in time, the online plan (then `engine` says `online`).
- `greedy`: the greedy passes of `scheduler.placement` alone, 0.1-0.5 s per batch: the controller's
  engine, because short of room which replicas wait follows their order (the largest last, names
  breaking ties), the same whether endpoints are admitted one by one or decided together, where
  the rounded LP may choose otherwise among equally good plans.
- `auto` (the default): the exact engine under the deadline, and whichever of its plan and the
  online plan places more replicas, then costs less. The deadline includes the online plan.

What every engine keeps to: VRAM per GPU never over-committed, quality floors, compute-capability and
gfx minima, tensor-parallel groups in one NVLink/xGMI domain, and node taints (`scheduler.fleet`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.errors import InputError
from scheduler.plan import Plan, Request

if TYPE_CHECKING:  # the engines (numpy, HiGHS) are imported when one runs: `egs plan --help` needs none
    from scheduler.inventory import Inventory
    from scheduler.registry import Registry

ENGINES = ("auto", "online", "exact", "greedy")
DEFAULT_TIME_LIMIT_S = 2.0


@dataclass(frozen=True)
class Scheduled:
    """A plan, the engine whose plan it is, and how good it is proven to be."""

    plan: Plan
    engine: str
    """`online`, `exact` or `greedy`: whose plan `plan` is (under `auto`, the better one)."""
    lower_bound: float | None
    """USD/hour per unit of throughput (`Plan.effective_cost_per_hour`) no plan of the batch can
    beat, from the exact engine's LP relaxation; None under the online engine, or when the deadline
    came before the first LP was solved."""
    optimal: bool
    """Whether `plan` is proven optimal (over the exact engine's generated patterns)."""
    seconds: float
    """Wall time taken, all engines together."""


def schedule(
    requests: Sequence[Request],
    registry: Registry,
    inventory: Inventory,
    engine: str = "auto",
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    solver_log: bool = False,
) -> Scheduled:
    """Place every replica of `requests` on `inventory`'s schedulable nodes with `engine` (one of
    `ENGINES`), within about `time_limit_s` seconds for `exact` and `auto`; `solver_log` lets HiGHS
    print its progress, on stderr (never on stdout).

    Raises `InputError` for an unknown engine or a time limit that is not positive. Unplaceable
    replicas are not errors: they are in `plan.unplaced`, each with the reason.
    """
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}: one of {', '.join(ENGINES)}", source="engine")
    if not time_limit_s > 0:
        raise InputError(f"must be a positive number of seconds, not {time_limit_s!r}", source="time_limit_s")
    started = time.perf_counter()
    if engine == "greedy":
        from scheduler.placement import place

        plan = place(requests, registry, inventory)
        return Scheduled(plan, "greedy", None, False, round(time.perf_counter() - started, 3))
    from scheduler.replan import ONLINE_LP_S, online, solve

    if engine == "online":
        plan = online(requests, registry, inventory, min(time_limit_s, ONLINE_LP_S))
        return Scheduled(plan, "online", None, False, round(time.perf_counter() - started, 3))

    solution = solve(requests, registry, inventory, time_limit_s, solver_log)
    plan, chosen = solution.plan, "online" if solution.fell_back else "exact"
    if engine == "auto" and solution.online is not None and solution.online.better_than(plan):
        plan, chosen = solution.online, "online"
    optimal = solution.optimal and chosen == "exact"
    proven = solution.lower_bound is not None and plan.effective_cost_per_hour <= solution.lower_bound + 1e-6
    if proven and not plan.unplaced:
        optimal = True  # the bound proves it, whichever engine found it
    return Scheduled(plan, chosen, solution.lower_bound, optimal, round(time.perf_counter() - started, 3))
