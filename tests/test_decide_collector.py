"""The decide step runs with Python's cyclic garbage collector paused (`autoscaler.decide.collector`): at
1,000 endpoints its full collections went over the whole observation 2-3 times a step to find a few dozen
objects. The collector must come back on after the step (one that raised too), after the last of steps that
overlap (the API decides from several threads), and stay off where it was off before."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import autoscaler.decide as decide_step
from autoscaler.decide import Observation, decide
from autoscaler.decide.collector import collector_paused
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, h100


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_the_decide_step_runs_with_the_collector_paused_and_turns_it_back_on(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    parse = decide_step.parse_endpoints

    def parse_endpoints(*args: Any) -> Any:
        seen.append(gc.isenabled())
        return parse(*args)

    monkeypatch.setattr(decide_step, "parse_endpoints", parse_endpoints)
    decision = decide(Observation([h100("n1")], [endpoint()], (), {}), SETTINGS, REGISTRY, CATALOG, NOW)
    assert decision.endpoints  # it decided
    assert seen == [False]
    assert gc.isenabled()


def test_the_collector_comes_back_after_the_last_of_overlapping_steps() -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    during: list[bool] = []

    def second() -> None:
        with collector_paused():
            second_in.set()
            first_out.wait(5)
            during.append(gc.isenabled())

    with collector_paused():
        first_in.set()
        thread = threading.Thread(target=second)
        thread.start()
        assert second_in.wait(5)
    first_out.set()
    thread.join(5)
    assert during == [False]  # the first step's end left the second's pause alone
    assert gc.isenabled()


def test_a_collector_off_before_the_step_stays_off() -> None:
    gc.disable()
    with collector_paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_a_step_that_raises_turns_the_collector_back_on() -> None:
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("the step failed")
    assert gc.isenabled()


def test_steps_that_overlap_from_many_threads_leave_the_collector_on_once_all_end() -> None:
    """Threads entering and leaving in every interleaving, some raising: off while any runs, on after."""
    start = threading.Barrier(8)
    seen_on: list[bool] = []

    def steps(i: int) -> None:
        start.wait(5)
        for j in range(200):
            try:
                with collector_paused():
                    time.sleep(0.0001)  # another thread enters or leaves meanwhile
                    seen_on.append(gc.isenabled())
                    if (i + j) % 7 == 0:
                        raise ValueError(j)
            except ValueError:
                pass

    threads = [threading.Thread(target=steps, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(seen_on) == 1600 and not any(seen_on)
    assert gc.isenabled()
