"""The solver adapter: its pricing knapsack proves the same optimum as HiGHS's MIP.

Covers the branch and bound of `scheduler.solver.knapsack` against a MIP of the same problem
solved by HiGHS, with and without a limit on the number of items (time-slicing's replicas per
GPU), on generated problems shaped like the exact engine's pricing (a few dozen items, a GPU's
MiB), and that a model solved again gets the whole of its new time limit. The rest of the LP
side of the adapter is covered by the engines' tests (tests/test_placement.py).
"""

from __future__ import annotations

import math
import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.solver import Model, knapsack

problems = st.tuples(
    st.lists(st.tuples(st.floats(0.01, 10.0), st.integers(2_000, 60_000), st.integers(1, 6)), min_size=1, max_size=30),
    st.integers(10_000, 150_000),
    st.one_of(st.none(), st.integers(1, 8)),
)


def mip_optimum(items: list[tuple[float, int, int]], capacity: int, at_most: int | None) -> float:
    rows = [[float(w) for _, w, _ in items]] + ([[1.0] * len(items)] if at_most is not None else [])
    model = Model([-math.inf] * len(rows), [float(capacity)] + ([float(at_most)] if at_most is not None else []))
    model.add_columns(
        [-v for v, _, _ in items],
        [{r: row[i] for r, row in enumerate(rows)} for i in range(len(items))],
        [float(m) for _, _, m in items],
    )
    model.integer()
    solved = model.solve(30)
    assert solved is not None and solved.optimal
    return -solved.objective


@settings(max_examples=150, deadline=None)
@given(problems)
def test_the_branch_and_bound_knapsack_finds_the_mips_optimum(
    problem: tuple[list[tuple[float, int, int]], int, int | None],
) -> None:
    items, capacity, at_most = problem
    found = knapsack(
        [v for v, _, _ in items], [float(w) for _, w, _ in items], capacity, [m for *_, m in items], at_most, 30
    )
    assert found is not None and found[1]
    counts = found[0]
    assert all(0 <= k <= m for k, (_, _, m) in zip(counts, items, strict=True))
    assert sum(k * w for k, (_, w, _) in zip(counts, items, strict=True)) <= capacity
    assert at_most is None or sum(counts) <= at_most
    value = sum(k * v for k, (v, _, _) in zip(counts, items, strict=True))
    assert value >= mip_optimum(items, capacity, at_most) - 1e-6


def test_a_model_solved_again_gets_the_whole_of_its_new_time_limit() -> None:
    """HiGHS (before 2.0) holds `time_limit` against the run time of all of one model's solves
    together, and column generation re-solves one model tens of times: without `Model.solve`
    adding the time already run, a re-solve given as long as the first solve took stopped at once,
    unsolved. A warm-started re-solve after one more column takes a fraction of the first."""
    rng = np.random.default_rng(0)
    rows, columns = 200, 2000
    model = Model([-math.inf] * rows, list(rng.uniform(50, 100, rows)))
    model.add_columns(
        list(-rng.uniform(1, 10, columns)),
        [{int(i): float(rng.uniform(0.1, 1)) for i in rng.choice(rows, 30, replace=False)} for _ in range(columns)],
    )
    began = time.perf_counter()
    first = model.solve(30)
    took = time.perf_counter() - began
    assert first is not None and first.optimal
    model.add_columns([-50.0], [{0: 0.3, 1: 0.3, 2: 0.3}])  # enters the basis: the optimum moves
    again = model.solve(took)
    assert again is not None and again.optimal
    assert again.objective < first.objective
