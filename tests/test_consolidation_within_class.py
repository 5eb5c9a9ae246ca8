"""Consolidation within one GPU class (issue 16): a cheaper split of the same class, and a node emptied so that
the node autoscaler can remove it, each make-before-break, within the budget, and not undone later.

Each scenario runs the decide step over loops as `tests/test_reconcile_state.py` does (`applied`: the workloads
written, a pod bound per planned replica). Before, `consolidate` skipped any move to a variant and class the
endpoint already had, so none of these moved.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from autoscaler.controller import begun_moves
from autoscaler.decide import (
    ClassSettings,
    ConsolidationSettings,
    Decision,
    Observation,
    Settings,
    consolidation,
    decide,
)
from autoscaler.decide.consolidation import MAX_SEARCHES, Candidate, Option, _best, disrupted_nodes
from autoscaler.decide.state import Move, recorded_shape
from autoscaler.decide.workloads import named
from scheduler.synthetic import gpu_node
from tests.conftest import Spy
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, SHAPE, endpoint, h100, signals, training
from tests.test_reconcile_state import applied, l40s, observed, workloads

ON = replace(
    SETTINGS,
    consolidation=ConsolidationSettings(enabled=True),
    classes={**SETTINGS.classes, "L40S": ClassSettings(gpus_per_node=2)},
)
"""Consolidation on, and L40S nodes of a class the node autoscaler adds and removes."""
LATER = NOW + 2 * ON.consolidation.interval_s
"""Beyond the budget's interval: whatever a move spent is back."""
MI300X = CATALOG.get("MI300X")


def loop(
    nodes: list[dict[str, Any]],
    eps: list[dict[str, Any]],
    owned: list[dict[str, Any]],
    pods: list[dict[str, Any]],
    at: float = NOW,
    settings: Settings = ON,
) -> Decision:
    """One decide step at `at`, with fresh metrics."""
    return decide(
        Observation(nodes, eps, owned, signals(age_s=NOW + 10 - at), pods=pods), settings, REGISTRY, CATALOG, at
    )


def preferred_nodes(obj: dict[str, Any]) -> set[str]:
    affinity = obj["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    terms = affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or ()
    return {v for t in terms for e in t["preference"]["matchExpressions"] for v in e["values"]}


def moves(decision: Decision) -> list[str]:
    return [e.regarding.name for e in decision.events if e.reason == "Consolidating"]


def two_half_empty_nodes() -> tuple[list[dict[str, Any]], list[Any], list[Any], list[Any]]:
    """alpha alone on l40s-0 and beta alone on l40s-1, one GPU of two free on each (a training job held
    l40s-0's other GPU when beta came, and ended)."""
    first_nodes = [l40s("l40s-0", 2)]
    first = decide(Observation(first_nodes, [endpoint("alpha")], signals=signals(), pods=[training("l40s-0", 1)]),
                   SETTINGS, REGISTRY, CATALOG, NOW)  # fmt: skip
    owned, pods = applied(first)
    nodes = [l40s("l40s-0", 2), l40s("l40s-1", 2)]
    eps = [*observed(first, [endpoint("alpha")]), endpoint("beta")]
    second = loop(nodes, eps, owned, [*pods, training("l40s-0", 1)], settings=SETTINGS)
    owned, pods = applied(second)
    assert {p.request: p.node for p in second.placed.placements} == {"alpha": "l40s-0", "beta": "l40s-1"}
    return nodes, observed(second, eps), owned, pods


def test_two_half_empty_nodes_of_one_class_are_packed_onto_one_make_before_break() -> None:
    nodes, eps, owned, pods = two_half_empty_nodes()
    assert moves(loop(nodes, eps, owned, pods, settings=SETTINGS)) == []  # off by default
    moved = loop(nodes, eps, owned, pods)
    [who] = moves(moved)
    stays = "alpha" if who == "beta" else "beta"
    old_node, new_node = ("l40s-1", "l40s-0") if who == "beta" else ("l40s-0", "l40s-1")
    # Its new workload has a name of its own and prefers the node that stays; the old one serves meanwhile.
    [(name, new)] = workloads(moved, who).items()
    assert name == f"{who}-bf16-l40s-2"
    assert preferred_nodes(new) == {new_node}
    assert moved.statuses[("team-a", who)]["consolidation"]["replacing"] == [f"{who}-bf16-l40s"]
    assert moved.deletions == ()
    assert workloads(moved, stays) == dict(applied_workloads(owned, stays))  # the other is not touched
    # Its new pod is bound, not ready: nothing moves again, nothing is deleted, the name holds.
    owned_new, pods_new = applied(moved, ready=False)
    owned_new = [o for o in owned_new if o["metadata"]["name"] == name]
    pods_new = [p for p in pods_new if p["metadata"]["name"].startswith(name)]
    eps = observed(moved, eps)
    later = loop(nodes, eps, owned + owned_new, pods + pods_new)
    assert (moves(later), later.deletions, list(workloads(later, who))) == ([], (), [name])
    # It serves: the old workload goes.
    owned_new, pods_new = applied(moved, ready=True)
    owned_new = [o for o in owned_new if o["metadata"]["name"] == name]
    pods_new = [p for p in pods_new if p["metadata"]["name"].startswith(name)]
    done = loop(nodes, observed(later, eps), owned + owned_new, pods + pods_new)
    assert [d[3] for d in done.deletions] == [f"{who}-bf16-l40s"]
    # Once it went, the old node holds nothing, and no later loop moves anyone back or renames anything.
    owned = [o for o in owned if o["metadata"]["name"] != f"{who}-bf16-l40s"] + owned_new
    pods = [p for p in pods if p["metadata"]["labels"]["egs.io/workload"] != f"{who}-bf16-l40s"] + pods_new
    settled = loop(nodes, observed(done, eps), owned, pods, at=LATER)
    assert settled.inventory.node(old_node).gpus[0].holders + settled.inventory.node(old_node).gpus[1].holders == 0
    assert (moves(settled), settled.deletions, list(workloads(settled, who))) == ([], (), [name])


def applied_workloads(owned: list[dict[str, Any]], name: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (o["metadata"]["name"], {k: v for k, v in o.items() if k != "status"})
        for o in owned
        if o["kind"] == "Deployment" and o["metadata"]["annotations"].get("egs.io/request-name") == name
    ]


def test_a_node_another_teams_pod_holds_is_not_emptied_and_a_move_onto_an_idle_node_saves_nothing() -> None:
    # 3-GPU nodes: a training job beside each endpoint. Neither node can be emptied.
    nodes = [l40s("l40s-0", 3), l40s("l40s-1", 3)]
    jobs = [training("l40s-0", 1), training("l40s-1", 1)]
    first = decide(
        Observation(nodes, [endpoint("alpha")], signals=signals(), pods=jobs), SETTINGS, REGISTRY, CATALOG, NOW
    )
    owned, pods = applied(first)
    assert moves(loop(nodes, observed(first, [endpoint("alpha")]), owned, [*pods, *jobs], at=LATER)) == []
    # Alone on a node beside an idle one: moving empties one node and occupies the other.
    alone = [l40s("l40s-0", 1), l40s("l40s-1", 1)]
    first = decide(Observation(alone, [endpoint("alpha")], signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    owned, pods = applied(first)
    assert moves(loop(alone, observed(first, [endpoint("alpha")]), owned, pods, at=LATER)) == []


def test_a_node_of_two_endpoints_is_emptied_within_a_budget_of_one_node() -> None:
    # The budget counts nodes, as Karpenter's: emptying one node of two endpoints disrupts one node. Before, it
    # counted endpoints, and this move needed a budget of two.
    # alpha and beta fill l40s-0; gamma came when l40s-1 (3 GPUs) joined.
    first = decide(Observation([l40s("l40s-0", 2)], [endpoint("alpha"), endpoint("beta")], signals=signals()),
                   SETTINGS, REGISTRY, CATALOG, NOW)  # fmt: skip
    owned, pods = applied(first)
    nodes = [l40s("l40s-0", 2), l40s("l40s-1", 3)]
    eps = [*observed(first, [endpoint("alpha"), endpoint("beta")]), endpoint("gamma")]
    second = loop(nodes, eps, owned, pods, settings=SETTINGS)
    owned, pods = applied(second)
    eps = observed(second, eps)
    assert {p.request: p.node for p in second.placed.placements}["gamma"] == "l40s-1"
    one = replace(ON, consolidation=ConsolidationSettings(enabled=True, max_nodes_per_interval=1))
    moved = loop(nodes, eps, owned, pods, at=LATER, settings=one)
    assert sorted(moves(moved)) == ["alpha", "beta"]
    assert {p.node for p in moved.placed.placements if p.request in ("alpha", "beta")} == {"l40s-1"}
    assert [moved.statuses[("team-a", who)]["consolidation"]["nodes"] for who in ("alpha", "beta")] == [["l40s-0"]] * 2
    price = CATALOG.get("L40S").price_per_hour
    saving = sum(e.saving for e in [moved.endpoints[0].move, moved.endpoints[1].move] if e is not None)
    assert round(saving, 2) == round(2 * price, 2)  # the node's two GPUs
    none = replace(ON, consolidation=ConsolidationSettings(enabled=True, max_nodes_per_interval=0))
    assert moves(loop(nodes, eps, owned, pods, at=LATER, settings=none)) == []


def test_an_endpoint_on_two_nodes_moves_only_within_a_budget_of_two_nodes() -> None:
    # alpha's two replicas came on two H100 nodes, one each (a job held the rest of each); an L40S node joined.
    h100s = [h100("gpu-0"), h100("gpu-1")]
    jobs = [training("gpu-0", 7), training("gpu-1", 7)]
    first = decide(Observation(h100s, [endpoint("alpha", lo=2)], signals=signals(), pods=jobs),
                   SETTINGS, REGISTRY, CATALOG, NOW)  # fmt: skip
    assert sorted(p.node for p in first.placed.placements) == ["gpu-0", "gpu-1"]
    owned, pods = applied(first)
    nodes, eps = [*h100s, l40s("l40s-0", 2)], observed(first, [endpoint("alpha", lo=2)])
    # Moving it to the L40S node disrupts both H100 nodes: 10% of three nodes rounds up to one, not enough;
    # no interval ever allows it, so the endpoint says so (rev12: it waited silently).
    held = loop(nodes, eps, owned, [*pods, *jobs])
    assert moves(held) == []
    [blocked] = [e for e in held.events if e.reason == "ConsolidationBlocked"]
    assert blocked.regarding.name == "alpha"
    assert "off 2 nodes; the budget allows 1 per 600 s" in blocked.note and "maxNodesPerInterval: 10%" in blocked.note
    assert f"consolidation of team-a/alpha blocked: {blocked.note}" in held.notices()  # the controller logs it once
    two = replace(ON, consolidation=ConsolidationSettings(enabled=True, max_nodes_per_interval=2))
    moved = loop(nodes, eps, owned, [*pods, *jobs], settings=two)
    assert moves(moved) == ["alpha"]
    assert {p.gpu_class for p in moved.placed.placements} == {"L40S"}
    assert moved.statuses[("team-a", "alpha")]["consolidation"]["nodes"] == ["gpu-0", "gpu-1"]
    [event] = moved.events
    assert "off gpu-0, gpu-1:" in event.note


def test_a_whole_gpu_replica_moves_to_a_free_partition_of_its_class() -> None:
    # chat came when only a whole MI300X was there; a DPX-partitioned MI300X node joined since.
    whole, dpx = gpu_node("mi300x-0", MI300X, 1), gpu_node("mi300x-dpx-0", MI300X, 1, partition="dpx_nps1")
    first = decide(Observation([whole], [endpoint()], signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    [placed] = first.placed.placements
    assert (placed.gpu_class, placed.sharing) == ("MI300X", "exclusive")
    owned, pods = applied(first)
    eps = observed(first, [endpoint()])
    assert moves(loop([whole, dpx], eps, owned, pods, settings=SETTINGS)) == []
    moved = loop([whole, dpx], eps, owned, pods)
    assert moves(moved) == ["chat"]
    [(name, new)] = workloads(moved, "chat").items()
    assert (name, new["metadata"]["annotations"]["egs.io/sharing"]) == ("chat-bf16-mi300x-2", "partition")
    assert moved.statuses[("team-a", "chat")]["consolidation"]["replacing"] == ["chat-bf16-mi300x"]
    assert moved.endpoints[0].cost_per_hour == round(MI300X.price_per_hour / 2, 4)
    # Once it serves and the whole-GPU workload went, the freed whole GPU does not draw it back.
    owned_new, pods_new = applied(moved)
    settled = loop([whole, dpx], observed(moved, eps), owned_new, pods_new, at=LATER)
    assert (moves(settled), settled.deletions, list(workloads(settled, "chat"))) == ([], (), [name])


def test_a_new_endpoint_takes_the_room_before_a_move_would() -> None:
    # chat runs on an H100 since a training job held the L40S; the job ends as beta is posted.
    nodes = [l40s("l40s-0"), h100("gpu-0")]
    first = decide(Observation(nodes, [endpoint()], signals=signals(), pods=[training("l40s-0", 1)]),
                   SETTINGS, REGISTRY, CATALOG, NOW)  # fmt: skip
    owned, pods = applied(first)
    both = loop(nodes, [*observed(first, [endpoint()]), endpoint("beta")], owned, pods)
    # beta is placed on the L40S at once, and chat is not restarted to take it (then beta on an H100).
    assert moves(both) == []
    assert {p.request: p.gpu_class for p in both.placed.placements} == {"chat": "H100-80GB", "beta": "L40S"}


def rendered(name: str, **shape: str) -> dict[str, Any]:
    """A Deployment as `scheduler.manifests` renders it, of `SHAPE` with `shape`'s annotations changed."""
    annotations = {"egs.io/request-name": "chat", **SHAPE, **{f"egs.io/{k}": v for k, v in shape.items()}}
    labels = {"egs.io/workload": name}
    return {
        "kind": "Deployment",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"selector": {"matchLabels": dict(labels)}, "template": {"metadata": {"labels": dict(labels)}}},
    }


def test_a_workload_keeps_its_name_by_shape_and_never_takes_one_a_move_replaces() -> None:
    whole, shared = rendered("chat-bf16-h100-80gb"), rendered("chat-bf16-h100-80gb-2", sharing="kai")
    shape = recorded_shape(shared["metadata"]["annotations"])
    assert shape is not None
    # The shared shape ran as `chat-bf16-h100-80gb`: it keeps that name, and the whole GPUs' gets another.
    named([whole, shared], {shape: "chat-bf16-h100-80gb"}, ())
    assert [o["metadata"]["name"] for o in (whole, shared)] == ["chat-bf16-h100-80gb-2", "chat-bf16-h100-80gb"]
    assert whole["spec"]["template"]["metadata"]["labels"]["egs.io/workload"] == "chat-bf16-h100-80gb-2"
    assert whole["spec"]["selector"]["matchLabels"]["egs.io/workload"] == "chat-bf16-h100-80gb-2"
    # A move within one shape: the new workload is not the one it replaces, and keeps its name after.
    moved = rendered("chat-bf16-h100-80gb")
    named([moved], {}, ("chat-bf16-h100-80gb",))
    assert moved["metadata"]["name"] == "chat-bf16-h100-80gb-2"
    again = rendered("chat-bf16-h100-80gb")
    named([again], {replace(shape, sharing="exclusive"): "chat-bf16-h100-80gb-2"}, ())
    assert again["metadata"]["name"] == "chat-bf16-h100-80gb-2"


def test_a_move_numbers_a_second_shapes_workload_as_the_renderer_does() -> None:
    # Two shapes of one variant and class render as X and X-2 (`scheduler.manifests.numbered`); a move
    # replacing X-2 names the new one X-3, by the same rule, not X-2-2 (before: a second rule on top of the first).
    whole, shared = rendered("chat-bf16-h100-80gb"), rendered("chat-bf16-h100-80gb-2", sharing="kai")
    named([whole, shared], {}, ("chat-bf16-h100-80gb-2",))
    assert [o["metadata"]["name"] for o in (whole, shared)] == ["chat-bf16-h100-80gb", "chat-bf16-h100-80gb-3"]


def test_an_emptied_node_saves_its_price_once() -> None:
    # alpha came on an H100 node while a job held both L40S GPUs; the job shrank to one.
    nodes = [h100("gpu-0"), l40s("l40s-0", 2)]
    first = decide(Observation(nodes, [endpoint("alpha")], signals=signals(), pods=[training("l40s-0", 2)]),
                   SETTINGS, REGISTRY, CATALOG, NOW)  # fmt: skip
    owned, pods = applied(first)
    moved = loop(nodes, observed(first, [endpoint("alpha")]), owned, [*pods, training("l40s-0", 1)])
    [alpha] = moved.endpoints
    assert (alpha.gpu_class, moves(moved)) == ("L40S", ["alpha"])
    # The cluster pays for gpu-0's eight H100s no more; the L40S GPU alpha takes was paid for already.
    assert alpha.move is not None and alpha.move.saving == round(8 * CATALOG.get("H100-80GB").price_per_hour, 4)


def lone_endpoints(
    names: tuple[str, ...] = ("alpha", "beta", "gamma"),
) -> tuple[list[dict[str, Any]], list[Any], list[Any], list[Any]]:
    """Each endpoint alone on a 2-GPU L40S node of its own, `l40s-0` on (training jobs held the other GPUs as
    each came, and ended)."""
    eps: list[Any] = []
    owned: list[Any] = []
    pods: list[Any] = []
    for n, name in enumerate(names):
        nodes = [l40s(f"l40s-{i}", 2) for i in range(n + 1)]
        jobs = [named_job(training(f"l40s-{i}", 1), i) for i in range(n)]
        eps = [*eps, endpoint(name)]
        placed = loop(nodes, eps, owned, [*pods, *jobs], settings=SETTINGS)
        owned, pods = applied(placed)
        eps = observed(placed, eps)
    assert {p.request: p.node for p in placed.placed.placements} == {name: f"l40s-{i}" for i, name in enumerate(names)}
    return nodes, eps, owned, pods


def named_job(pod: dict[str, Any], i: int) -> dict[str, Any]:
    pod["metadata"]["name"] += f"-{i}"
    return pod


def test_no_move_lands_on_a_node_another_move_is_emptying() -> None:
    # Before, one loop with a budget of three moved one endpoint off its node and the next onto that node
    # (two moves, each counted the node's price, one node went); with a budget of one the second came an
    # interval later while the first's new pod was not ready yet.
    nodes, eps, owned, pods = lone_endpoints()
    three = replace(ON, consolidation=ConsolidationSettings(enabled=True, max_nodes_per_interval=3))
    moved = loop(nodes, eps, owned, pods, at=LATER, settings=three)
    [who] = moves(moved)
    old_node = {"alpha": "l40s-0", "beta": "l40s-1", "gamma": "l40s-2"}[who]
    assert old_node not in {p.node for p in moved.placed.placements}
    # One interval on, the move's new pod bound, not ready: its old pod still holds the node it empties.
    moved = loop(nodes, eps, owned, pods, at=LATER)
    [who] = moves(moved)
    owned_new, pods_new = applied(moved, ready=False)
    names = {o["metadata"]["name"] for o in owned}
    owned_new = [o for o in owned_new if o["metadata"]["name"] not in names]
    pods_new = [p for p in pods_new if p["metadata"]["labels"]["egs.io/workload"] not in names]
    later = LATER + ON.consolidation.interval_s + 1
    assert moves(loop(nodes, observed(moved, eps), owned + owned_new, pods + pods_new, at=later)) == []


def test_a_node_of_a_class_no_node_autoscaler_removes_is_not_emptied() -> None:
    # Before, emptying counted an L40S node's price as saved where the node autoscaler adds and removes only
    # H100 nodes: the replica restarted and the static node stayed, paid for.
    nodes, eps, owned, pods = two_half_empty_nodes()
    static = replace(ON, classes=SETTINGS.classes)
    assert moves(loop(nodes, eps, owned, pods, settings=static)) == []
    assert len(moves(loop(nodes, eps, owned, pods))) == 1


def test_the_best_move_is_searched_for_no_further_than_a_move_that_could_beat_it() -> None:
    # Each search is a placement over the whole fleet: at 1,000 endpoints every movable endpoint and node was
    # searched every loop. A candidate whose bound cannot beat the best found is not searched; ties by keys.
    searched: list[str] = []

    def candidate(key: str, bound: float, saving: float | None) -> Candidate:
        def search() -> Option | None:
            searched.append(key)
            return None if saving is None else Option((key,), (), 10.0, saving)

        return Candidate(bound, (key,), 10.0, search, frozenset({key}))

    best, left = _best([candidate("a", 4.0, 3.0), candidate("b", 9.0, 5.0), candidate("c", 6.0, 6.0),
                  candidate("d", 5.0, 5.0), candidate("e", 7.0, None), candidate("f", 1.5, 1.5)], 0.2)  # fmt: skip
    assert best is not None and best[1].keys == ("c",) and best[0].nodes == {"c"}
    assert (searched, left) == (["b", "e", "c"], MAX_SEARCHES - 3)  # d, a and f could not beat c's 6


def test_at_most_max_searches_are_searched_for_a_move_those_that_could_save_the_most_first() -> None:
    searched: list[int] = []

    def candidate(i: int) -> Candidate:
        def search() -> Option | None:
            searched.append(i)
            return None

        return Candidate(float(i), (f"ep-{i}",), float(i), search, frozenset())

    assert _best([candidate(i) for i in range(1, 2 * MAX_SEARCHES + 1)], 0.2) == (None, 0)
    assert searched == list(range(2 * MAX_SEARCHES, MAX_SEARCHES, -1))


def test_a_move_whose_endpoint_was_deleted_still_counts_against_the_budget() -> None:
    """A move's record lives on its endpoint's status; the controller remembers the moves it began
    (`Observation.moves_begun`), so one whose endpoint was deleted since keeps its place in the budget
    (churn seed 464: two moves 10 s apart with a budget of one, the first's endpoint deleted between)."""
    nodes, eps, owned, pods = two_half_empty_nodes()
    gone = (("team-a/deleted-since", Move(NOW - 10, "team-a", (), nodes=("l40s-9",))),)

    def with_begun(begun: tuple[tuple[str, Move], ...], at: float) -> Decision:
        obs = Observation(nodes, eps, owned, signals(age_s=NOW + 10 - at), pods=pods, moves_begun=begun)
        return decide(obs, ON, REGISTRY, CATALOG, at)

    assert moves(with_begun(gone, NOW)) == []
    assert len(moves(with_begun((), NOW))) == 1
    assert len(moves(with_begun(gone, LATER))) == 1  # out of the interval: the budget is back


def test_the_controller_remembers_the_moves_it_began_within_the_interval() -> None:
    moved = loop(*two_half_empty_nodes())
    [who] = moves(moved)
    [key] = [d.key for d in moved.endpoints if d.move is not None]
    recent = Move(NOW - 10, "team-a", (), nodes=("l40s-9",))
    long_ago = Move(LATER - 3 * ON.consolidation.interval_s, "team-a", ())
    kept = dict(begun_moves((("team-a/deleted-since", recent), ("team-a/long-ago", long_ago)),
                            moved, ON.consolidation.interval_s, NOW))  # fmt: skip
    assert kept.keys() == {"team-a/deleted-since", key} and kept["team-a/deleted-since"] == recent
    assert key.endswith(who)
    assert (kept[key].at, kept[key].nodes) == (NOW, ({"alpha": "l40s-0", "beta": "l40s-1"}[who],))


def test_a_move_recorded_without_its_nodes_spends_one_node() -> None:
    # A status written before the budget counted nodes: the move still spends the budget, as one node.
    nodes, eps, owned, pods = two_half_empty_nodes()
    unrecorded = (("team-a/earlier", Move(NOW - 10, "team-a", ())),)
    assert disrupted_nodes(unrecorded, NOW - 600) == {"team-a/earlier (nodes not recorded)"}
    obs = Observation(nodes, eps, owned, signals(), pods=pods, moves_begun=unrecorded)
    assert moves(decide(obs, ON, REGISTRY, CATALOG, NOW)) == []


def test_a_loop_searches_at_most_max_searches_whatever_its_budget(monkeypatch: pytest.MonkeyPatch, spy: Spy) -> None:
    # A budget of many nodes lets a loop choose many moves; each search places over the whole fleet, so the
    # loop's searches in all are bounded, not each move's (the rest wait for the next loop).
    # Six endpoints, one on each H100 node (a job holds the rest of each); an L40S node of eight joins.
    h100s, jobs = [h100(f"gpu-{i}") for i in range(6)], [training(f"gpu-{i}", 7) for i in range(6)]
    names = [f"ep-{i}" for i in range(6)]
    first = decide(Observation(h100s, [endpoint(n) for n in names], signals=signals(), pods=jobs),
                   SETTINGS, REGISTRY, CATALOG, NOW)  # fmt: skip
    assert len({p.node for p in first.placed.placements}) == 6
    owned, pods = applied(first)
    nodes, eps = [*h100s, l40s("l40s-0", 8)], observed(first, [endpoint(n) for n in names])
    searched = spy(consolidation, "place_requests")
    monkeypatch.setattr(consolidation, "MAX_SEARCHES", 4)
    every = replace(ON, consolidation=ConsolidationSettings(enabled=True, max_nodes_per_interval="100%"))
    assert len(moves(loop(nodes, eps, owned, [*pods, *jobs], settings=every))) >= 1
    assert len(searched) == 4
