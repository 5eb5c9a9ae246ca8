"""HiGHS, the LP and MIP solver of the placement engines, behind one small class.

The only module that imports `highspy`, HiGHS's own Python interface: importing it takes about a
tenth of a second where `scipy.optimize` (the same HiGHS, wrapped) took 0.5-1.5 s, which was a
third of `egs plan`'s wall time on two busy cores. `scheduler.shadow` solves one LP with it;
`scheduler.replan` keeps one `Model` alive through its column generation, adding columns and
re-solving from the last basis (HiGHS warm-starts the simplex), then makes that model integer.

Every model is `row_lower <= A x <= row_upper`, `0 <= x <= column upper`, minimised. Duals follow
HiGHS (and scipy's `marginals`): for a binding `<=` row of a minimisation, <= 0.

What HiGHS prints goes to stderr (`solver_output_to_stderr`), whatever its options say, so that a
command's one JSON document on stdout stays whole.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import highspy
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Column = Mapping[int, float]
"""A column of `A`: row index -> coefficient."""


@dataclass(frozen=True)
class Solved:
    """What a solve found: the variables' values, the objective, and (for an LP) the rows' duals."""

    x: FloatArray
    objective: float
    duals: FloatArray
    optimal: bool
    """Proven optimal; False when the time ran out with a feasible solution in hand."""


class Model:
    """A linear (then, if asked, integer) programme that grows by columns."""

    def __init__(self, row_lower: Sequence[float], row_upper: Sequence[float], log: bool = False) -> None:
        with solver_output_to_stderr(discard=not log):  # HiGHS greets with a banner, once a process
            self._highs = highspy.Highs()  # type: ignore[no-untyped-call]  # its __init__ has no annotations
        self._highs.setOptionValue("output_flag", log)
        self._highs.setOptionValue("log_to_console", log)
        lower = np.array(row_lower, dtype=np.float64)
        upper = np.array(row_upper, dtype=np.float64)
        inf = self._highs.getInfinity()
        lower[np.isinf(lower)] = -inf
        upper[np.isinf(upper)] = inf
        empty = np.zeros(0, dtype=np.int32)
        self._highs.addRows(len(lower), lower, upper, 0, empty, empty, np.zeros(0))
        self.columns = 0
        self._integer = False

    def add_columns(self, costs: Sequence[float], columns: Sequence[Column], upper: Sequence[float] = ()) -> None:
        """Append columns (cost, entries, upper bound: unbounded when not given), lower bound 0."""
        if not columns:
            return
        inf = self._highs.getInfinity()
        bounds = np.array([inf if math.isinf(u) else u for u in upper] if upper else [inf] * len(columns))
        starts: list[int] = []
        indices: list[int] = []
        values: list[float] = []
        for column in columns:
            starts.append(len(indices))
            indices.extend(column)
            values.extend(column.values())
        self._highs.addCols(
            len(columns),
            np.array(costs, dtype=np.float64),
            np.zeros(len(columns)),
            bounds,
            len(indices),
            np.array(starts, dtype=np.int32),
            np.array(indices, dtype=np.int32),
            np.array(values, dtype=np.float64),
        )
        self.columns += len(columns)

    def integer(self) -> None:
        """Make every column integer: the next `solve` is a MIP."""
        n = self.columns
        self._highs.changeColsIntegrality(
            n, np.arange(n, dtype=np.int32), np.full(n, highspy.HighsVarType.kInteger.value, dtype=np.uint8)
        )
        self._integer = True

    def solve(self, time_limit_s: float) -> Solved | None:
        """Solve within `time_limit_s`; None when there is no feasible solution in hand then."""
        highs = self._highs
        # HiGHS (1.x) holds an LP's `time_limit` against the run time of every `run` of this object
        # together, a MIP's against the MIP's own start: an LP re-solved through column generation
        # would otherwise stop short by all its earlier solves, and the MIP made of it must not be
        # given them again.
        spent = 0.0 if self._integer else highs.getRunTime()
        highs.setOptionValue("time_limit", spent + max(time_limit_s, 1e-3))
        with solver_output_to_stderr():
            highs.run()
        status = highs.getModelStatus()
        info = highs.getInfo()
        optimal = status == highspy.HighsModelStatus.kOptimal
        if not optimal and info.primal_solution_status != 2:  # 2: feasible
            return None
        solution = highs.getSolution()
        return Solved(
            x=np.array(solution.col_value, dtype=np.float64),
            objective=float(info.objective_function_value),
            duals=np.array(solution.row_dual, dtype=np.float64),
            optimal=optimal,
        )


BRANCH_LIMIT = 20_000
"""Branch-and-bound nodes `knapsack` visits before it hands the problem to HiGHS. Pricing problems
hold a few dozen items of which a GPU takes a handful: they close in tens to hundreds of nodes,
well under a millisecond, where a HiGHS MIP takes ~15 ms to set up and solve."""


def knapsack(
    values: Sequence[float],
    weights: Sequence[float],
    capacity: float,
    most: Sequence[int],
    items_at_most: int | None,
    time_limit_s: float,
) -> tuple[list[int], bool] | None:
    """The most valuable integer counts of items (at most `most[i]` of item i, at most
    `items_at_most` in all when given) whose `weights` fit `capacity`, and whether that is proven
    optimal; None when no solution is found within `time_limit_s`.

    Depth-first branch and bound over items by value per unit of weight, bounded by the fractional
    (LP) relaxation and by the best `items_at_most` values left; HiGHS when that takes more than
    `BRANCH_LIMIT` nodes."""
    found = _branch_and_bound(values, weights, capacity, most, items_at_most)
    if found is not None:
        return found, True
    weight_rows = [list(weights)]
    capacities = [capacity]
    if items_at_most is not None:
        weight_rows.append([1.0] * len(values))
        capacities.append(float(items_at_most))
    model = Model([-math.inf] * len(capacities), capacities)
    model.add_columns(
        [-v for v in values],
        [{r: float(row[i]) for r, row in enumerate(weight_rows) if row[i]} for i in range(len(values))],
        [float(m) for m in most],
    )
    model.integer()
    solved = model.solve(time_limit_s)
    if solved is None:
        return None
    return [round(float(k)) for k in solved.x], solved.optimal


def _branch_and_bound(
    values: Sequence[float], weights: Sequence[float], capacity: float, most: Sequence[int], items_at_most: int | None
) -> list[int] | None:
    """`knapsack` by branch and bound; None when it needs more than `BRANCH_LIMIT` nodes."""
    order = sorted((i for i, v in enumerate(values) if v > 0 and most[i] > 0), key=lambda i: -values[i] / weights[i])
    value = [values[i] for i in order]
    weight = [weights[i] for i in order]
    bound_of = [most[i] for i in order]
    n = len(order)
    limit = items_at_most if items_at_most is not None else sum(bound_of)
    best_value = 0.0
    best: list[int] = [0] * n
    counts = [0] * n
    visited = 0

    by_value = sorted(range(n), key=lambda j: -value[j])
    suffix = [0] * (n + 1)
    """Items i.. may take at most this many in all."""
    for j in range(n - 1, -1, -1):
        suffix[j] = suffix[j + 1] + bound_of[j]

    def ceiling(i: int, room: float, left: int, total: float) -> float:
        """A bound on what items i.. add within `room` and `left` items: the lesser of two
        relaxations of the items that fit the room, VRAM alone taken fractionally (by value per
        MiB), and the count alone (the most valuable first)."""
        by_room, space = 0.0, room
        for j in range(i, n):
            if space <= 0:
                break
            if weight[j] > room:
                continue  # it fits no completion
            take = min(bound_of[j], space / weight[j])
            by_room += take * value[j]
            space -= take * weight[j]
        if left >= suffix[i]:
            return total + by_room  # the count cannot bind
        by_count, slots = 0.0, left
        for j in by_value:
            if slots <= 0:
                break
            if j >= i and weight[j] <= room:
                take = min(bound_of[j], slots)
                by_count += take * value[j]
                slots -= take
        return total + min(by_room, by_count)

    def search(i: int, room: float, left: int, total: float) -> bool:
        nonlocal best_value, best, visited
        visited += 1
        if visited > BRANCH_LIMIT:
            return False
        if total > best_value + 1e-12:
            best_value, best = total, counts.copy()
        if i == n or left == 0 or ceiling(i, room, left, total) <= best_value + 1e-12:
            return True
        for k in range(min(bound_of[i], left, int(room // weight[i])), -1, -1):
            counts[i] = k
            if not search(i + 1, room - k * weight[i], left - k, total + k * value[i]):
                return False
        counts[i] = 0
        return True

    # A greedy fill (by value per MiB) first: a good incumbent from the start prunes most branches.
    room, left = capacity, limit
    for j in range(n):
        counts[j] = min(bound_of[j], left, int(room // weight[j]))
        room -= counts[j] * weight[j]
        left -= counts[j]
    best_value, best = sum(k * v for k, v in zip(counts, value, strict=True)), counts.copy()
    counts = [0] * n
    if not search(0, capacity, limit, 0.0):
        return None
    result = [0] * len(values)
    for position, i in enumerate(order):
        result[i] = best[position]
    return result


@contextlib.contextmanager
def solver_output_to_stderr(discard: bool = False) -> Iterator[None]:
    """Send what HiGHS prints on the process's stdout (file descriptor 1, below Python) to stderr,
    or nowhere when `discard`.

    Some HiGHS builds print a banner, or debugging lines from C++ however quiet its options are,
    which would break a command's one JSON document on stdout. Python's and C's buffers are flushed
    before the descriptor is restored, so nothing printed inside reaches stdout later. The
    redirection is process-wide for the length of one solver call.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    target = os.open(os.devnull, os.O_WRONLY) if discard else 2
    try:
        os.dup2(target, 1)
        yield
    finally:
        ctypes.CDLL(None).fflush(None)
        os.dup2(saved, 1)
        os.close(saved)
        if discard:
            os.close(target)
