"""A 202's promise moved earlier once its pods are bound counts the retries of one loop whose writes fail.

Covers: the decide step's margin, two loop periods and the write retries' waits configured
(`Settings.write_retry_delays_s`), each at most the last (a 429's Retry-After). Seed 7's churn run (after
0fa8021) showed team-b/late-1 Ready 2 s after such a promise: its pod turned Ready while a loop retried a
failing apply for 3.25 s, longer than the two periods measured before. Skips: the churn run itself.
"""

from __future__ import annotations

from dataclasses import replace

from autoscaler.decide import decide
from autoscaler.kubetime import deadline
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS
from tests.test_decide_promises import KEY, _load_s, _loading

PERIOD = SETTINGS.eta.step_s + 2.0
"""The interval and a loop of 2 s, measured."""


def _moved(delays: tuple[float, ...]) -> str:
    obs, _ = _loading(eta=NOW + 900)
    settings = replace(SETTINGS, write_retry_delays_s=delays)
    decision = decide(replace(obs, loop_period_s=PERIOD), settings, REGISTRY, CATALOG, NOW + 30)
    return str(decision.statuses[KEY]["promise"]["estimatedReadyTime"])


def test_a_promise_moved_earlier_counts_two_loop_periods_and_one_loops_retries() -> None:
    # Three retries, each wait at most the last (2 s): 6 s more than the periods alone.
    assert _moved((0.25, 1.0, 2.0)) == deadline(NOW + 30 + _load_s() + 2 * PERIOD + 6.0)


def test_without_retries_configured_the_periods_alone_count() -> None:
    assert _moved(()) == deadline(NOW + 30 + _load_s() + 2 * PERIOD)
