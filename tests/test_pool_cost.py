"""The EGS policy's work per decide step stays small and exact (issue 18: an EGS simulation at most 5x
the CPU of a reactive one, with identical results).

Covered: the median the sudden-change threshold reads is numpy's on the tie-heavy rises of GPU counts; the
blocks young enough for a switch-on or a drop to count are those whose age is under the horizon; a learning
run works out each lead-time block's means and peaks once, though both the spare held and the missed-rise scan
read them; runs of one rung at two quiet-hours caps (the fit's probes, and the scored run after them) work
each block's spare out once, and `forget` empties what they cached; the nearest blocks are chosen the same
way on every machine (every block tied with the last of them). Not covered: CPU time itself
(`benchmarks/simulate_cpu.py` measures it, and compares every answer against a reference revision).
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.pool import (
    PoolSettings,
    _block_spare,
    _lead_blocks,
    _median,
    _similar_activity_rise,
    _younger,
    forget,
)
from autoscaler.simulator import GpuClass, ModelSpec, Policy, Scenario, Trace, Window, simulate
from benchmarks.demand import generate, resample

SCENARIO = Scenario(GpuClass("g", 8, 10.0, (300.0, 600.0)), 0.1, {"m": ModelSpec(4.0, 1, 120.0)})


@given(st.lists(st.integers(-3, 3).map(float) | st.floats(-1e6, 1e6), min_size=1, max_size=300))
def test_the_median_is_numpys_on_tie_heavy_rises(values: list[float]):
    x = np.array(values)
    assert _median(x) == float(np.median(x))


@given(
    st.lists(st.tuples(st.integers(0, 4), st.integers(-9, 30)), min_size=3, max_size=400),
    st.integers(1, 200),
    st.sampled_from([0.5, 0.9, 1.0]),
)
def test_the_rise_at_similar_activity_reads_the_k_closest_blocks_and_every_one_tied_with_them(
    blocks: list[tuple[int, int]], k: int, quantile: float
):
    change = np.array([float(c) for c, _ in blocks])
    rise = np.array([float(r) for _, r in blocks])
    settings = PoolSettings(8, quantile=quantile, neighbours=k)
    # The definition, slowly: activity is the change before each block (a span of 1) in whole 8-GPU nodes,
    # compared with the latest.
    nodes = [int(np.ceil(c / 8 - 1e-9)) for c in change]
    distance = [abs(np.log1p(nodes[j]) - np.log1p(nodes[-1])) for j in range(len(change) - 1)]
    kth = sorted(distance)[min(k, len(distance)) - 1]
    near = sorted(rise[j + 1] for j, d in enumerate(distance) if d <= kth)
    expected = near[int(np.ceil((len(near) - 1) * quantile))]
    assert _similar_activity_rise(rise, change, 1, settings) == expected


@given(st.integers(0, 2_000), st.sampled_from([60.0, 300.0, 600.0, 1_200.0, 777.7]), st.floats(0, 2e5))
def test_the_young_blocks_are_those_whose_age_is_under_the_horizon(blocks: int, lead_s: float, horizon_s: float):
    ages = lead_s * np.arange(blocks, dtype=np.float64)
    assert _younger(blocks, lead_s, horizon_s) == int(np.count_nonzero(ages < horizon_s))


def test_a_learning_run_works_out_each_lead_time_blocks_means_and_peaks_once():
    demand, _ = generate(seed=3, days=2)
    learning = Policy("egs", PoolSettings(8, quantile=0.0, recent_s=3_600.0, learn_s=7 * 86_400.0))
    for trace in (Trace(60.0, {"m": demand}), Trace(600.0, {"m": resample(demand, 10)})):
        _lead_blocks.cache_clear()
        simulate(trace, SCENARIO, learning, Window(1, 2))
        blocks = trace.samples * trace.step_s / learning.pool.lead_s
        assert _lead_blocks.cache_info().misses <= blocks + 1  # and the empty history before the first


def test_runs_at_two_quiet_hours_caps_work_each_blocks_spare_out_once_until_forgotten():
    demand, _ = generate(seed=3, days=2)
    trace = Trace(600.0, {"m": resample(demand, 10)})
    forget()
    assert _block_spare.cache_info().currsize == 0
    for quiet_nodes in (None, 1, 0):
        simulate(
            trace, SCENARIO, Policy("egs", PoolSettings(8, max_idle_nodes=4, quiet_nodes=quiet_nodes)), Window(1, 2)
        )
        if quiet_nodes is None:
            first = _block_spare.cache_info().misses
    assert _block_spare.cache_info().misses == first > 0
    forget()
    assert _block_spare.cache_info().currsize == 0
