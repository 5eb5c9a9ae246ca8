"""Capacity that arrives goes to the 202s promised earliest first (`placement._earliest_first`).

Churn seed 4 (eleventh session): an L40S node joined with four GPUs for six 202s answered within a second;
the decide step placed the two answered last (promised 650-660 s, a node ordered anew) and left two answered
before them (promised 103-107 s, on that very node) waiting: those two were late by about 290 s, and the two
placed were Ready with 590 s of slack each."""

from __future__ import annotations

from autoscaler.decide import Observation, decide, placement
from tests.conftest import Spy
from tests.test_decide import CATALOG, MODEL, NOW, REGISTRY, SETTINGS, signals
from tests.test_reconcile_state import node, promised


def _h100(name: str, gpus: int) -> dict[str, object]:
    return node(name, "NVIDIA-H100-80GB-HBM3", gpus)


def _placed(etas: dict[str, float], gpus: int, models: dict[str, str] | None = None) -> dict[str, int]:
    eps = [
        promised(name, "Accepted", "H100-80GB", eta=eta, model=(models or {}).get(name, MODEL))
        for name, eta in etas.items()
    ]
    decision = decide(Observation([_h100("gpu-0", gpus)], eps, signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    return {d.name: d.placed for d in decision.endpoints}


def test_the_one_gpu_that_arrives_goes_to_the_202_promised_first() -> None:
    # Listed first (and so first in the scheduler's batch), `alpha` was promised later than `beta`.
    assert _placed({"alpha": NOW + 660, "beta": NOW + 105}, gpus=1) == {"alpha": 0, "beta": 1}
    assert _placed({"alpha": NOW + 105, "beta": NOW + 660}, gpus=1) == {"alpha": 1, "beta": 0}


def test_the_earliest_promises_take_what_arrives_and_the_rest_wait_in_promise_order() -> None:
    etas = {"a": NOW + 700, "b": NOW + 650, "c": NOW + 110, "d": NOW + 100, "e": NOW + 600}
    assert _placed(etas, gpus=3) == {"a": 0, "b": 0, "c": 1, "d": 1, "e": 1}


def test_a_202_promised_earlier_for_a_shorter_load_does_not_take_the_node_an_earlier_answer_counted_on() -> None:
    # `beta` (gemma, 55 s to load) was answered first, on the first node (due at +145 s); `alpha` (37 s), listed
    # first, after it, on the next node (due at +153 s), and so promised earlier: the node that comes is beta's.
    slow = "gemma-2-27b-it"
    assert REGISTRY.get(slow).variant("bf16").load_seconds - REGISTRY.get(MODEL).variant("bf16").load_seconds > 10
    assert _placed({"alpha": NOW + 190, "beta": NOW + 200}, gpus=1, models={"beta": slow}) == {"alpha": 0, "beta": 1}


def test_room_for_every_202_places_every_one() -> None:
    etas = {"a": NOW + 700, "b": NOW + 100, "c": NOW + 400}
    assert _placed(etas, gpus=8) == dict.fromkeys(etas, 1)


def test_waiting_202s_are_written_in_the_order_their_nodes_are_due() -> None:
    # kube-scheduler takes pods first in, first out, and the API server lists endpoints by name: `alpha`, answered
    # after `beta` and promised later, is listed first. Its workload is written after beta's, so that the first
    # node to come serves beta's pod as beta's answer counted on.
    eps = [
        promised(name, "Accepted", "H100-80GB", eta=eta) for name, eta in (("alpha", NOW + 660), ("beta", NOW + 600))
    ]
    decision = decide(Observation([], eps, signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    deployments = [o["metadata"]["annotations"] for o in decision.objects if o["kind"] == "Deployment"]
    written = [a["egs.io/request-name"] for a in deployments if "egs.io/request-name" in a]
    assert written == ["beta", "alpha"]


def test_a_waiting_202_due_first_is_written_first_though_a_later_one_has_a_replica_placed() -> None:
    # `alpha` (two replicas, promised +660 s) got the one H100 there is for one of them; `beta` (promised +600 s,
    # on an L40S that does not exist) has none placed. Both wait for an H100: beta's node is due first.
    eps = [
        promised("alpha", "Accepted", "H100-80GB", eta=NOW + 660, lo=2),
        promised("beta", "Accepted", "L40S", eta=NOW + 600),
    ]
    decision = decide(Observation([_h100("gpu-0", 1)], eps, signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    assert {d.name: (d.placed, d.waiting) for d in decision.endpoints} == {"alpha": (1, 1), "beta": (0, 1)}
    deployments = [o["metadata"]["annotations"] for o in decision.objects if o["kind"] == "Deployment"]
    written = [a["egs.io/request-name"] for a in deployments if "egs.io/request-name" in a]
    assert written == ["beta", "alpha"]


def test_a_node_that_joins_for_some_of_many_202s_costs_three_scheduler_calls(spy: Spy) -> None:
    # 40 waiting 202s, 8 GPUs: the batch placed together (8 of 40, the scheduler's choice), then the 8 promised
    # earliest (placed whole at the first try), then the rest on what is left. The halving once took 8 calls,
    # most of them prefixes too long to place whole, each as costly as the whole batch.
    calls = spy(placement, "place_requests")
    etas = {f"ep-{i:02d}": NOW + 100 + (i * 37) % 40 * 10 for i in range(40)}
    placed = _placed(etas, gpus=8)
    assert len(calls) == 3
    earliest = sorted(etas, key=etas.__getitem__)[:8]
    assert placed == {name: int(name in earliest) for name in etas}
