"""The hindsight bound of the warm-pool fit (`benchmarks/warm_pool_bound.py`): which configurations it tries
and how its three picks relate. What the bound is on the generator's seeds is the benchmark's business."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from autoscaler.adapters.files import read_scenario
from autoscaler.fitting import LEARNING, LEVELS, rung_of
from autoscaler.simulator import Policy, Scenario, pool_settings
from benchmarks.warm_pool import EXAMPLES, cases
from benchmarks.warm_pool_bound import bound, configurations, label, summary


def _scenario() -> Scenario:
    return read_scenario(EXAMPLES / "scenario-synthetic.yaml")


def test_the_bound_tries_static_auto_and_every_rung_the_fit_chooses_among_at_its_cap():
    scenario = _scenario()
    tried = configurations(scenario, 3)
    assert Policy("static", pool_settings(scenario, 3)) in tried
    at_k = {
        rung_of(p.pool) for p in tried if p.name == "egs" and p.pool.max_idle_nodes == 3 and p.pool.quiet_nodes == 0
    }
    assert at_k == set(LEARNING + LEVELS)
    assert {rung_of(p.pool) for p in tried if p.name == "egs" and p.pool.still_up_s} == set(LEARNING)
    assert all(p.pool.max_idle_nodes != 0 for p in tried if p.name == "egs")  # a cap of 0 is static:0


def test_a_configuration_is_labelled_as_the_warm_pool_docs_write_a_fit():
    scenario = _scenario()
    tried = configurations(scenario, 2)
    learnt = tried[6]  # after static:0 ... static:5, learning alone at a cap of 1
    assert label(learnt) == "learn 7 d; <= 1"
    assert label(replace(learnt, pool=replace(learnt.pool, still_up_s=10_800.0))) == "learn 7 d, still up 3 h; <= 1"
    first_level = next(p for p in tried if p.name == "egs" and not p.pool.learn_s)  # LEVELS[0] at a cap of 1
    assert label(first_level) == "no pool; <= 1"
    assert label(replace(first_level, pool=replace(first_level.pool, recent_s=3_600.0))) == "q 0 of 150, 1 h; <= 1"
    assert label(Policy("static", pool_settings(scenario, 2))) == "static:2"


def test_no_pick_costs_more_than_static_auto_and_the_rules_pick_no_less_than_hindsights():
    # synthetic-0 with a few static pools and learning at static:auto's cap: static:auto is among them, so
    # the hindsight pick costs at most as much; the rule's pick is one of the hindsight candidates.
    case = next(c for c in cases(0, range(1)) if c.name == "synthetic-0")

    def few(scenario: Scenario, k: int) -> list[Policy]:
        learn = replace(pool_settings(scenario), learn_s=7 * 86_400.0, max_idle_nodes=k)
        return [*(Policy("static", pool_settings(scenario, n)) for n in range(k + 2)), Policy("egs", learn)]

    picks = bound(case, Path("unused"), few)
    assert picks["configurations"] == picks["static_k"] + 3
    assert picks["hindsight"]["cost_over_static_auto"] <= 1.0
    assert picks["rule"]["cost_over_static_auto"] >= picks["hindsight"]["cost_over_static_auto"]
    assert picks["targets"]["p99_wait_s"] <= 60 and picks["targets"]["frac_wait_gt_60s"] <= 0.005
    assert summary({"synthetic-0": picks})["rule_seeds"] == 1
