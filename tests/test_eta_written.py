"""A promise is written to the second (metav1.Time's resolution): rounded up, so that what the user reads
is never earlier than the ETA the controller or the API made, and read back, the same promise does not
look later than a fresh estimate within its second (which would move it 'earlier' every loop)."""

from __future__ import annotations

from autoscaler.decide.state import ACCEPTED, Promise, keep, promise_of
from autoscaler.kubetime import deadline, parse_time

NOW = 1_700_000_000.0


def test_a_promise_is_written_no_earlier_than_it_was_made() -> None:
    for frac in (0.0, 0.01, 0.4, 0.99):
        eta = NOW + 600 + frac
        assert parse_time(deadline(eta)) >= eta
        assert parse_time(deadline(eta)) - eta < 1.0
    promise = Promise(ACCEPTED, NOW + 600.4)
    assert parse_time(promise.as_status()["estimatedReadyTime"]) >= NOW + 600.4


def test_a_promise_read_back_is_not_moved_earlier_by_an_estimate_within_its_second() -> None:
    made = Promise(ACCEPTED, NOW + 300.4)
    recorded = promise_of({"metadata": {}, "status": {"phase": "Provisioning", "promise": made.as_status()}})
    assert recorded is not None
    # nothing waits: its pods load, and the estimate is the same instant it was recorded from
    after = keep(recorded, made, "Provisioning", 0, NOW)
    assert after.sooner is None
    assert after.promise == recorded
    # a whole second earlier is evidence: moved
    sooner = keep(recorded, Promise(ACCEPTED, NOW + 299.0), "Provisioning", 0, NOW)
    assert sooner.sooner is not None and sooner.eta == NOW + 299.0
