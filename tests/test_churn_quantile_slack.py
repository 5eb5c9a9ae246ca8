"""Where a 202's slack comes from: the churn benchmark reports, beside the mean slack of the first promises
kept, the slack their 0.95 quantile alone leaves (`eta_quantile_slack_s`: the promise less the median the
same ETA rule gave then), as the warm-pool benchmark does.

Covers: `egs api` logs that median at debug beside each 202 it answers, and the benchmark reads it back
for that answer; the figure averages the first promises kept only. Skips: the runs themselves.
"""

from __future__ import annotations

import logging
import math

import pytest
from fastapi.testclient import TestClient

from autoscaler.kubetime import parse_time
from benchmarks.churnkit.figures import Promised, answered, promise_figures
from tests.test_decide import SETTINGS
from tests.test_endpoint_api import api, body, kube, post  # noqa: F401 (fixtures)


def test_the_api_logs_beside_a_202_the_median_its_rule_gives_and_the_benchmark_reads_it(
    api: TestClient,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="egs.api"):
        answer = post(api, body())
    assert answer.status_code == 202, answer.text
    eta = parse_time(answer.json()["estimatedReadyTime"])
    medians = {key: median for key, (median, _) in answered(caplog.text).items()}
    assert set(medians) == {("team-a/chat", math.ceil(eta))}
    # One fresh order under the prior 300-600 s, on the step grid: its 95th percentile 585 s -> 600 s
    # at a 60 s step, its median 450 s -> 480 s; the step and the load are the same in both, and the
    # answer is written to the second, rounded up.
    assert SETTINGS.eta.step_s == 60.0
    assert 120.0 <= eta - medians[("team-a/chat", math.ceil(eta))] < 121.0


def test_the_quantiles_slack_is_averaged_over_the_first_promises_kept() -> None:
    kept = Promised("t/a", posted=0.0, eta=30.0, last=30.0, ready=25.0, median=24.0)
    kept_too = Promised("t/b", posted=0.0, eta=40.0, last=40.0, ready=20.0, median=36.0)
    broken = Promised("t/c", posted=0.0, eta=30.0, last=30.0, ready=31.0, median=10.0)
    figures = promise_figures([kept, kept_too, broken], factor=20.0)
    assert figures["eta_mean_slack_s"] == (5.0 + 20.0) / 2 * 20
    assert figures["eta_quantile_slack_s"] == (6.0 + 4.0) / 2 * 20
    assert promise_figures([broken], factor=20.0)["eta_quantile_slack_s"] is None
