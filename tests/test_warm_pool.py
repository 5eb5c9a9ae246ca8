"""`benchmarks/warm_pool.py`'s verdicts: a trace that misses its target on ETA slack alone, where no promise rule
could have met the slack target (the bound over it), is told apart from one a rule could have met."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autoscaler.fitting import Protocol
from autoscaler.simulator import Result, Trace
from benchmarks.warm_pool import Case, slack_alone_past_bound, summary


def _nothing(data: Path) -> Trace:
    raise AssertionError("no trace is loaded")


SYNTHETIC = Case("synthetic-0", _nothing, "scenario-synthetic.yaml", Protocol(10, 4), "synthetic", "synthetic")


def _egs(p99_s: float, slack_s: float, bound_s: float, kept: float = 1.0) -> dict[str, Result]:
    egs = Result(
        policy="egs", p50_wait_s=0.0, p95_wait_s=0.0, p99_wait_s=p99_s, max_wait_s=p99_s, frac_wait_gt_60s=0.0,
        short_replica_minutes=0.0, node_hours=1.0, idle_gpu_hours=0.0, cost_usd=1.0, eta_promised=4,
        eta_kept_frac=kept, eta_mean_slack_s=slack_s, replicas_added=1000, eta_bound_slack_s=bound_s,
    )  # fmt: skip
    return {"egs": egs}


@pytest.mark.parametrize(
    ("p99_s", "slack_s", "bound_s", "kept", "past"),
    [
        (0.0, 420.0, 234.0, 1.0, True),  # synthetic-1min-0 with 5-20 minute orders: no rule could have kept 120 s
        (0.0, 180.0, 92.0, 1.0, False),  # synthetic-9 with 5-10 minute orders: a rule could have, in expectation
        (600.0, 420.0, 234.0, 1.0, False),  # missed on p99 too
        (0.0, 420.0, 234.0, 0.9, False),  # and on the promises kept
        (0.0, 60.0, 234.0, 1.0, False),  # met
    ],
)
def test_a_miss_on_eta_slack_alone_past_the_bound_is_told_apart(p99_s, slack_s, bound_s, kept, past):
    out: dict[str, Any] = {}
    assert slack_alone_past_bound(SYNTHETIC, out, _egs(p99_s, slack_s, bound_s, kept)) is past


def test_the_summary_counts_the_misses_on_slack_alone_past_the_bound_beside_the_targets_met():
    def scored(meets: bool, past: bool) -> dict[str, Any]:
        egs = {"p99_wait_s": 0.0, "frac_wait_gt_60s": 0.0, "eta_kept_frac": 1.0}
        return {"kind": "public", "policies": {"egs": egs, "static:auto": egs}, "egs_cost_over_static_auto": 1.0,
                "static_dominates_egs": False, "egs_cpu_over_reactive": 1.0, "meets_target": meets,
                "slack_alone_past_bound": past}  # fmt: skip

    out = summary({"a": scored(True, False), "b": scored(False, True), "c": scored(False, False)})
    assert (out["traces_meeting_target"], out["traces_missing_on_slack_alone_past_bound"], out["traces"]) == (1, 1, 3)
