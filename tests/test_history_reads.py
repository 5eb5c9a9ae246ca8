"""The controller reads the week of demand history once, then only what is new.

Covers: against a real Prometheus holding backfilled demand (promtool), a second and third loop ask for
a short range and hand the decide step the same history as one read of the whole week; a failed read
reads the whole week again (a standby keeps it warm for when it leads: tests/test_handover.py);
`extended` drops a model whose samples left the window, as a whole read does; a step that moved within
the overlap (late samples) is taken from the new read (on plain data: Prometheus cannot be made to
ingest a sample in the past on cue here).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping

import pytest

from autoscaler.adapters.prometheus import DEMAND, MetricsUnavailable, PrometheusMetrics
from autoscaler.controller import HISTORY_OVERLAP_S, HISTORY_STEP_S
from autoscaler.signals import History, Snapshot, extended
from localplay.kube_standin import KubeCluster
from localplay.localstack import Prometheus
from tests.clock import Clock
from tests.test_controller import FixedSignals, controller

WEEK = 7 * 86_400.0
END = float(int(time.time()) // 60 * 60 - 120)
"""The newest backfilled sample: two minutes ago, so that nothing Prometheus does now moves a step."""


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Three hours of demand for two models, a sample a minute, one with a gap and one that stopped."""
    work = tmp_path_factory.mktemp("prom-history")
    lines = [f"# TYPE {DEMAND} gauge"]
    for i in range(180, -1, -1):
        t = END - 60 * i
        if not 100 < i < 130:  # a half-hour collection gap
            lines.append(f'{DEMAND}{{model_name="llama"}} {1 + (i * 7919) % 13 / 4} {t:.0f}')
        if i > 60:  # stopped an hour ago
            lines.append(f'{DEMAND}{{model_name="mistral"}} {0.5 + i % 5} {t:.0f}')
    prom = Prometheus(work / "prom", [], interval="1s").backfill(lines).start()
    try:
        yield prom
    finally:
        prom.stop()


class Asked:
    """The Prometheus adapter, remembering how much history each loop asked for."""

    def __init__(self, inner: PrometheusMetrics | FixedSignals, fail: int = 0) -> None:
        self.inner, self.fail = inner, fail
        self.asked: list[float] = []

    def snapshot(self, at: float, history_s: float, step_s: float, live: bool = True) -> Snapshot:
        self.asked.append(history_s)
        if self.fail:
            self.fail -= 1
            raise MetricsUnavailable("Prometheus: down for this test")
        return self.inner.snapshot(at, history_s, step_s, live)


def comparable(history: Mapping[str, History]) -> dict[str, tuple[float, float, tuple[float | None, ...]]]:
    """NaN as None, so that two histories compare equal where both have no sample."""
    return {m: (h.start_s, h.step_s, tuple(None if math.isnan(v) else v for v in h.values)) for m, h in history.items()}


def test_later_loops_read_a_short_range_and_hand_on_the_whole_weeks_history(
    kube: KubeCluster, backfilled: Prometheus
) -> None:
    clock = Clock(END - 1234.5)
    reads = Asked(PrometheusMetrics(backfilled.url, timeout_s=10))
    ctl = controller(kube, reads, clock=clock)
    whole = PrometheusMetrics(backfilled.url, timeout_s=10)
    for moved in (0.0, 30.0, 700.0):  # the same step, then across two step boundaries
        clock.t += moved
        outcome = ctl.reconcile()
        assert outcome.errors == [] and outcome.observation is not None
        handed = comparable(outcome.observation.history)
        assert handed == comparable(whole.snapshot(clock.t, WEEK, HISTORY_STEP_S).history)
        assert set(handed) == {"llama", "mistral"}
    assert reads.asked == [WEEK, 30.0 + HISTORY_OVERLAP_S, 700.0 + HISTORY_OVERLAP_S]


def test_a_failed_read_reads_the_whole_week_again(kube: KubeCluster) -> None:
    clock = Clock(1_800_000_000.0)
    reads = Asked(FixedSignals(demand=1.0), fail=0)
    ctl = controller(kube, reads, clock=clock)
    ctl.reconcile()
    clock.t += 30
    ctl.reconcile()
    reads.fail = 1
    clock.t += 30
    assert ctl.reconcile().observation.signals is None  # type: ignore[union-attr]
    clock.t += 30
    ctl.reconcile()
    clock.t += 30
    ctl.reconcile()
    assert reads.asked == [WEEK, 30 + HISTORY_OVERLAP_S, 30 + HISTORY_OVERLAP_S, WEEK, 30 + HISTORY_OVERLAP_S]


def test_a_model_whose_samples_left_the_window_is_dropped_as_a_whole_read_drops_it() -> None:
    kept = {"gone": History(0.0, 10.0, (1.0, math.nan, math.nan)), "kept": History(0.0, 10.0, (1.0, 2.0, 3.0))}
    fresh = {"new": History(20.0, 10.0, (5.0, 6.0))}
    joined = extended(kept, fresh, 15.0, 5.0, 30.0, 10.0)
    assert comparable(joined) == {"kept": (10.0, 10.0, (2.0, None, None)), "new": (10.0, 10.0, (None, 5.0, 6.0))}


def test_a_step_that_moved_since_it_was_kept_is_taken_from_the_new_read() -> None:
    # Read at 25: the step at 20 had only its early samples; the read at 55 from 15 on (the overlap) has all.
    kept = {"llama": History(0.0, 10.0, (1.0, 2.0, 3.0))}
    fresh = {"llama": History(20.0, 10.0, (4.0, 5.0, 6.0, 7.0))}
    joined = extended(kept, fresh, 15.0, 5.0, 55.0, 10.0)
    assert comparable(joined) == {"llama": (10.0, 10.0, (2.0, 4.0, 5.0, 6.0, 7.0))}
