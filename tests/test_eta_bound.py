"""The bound on a 202's slack: what any answer-time rule that knew the true delay law must leave.

Covers: `eta.ready_law` is the ETA rule's own model (its 0.95 quantile, on the step grid, is the rule's promise
where nothing is observed); `egs api` logs that law beside each 202 and the churn benchmark reads it back;
`least_mean_slack` spends the misses where they save the most slack, and on one fresh 5-10 minute order it
is the quantile's own spread (about 140 s). Skips: the churn runs themselves.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
from fastapi.testclient import TestClient

from autoscaler.eta import ClassCapacity, EtaSettings, least_mean_slack, queue_etas, ready_law
from autoscaler.kubetime import parse_time
from benchmarks.churnkit.figures import Promised, answered, promise_figures
from tests.test_endpoint_api import api, body, kube, post  # noqa: F401 (fixtures)

PRIOR = EtaSettings(prior_delay_s=(300.0, 600.0), step_s=60.0)
ONE_ORDER = tuple(300.0 + 3.0 * (i + 0.5) for i in range(100))
"""One fresh 5-10 minute order as equally likely points: each percent's middle of 300-600 s."""


@pytest.mark.parametrize(
    ("waiting", "per_node", "placed_at"),
    [(1, 8, ()), (17, 8, ()), (9, 8, (-200.0, -20.0)), (3, 1, (-450.0,)), (5, 4, (-100.0, -100.0, -10.0))],
)
def test_the_law_is_the_rules_own_model_where_nothing_is_observed(
    waiting: int, per_node: int, placed_at: tuple[float, ...]
) -> None:
    capacity = ClassCapacity(per_node, (), placed_at)
    loads = [30.0] * waiting
    promised = queue_etas(0.0, [1.0] * waiting, capacity, loads, (), PRIOR)[-1]
    start, served = ready_law(0.0, [1.0] * waiting, capacity, loads, PRIOR, resolution_s=PRIOR.step_s / 20)
    at_95 = (PRIOR.step_s / 20) * int(np.searchsorted(served, PRIOR.quantile - 1e-12))
    # The rule promises the 0.95 quantile rounded up to its step grid, plus the load.
    assert promised == pytest.approx(start + PRIOR.step_s * math.ceil(at_95 / PRIOR.step_s - 1e-9))


def test_the_api_logs_beside_a_202_the_law_its_queue_serves_by_and_the_benchmark_reads_it(
    api: TestClient,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="egs.api"):
        answer = post(api, body())
    assert answer.status_code == 202, answer.text
    eta = parse_time(answer.json()["estimatedReadyTime"])
    laws = {key: law for key, (_, law) in answered(caplog.text).items()}
    assert set(laws) == {("team-a/chat", math.ceil(eta))}
    law = laws[("team-a/chat", math.ceil(eta))]
    # One fresh order (300-600 s, ordered a 60 s step on): 100 points 3 s apart, the answer its 0.95 quantile
    # (585 s) on the step grid (600 s), written to the second.
    assert len(law) == 100
    assert np.diff(law) == pytest.approx(3.0, abs=0.01)
    assert 600.0 - 585.0 - 1.5 <= eta - law[94] < 600.0 - 585.0 + 1.5 + 1.0


def test_one_fresh_order_leaves_the_quantiles_spread_however_the_misses_are_spent() -> None:
    # Promising the 95th of 100 points 3 s apart: the mean distance to the 95 points kept, 3 x 94 / 2.
    assert least_mean_slack([ONE_ORDER] * 7, 0.95) == pytest.approx(141.0)


def test_the_misses_go_where_they_save_the_most_slack() -> None:
    certain = (100.0,) * 100
    # The certain answer is kept with no slack; the other need keep only 90 of its points: 3 x (90 x 89 / 2)
    # / 100 of slack, over 1.9 promises kept. Each at its own 0.95 would leave 3 x (95 x 94 / 2) / 100.
    assert least_mean_slack([certain, ONE_ORDER], 0.95) == pytest.approx(3 * 90 * 89 / 2 / 100 / 1.9)
    assert least_mean_slack([certain, ONE_ORDER], 0.95) < 3 * 95 * 94 / 2 / 100 / 1.9


def test_the_bound_figures_score_the_laws_own_095_promises_against_the_runs_ready_times() -> None:
    law = tuple(t / 20 for t in ONE_ORDER)  # compressed 20 times
    early = Promised("t/a", posted=0.0, eta=31.0, last=31.0, ready=20.0, law=law)
    late = Promised("t/b", posted=0.0, eta=31.0, last=31.0, ready=29.5, law=law)
    figures = promise_figures([early, late], factor=20.0)
    assert figures["eta_bound_slack_s"] == pytest.approx(141.0, abs=0.1)
    assert figures["eta_bound_q95_slack_s"] == pytest.approx(141.0, abs=0.1)
    # Its 0.95 promise is its 95th point, 583.5 s: the first Ready at 400 s is kept by 183.5 s, the second at
    # 590 s is not.
    assert figures["eta_bound_q95_kept"] == 0.5
    assert figures["eta_bound_q95_realized_slack_s"] == pytest.approx(183.5, abs=0.1)
    lawless = promise_figures([Promised("t/c", 0.0, 31.0, 31.0, 20.0)], 20.0)
    bound = ("eta_bound_slack_s", "eta_bound_q95_slack_s", "eta_bound_q95_kept", "eta_bound_q95_realized_slack_s")
    assert [lawless[k] for k in bound] == [None] * 4
