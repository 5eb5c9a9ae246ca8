"""`PromiseKept` carries `observedGeneration` as the endpoint's other conditions do (KEP-1623), when a promise
is revised and on every loop that carries the revision over: a reader tells from it, as from `Ready`, which
spec the condition speaks of. Covers the decide step's status; docs/operations.md says the same."""

from __future__ import annotations

from autoscaler.decide import Observation, decide
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, h100, signals
from tests.test_reconcile_state import applied, observed, promised


def test_promise_kept_carries_the_generation_revised_and_carried_over() -> None:
    eps = [promised("chat", "Accepted", "H100-80GB", eta=NOW - 10)]  # overdue: revised now
    nodes = [h100("gpu-0")]
    first = decide(Observation(nodes, eps, signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    owned, pods = applied(first, ready=False)
    at = NOW + 5  # before the revised ETA: the revision is carried over, not made again
    second = decide(
        Observation(nodes, observed(first, eps), owned, signals(age_s=5), pods=pods), SETTINGS, REGISTRY, CATALOG, at
    )
    assert second.events == ()
    for decision in (first, second):
        conditions = {c["type"]: c for c in decision.statuses[("team-a", "chat")]["conditions"]}
        assert conditions["PromiseKept"]["status"] == "False"
        assert {t: c.get("observedGeneration") for t, c in conditions.items()} == dict.fromkeys(conditions, 3)
