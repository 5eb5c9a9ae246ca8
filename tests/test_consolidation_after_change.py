"""An endpoint stays put while its replica count settles, and for `consolidateAfter` after a move (issue 16).

Karpenter's `consolidateAfter` counts from the last pod added to or removed from a node. EGS's counted from the
endpoint's last move alone, so an endpoint answered 201 (or scaled) a minute before could be moved as soon as it
served. 3f66b1f counted the whole `consolidateAfter` (an hour) from a replica change too, so an endpoint whose
replicas follow demand was never moved (rev14 finding 3). Now a replica change (a pod of it made or turned Ready,
its replica count changed: `status.lastScaleTime`, which a scale-down leaves once its pods are gone) holds it for
the scale-down stabilization window, while its count settles, and a move for `consolidateAfter`: all read from
the cluster, so a new leader keeps it put as well.
"""

from __future__ import annotations

from typing import Any

from autoscaler.decide import Decision, Observation, decide, rfc3339
from autoscaler.decide.state import Move
from autoscaler.decide.status import last_scale
from tests.test_consolidation_moves_counted import with_move_recorded
from tests.test_consolidation_within_class import moves
from tests.test_decide import CATALOG, NOW, REGISTRY, endpoint, h100, signals, training
from tests.test_leaving_pods import running_two
from tests.test_reconcile_state import CONSOLIDATING, applied, l40s, observed

AFTER = CONSOLIDATING.consolidation.consolidate_after_s
SETTLE = CONSOLIDATING.scale_down_stabilization_s
LONG_AGO = NOW - 10 * AFTER


def chat_serving(
    made: float = LONG_AGO, ready: float = LONG_AGO, scaled: float | None = None, moved: float | None = None
) -> Decision:
    """chat serving on an H100 with an L40S free beside it (a cheaper shape): its pod made at `made` and Ready
    since `ready`, its replica count last changed at `scaled` (None: never), its last move done at `moved` (None:
    never moved); the decision now."""
    nodes = [l40s("l40s-0"), h100("gpu-0")]
    first = decide(Observation(nodes, [endpoint()], signals=signals(), pods=[training("l40s-0", 1)]),
                   CONSOLIDATING, REGISTRY, CATALOG, LONG_AGO)  # fmt: skip
    assert first.endpoints[0].gpu_class == "H100-80GB"
    owned, pods = applied(first)
    for pod in pods:
        pod["metadata"]["creationTimestamp"] = rfc3339(made)
        pod["status"]["conditions"][0]["lastTransitionTime"] = rfc3339(ready)
    eps: list[dict[str, Any]] = observed(first, [endpoint()])
    if scaled is not None:
        eps[0]["status"]["lastScaleTime"] = rfc3339(scaled)
    if moved is not None:
        eps[0] = with_move_recorded(eps[0], Move(moved, "team-a", (), nodes=("l40s-9",)))
    return decide(Observation(nodes, eps, owned, signals(), pods=pods), CONSOLIDATING, REGISTRY, CATALOG, NOW)


def test_an_endpoint_whose_pod_was_made_lately_is_not_moved_until_its_count_settles() -> None:
    assert moves(chat_serving()) == ["chat"]
    assert moves(chat_serving(made=NOW - 60, ready=NOW - 30)) == []  # a 201 a minute old, serving
    assert moves(chat_serving(made=NOW - SETTLE - 10, ready=NOW - SETTLE + 100)) == []  # Ready lately
    assert moves(chat_serving(made=NOW - SETTLE - 20, ready=NOW - SETTLE - 10)) == ["chat"]


def test_an_endpoint_scaled_lately_is_not_moved_until_its_count_settles() -> None:
    # A scale-down leaves no pod to read once its surplus one is gone: the status's lastScaleTime says it.
    assert moves(chat_serving(scaled=NOW - 60)) == []
    assert moves(chat_serving(scaled=NOW - SETTLE - 10)) == ["chat"]


def test_a_replica_change_holds_an_endpoint_while_its_count_settles_and_a_move_for_consolidate_after() -> None:
    # rev14 finding 3: an endpoint whose replicas follow demand changes its count more often than hourly; held
    # for consolidateAfter from each change (3f66b1f), it never moved.
    assert SETTLE < 600 < AFTER
    assert moves(chat_serving(made=NOW - 600, ready=NOW - 600)) == ["chat"]
    assert moves(chat_serving(scaled=NOW - 600)) == ["chat"]
    assert moves(chat_serving(moved=NOW - 600)) == []  # the move's payback floor
    assert moves(chat_serving(moved=NOW - AFTER - 10)) == ["chat"]


def test_a_changed_replica_count_is_recorded_as_last_scale_time_and_kept_while_it_stays() -> None:
    scaled = running_two(endpoint("chat", lo=1, hi=1))  # decided at NOW + 20: two replicas to one
    status = scaled.statuses[("team-a", "chat")]
    assert status["desiredReplicas"] == 1 and status["lastScaleTime"] == rfc3339(NOW + 20)
    kept = running_two(endpoint("chat", lo=2, hi=2))
    assert "lastScaleTime" not in kept.statuses[("team-a", "chat")]
    # Kept as written while the count stays: a quiet loop writes nothing.
    again = {"desiredReplicas": 1, "lastScaleTime": status["lastScaleTime"]}
    assert last_scale(again, 1, NOW + 600) == status["lastScaleTime"]
    assert last_scale(again, 2, NOW + 600) == rfc3339(NOW + 600)
