"""What served a 202 before its rule's median: the churn benchmark classifies each first promise kept by
the capacity its last pod was bound on (`Play.early_cause`) and reports per class how many and how early
(`eta_early_by_cause`), so that the bias a promise could have known is told from what no answer can know.

Covers: its own order, an order in flight at the answer, an order for pods queued ahead of it or after it,
a node nobody ordered, a GPU free at the answer and one freed after it, a reposted endpoint's incarnations
told apart; the figure's grouping. Skips: the runs.
"""

from __future__ import annotations

import random
from typing import Any, cast

from benchmarks.churnkit.figures import Promised, promise_figures
from benchmarks.churnkit.play import Play, Pod
from scheduler.inventory import Allocation

AFTER = "an order for pods queued after it"


def play() -> Play:
    return Play(cast(Any, None), cast(Any, None), cast(Any, None), random.Random(0), factor=20.0)


def bind(
    p: Play, endpoint: str, node: str, at: float, gpus: tuple[int, ...] = (0,), gone: float | None = None, uid: str = ""
) -> Pod:
    """A pod of `endpoint` (its incarnation `uid`, else `uid-<endpoint>`) bound on `node` at `at`."""
    pod = Pod("t", f"{endpoint}-{at}", endpoint, f"t/{endpoint}", {}, 1.0, "H100", (at - 30.0, 0), node, at)
    pod.uid = uid or f"uid-{endpoint}"
    pod.held, pod.gone_at = (Allocation(node, gpus),), gone
    p.binds.append((at, pod))
    return pod


def test_each_kept_promise_is_classified_by_the_capacity_its_last_pod_was_bound_on() -> None:
    p = play()
    p.orders = {
        "h100-new-1": (5.0, 400.0, (("uid-a", (5.0, 1)),)),
        "h100-new-2": (12.0, 400.0, (("uid-x", (1.0, 2)), ("uid-y", (11.0, 3)))),
        "h100-new-3": (20.0, 480.0, (("uid-x", (1.0, 2)), ("uid-a", (5.0, 1)))),
        "h100-new-4": (20.0, 400.0, (("uid-x", (1.0, 2)),)),
    }
    p.arrived = {"h100-late-1": 30.0, "h100-fleet-0": 1.0}
    bind(p, "a", "h100-new-1", 40.0)
    assert p.early_cause("uid-a", posted=10.0, ready=50.0)[0] == "an order in flight at the answer"
    assert p.early_cause("uid-a", posted=2.0, ready=50.0)[0] == "its own order"
    # Queued at 11 (bound at 41): one pod of the order's was queued after it, at 11.0 and a later version.
    bind(p, "b", "h100-new-2", 41.0)
    assert p.early_cause("uid-b", posted=11.0, ready=50.0)[0] == "an order for pods queued after it"
    bind(p, "c", "h100-new-4", 42.0)
    assert p.early_cause("uid-c", posted=11.0, ready=50.0)[0] == "an order for pods queued ahead of it"
    bind(p, "a", "h100-new-3", 45.0)
    assert p.early_cause("uid-a", posted=2.0, ready=50.0)[0] == "its own order"
    bind(p, "d", "h100-late-1", 35.0)
    assert p.early_cause("uid-d", posted=25.0, ready=50.0)[0] == "a node nobody ordered, joined later"
    # On a node there at the answer: GPU 0 held then by a pod that went at 28, GPU 1 free all along.
    bind(p, "old", "h100-fleet-0", 3.0, gone=28.0)
    bind(p, "e", "h100-fleet-0", 29.0)
    assert p.early_cause("uid-e", posted=25.0, ready=50.0)[0] == "a GPU freed after the answer"
    bind(p, "f", "h100-fleet-0", 29.0, gpus=(1,))
    assert p.early_cause("uid-f", posted=25.0, ready=50.0)[0] == "a GPU free at the answer"
    # The pod that gates its Ready is the last bound before it: one bound before its POST is another's.
    assert p.early_cause("uid-f", posted=30.0, ready=50.0) == ("not bound", "", None)
    assert p.early_cause("uid-a", posted=2.0, ready=50.0)[1:] == ("h100-new-3", 480.0)
    assert p.early_cause("uid-d", posted=25.0, ready=50.0)[1:] == ("h100-late-1", None)


def test_a_reposted_endpoints_promise_is_classified_by_its_own_incarnations_pods_and_orders() -> None:
    """A reposted endpoint has its first incarnation's name: neither that one's pods nor the node ordered for
    them are the new one's (the benchmark keys its promises by uid)."""
    p = play()
    p.orders = {"h100-new-1": (12.0, 400.0, (("uid-a1", (5.0, 1)),))}
    p.arrived = {"h100-fleet-0": 1.0}
    bind(p, "a", "h100-new-1", 40.0, uid="uid-a2")
    bind(p, "a", "h100-fleet-0", 45.0, uid="uid-a1")  # the first incarnation's last pod, bound after the repost
    assert p.early_cause("uid-a2", posted=10.0, ready=50.0) == (
        "an order for pods queued ahead of it",
        "h100-new-1",
        400.0,
    )


def test_the_early_seconds_are_grouped_by_cause_over_the_first_promises_kept() -> None:
    own = Promised(
        "t/a", posted=0.0, eta=30.0, last=30.0, ready=20.0, median=21.0, cause=("its own order", "n1", 300.0)
    )
    own_too = Promised(
        "t/b", posted=0.0, eta=30.0, last=30.0, ready=24.0, median=21.0, cause=("its own order", "n1", 300.0)
    )
    later = Promised("t/c", posted=0.0, eta=40.0, last=40.0, ready=10.0, median=20.0, cause=(AFTER, "n2", None))
    broken = Promised(
        "t/d", posted=0.0, eta=30.0, last=30.0, ready=31.0, median=20.0, cause=("its own order", "n3", 500.0)
    )
    figures = promise_figures([own, own_too, later, broken], factor=20.0)
    assert figures["eta_early_by_cause"] == {
        "its own order": {"promises": 2, "nodes": 1, "mean_early_s": (1.0 - 3.0) / 2 * 20, "mean_delay_drawn_s": 300.0},
        AFTER: {"promises": 1, "nodes": 1, "mean_early_s": 10.0 * 20},
    }
