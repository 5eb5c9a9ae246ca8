"""The controller's 202 promises move earlier only on evidence, and never later that way: once the
node came and kube-scheduler bound the endpoint's pods, what is left is the model load, so the promise
is moved to now + load + two loop periods (the ETA step where none was measured: test_revised_promises.py),
in `status.promise` with a Normal Event (PromiseKept untouched); a pod still unbound, or an estimate later
than the promise, moves nothing; the loops after write the same status and say nothing; over any inputs,
`keep` never drops a promise before Ready and never moves one later but through PromiseKept=False."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.decide import Observation, decide, rfc3339
from autoscaler.decide.state import ACCEPTED, CREATED, Promise, keep
from autoscaler.kubetime import deadline
from tests.test_decide import CATALOG, MODEL, NOW, REGISTRY, SETTINGS, h100, signals
from tests.test_reconcile_state import applied, observed, promised

KEY = ("team-a", "chat")


def _loading(eta: float, bound: bool = True) -> tuple[Observation, list[dict[str, Any]]]:
    """A 202 for `chat` promised by `eta` whose H100 node has come; its pod bound (or not) and loading."""
    eps = [promised("chat", "Accepted", "H100-80GB", eta=eta)]
    nodes = [h100("gpu-0")]
    first = decide(Observation(nodes, eps, signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    owned, pods = applied(first, ready=False)
    if not bound:
        for pod in pods:
            pod["spec"].pop("nodeName")
            pod["status"] = {"phase": "Pending"}
    return Observation(nodes, eps, owned, signals(), pods=pods), eps


RETRIES_S = 6.0
"""What one loop's write retries add to a promise moved earlier: SETTINGS' three, each at most the last (2 s)."""


def _load_s() -> float:
    return REGISTRY.get(MODEL).variant("bf16").load_seconds


def test_a_promise_moves_earlier_when_the_pods_are_bound_and_load() -> None:
    obs, eps = _loading(eta=NOW + 900)
    at = NOW + 30
    moved = decide(obs, SETTINGS, REGISTRY, CATALOG, at)
    status = moved.statuses[KEY]
    expected = at + _load_s() + 2 * SETTINGS.eta.step_s + RETRIES_S
    assert expected < NOW + 900
    assert status["promise"]["estimatedReadyTime"] == status["estimatedReadyTime"] == deadline(expected)
    assert status["promise"]["answer"] == "Accepted"
    assert not any(c["type"] == "PromiseKept" for c in status["conditions"])
    assert [(e.type, e.reason, e.action) for e in moved.events] == [("Normal", "CapacityArrived", "Revise")]
    # The next loop, still loading: the estimate is later than the moved promise, which stays; nothing said.
    again = decide(
        Observation(obs.nodes, observed(moved, eps), obs.owned, signals(), pods=obs.pods),
        SETTINGS,
        REGISTRY,
        CATALOG,
        at + 20,
    )
    assert again.events == ()
    assert json.dumps(again.statuses[KEY], sort_keys=True) == json.dumps(status, sort_keys=True)


def test_a_promise_stays_while_a_pod_is_unbound_or_the_load_ends_after_it() -> None:
    unbound, _ = _loading(eta=NOW + 900, bound=False)
    held = decide(unbound, SETTINGS, REGISTRY, CATALOG, NOW + 30)
    assert held.statuses[KEY]["estimatedReadyTime"] == rfc3339(NOW + 900) and held.events == ()
    close, _ = _loading(eta=NOW + 60)  # the load would end after the promise: it is not moved later
    kept = decide(close, SETTINGS, REGISTRY, CATALOG, NOW + 30)
    assert kept.statuses[KEY]["estimatedReadyTime"] == rfc3339(NOW + 60) and kept.events == ()


@settings(max_examples=300, deadline=None)
@given(
    promised_in=st.one_of(st.none(), st.floats(-600, 1200)),
    made_in=st.one_of(st.none(), st.floats(-600, 1200)),
    phase=st.sampled_from(["Ready", "Provisioning", "Pending", "Degraded"]),
    waiting=st.integers(0, 3),
    overdue_said=st.booleans(),
)
def test_a_promise_is_never_dropped_and_never_later_but_through_promise_kept_false(
    promised_in: float | None, made_in: float | None, phase: str, waiting: int, overdue_said: bool
) -> None:
    promise = Promise(ACCEPTED, NOW + promised_in) if promised_in is not None else Promise(CREATED)
    made = Promise(ACCEPTED if waiting else CREATED, NOW + made_in if made_in is not None else None)
    after = keep(promise, made, phase, waiting, NOW, overdue_said)
    if phase == "Ready":
        assert after.promise is None
        return
    assert after.promise is not None and after.promise.eta == after.eta  # never dropped
    if promise.eta is not None and after.eta is not None and after.eta > promise.eta:
        assert after.revised is not None  # later only with a reason: PromiseKept=False
    if after.sooner is not None:
        assert promise.eta is not None and after.eta is not None and NOW < after.eta < promise.eta
        assert after.revised is None and not waiting
