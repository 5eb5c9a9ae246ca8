"""HAMi's arrival-order rule wherever a plan puts new pods on a HAMi node, whole-GPU replicas included.

HAMi binds a node's pending pods in the order it meets them, each on the GPUs with the least memory left that
hold its share (`scheduler.binpack`); a replica of whole GPUs there asks HAMi for all of each device's memory,
so it needs idle GPUs, which shares met before it may have taken. Covers: a tensor-parallel replica the
controller plans beside 201 shares whose pods are not bound; a consolidation move onto a HAMi share beside
them (the move chosen on a plan that did not count them, then found stranded, left the endpoint waiting for a
new node); the rule for pods of several devices, played against every order. Skips: the orders themselves,
which are kube-scheduler's (every one is tried).
"""

from __future__ import annotations

import random
from dataclasses import replace
from itertools import permutations
from typing import Any

from autoscaler.decide import ClassSettings, ConsolidationSettings, Observation, Settings, decide
from scheduler.binpack import Pending, binds_in_every_order, never_stranded
from scheduler.plan import Placement
from scheduler.synthetic import gpu_node
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, training
from tests.test_hami_arrival_order import ASKED
from tests.test_promises_kept import answered
from tests.test_reconcile_state import applied, observed

H200 = "H200-141GB"
NODE = "h200-hami-0"
VRAM = CATALOG.get(H200).vram_mib
HAMI = replace(
    SETTINGS,
    sharing={H200: "hami"},
    classes={**SETTINGS.classes, H200: ClassSettings(gpus_per_node=8, static_nodes=1)},
)


def hami_binds(free: list[int], order: tuple[Pending, ...]) -> bool:
    """HAMi's binpack rule, played: each pod on the GPUs with the least memory left that hold its share."""
    left = list(free)
    for pod in order:
        fits = sorted((f, i) for i, f in enumerate(left) if f >= pod.mib)
        if len(fits) < pod.devices:
            return False
        for _, i in fits[: pod.devices]:
            left[i] -= pod.mib
    return True


def pods_on(placements: list[Placement], node: str) -> list[Pending]:
    """What each replica on `node` asks HAMi for: its share of each GPU, or all of each GPU it holds whole."""
    return [
        Pending(p.vram_mib_per_gpu if p.sharing == "hami" else VRAM, len(w.gpus))
        for p in placements
        for w in p.workers
        if w.node == node
    ]


def stranding(pods: list[Pending], gpus: int) -> list[tuple[Pending, ...]]:
    return [order for order in set(permutations(pods)) if not hami_binds([VRAM] * gpus, order)]


def answered_201(
    nodes: list[dict[str, Any]], asked: list[tuple[str, float]], settings: Settings
) -> list[dict[str, Any]]:
    """New endpoints of one replica on an H200 (model, quality floor) as `egs api` leaves them, each answered 201."""
    new = [
        endpoint(f"ep-{i}", lo=1, hi=1, model=model, qualityFloor=quality, gpuClasses=[H200])
        for i, (model, quality) in enumerate(asked)
    ]
    out = answered(nodes, new, settings)
    assert [e["status"]["promise"]["answer"] for e in out] == ["Created"] * len(asked)
    return out


def test_a_whole_gpu_replica_beside_201_shares_binds_in_every_order_they_arrive() -> None:
    # Five 201 shares packed on two of four GPUs; some arrival orders spread them onto a third GPU, which leaves
    # a tensor-parallel replica of two whole GPUs one idle GPU.
    nodes = [gpu_node(NODE, CATALOG.get(H200), 4)]
    eps = answered_201(nodes, ASKED, HAMI)
    big = endpoint("big", lo=1, hi=1, model="qwen2.5-72b-instruct", qualityFloor=1.0, gpuClasses=[H200])
    decision = decide(Observation(nodes, [*eps, big], signals={}), HAMI, REGISTRY, CATALOG, NOW)
    placed = list(decision.placed.placements)
    assert stranding(pods_on(placed, NODE), 4) == []
    assert len(pods_on(placed, NODE)) == len(ASKED)  # every 201 keeps its share
    assert [p.request for p in decision.waiting.placements] == ["big"]  # it waits for a node of its own


def test_consolidation_moves_no_replica_onto_a_hami_share_some_arrival_order_strands() -> None:
    nodes = [gpu_node(NODE, CATALOG.get(H200), 2), gpu_node("h100-0", CATALOG.get("H100-80GB"), 1)]
    settings = replace(SETTINGS, sharing={H200: "hami"})
    classes = [H200, "H100-80GB"]
    chat = endpoint("chat", lo=1, hi=1, model="qwen2.5-72b-instruct", qualityFloor=0.95, gpuClasses=classes)
    # A training job held the H200 when `chat` came: it serves on the H100.
    first = decide(Observation(nodes, [chat], signals={}, pods=[training(NODE, 2)]), settings, REGISTRY, CATALOG, NOW)
    assert [p.gpu_class for p in first.placed.placements] == ["H100-80GB"]
    owned, pods = applied(first)
    # The job ended; three endpoints were answered 201 on shares of the H200 and their pods are not bound. A share
    # for `chat` fits beside them as EGS packs them, but not in every order HAMi may meet the four pods.
    asked = [("phi-3-mini-4k-instruct", 1.0), ("gemma-2-27b-it", 1.0), ("gemma-2-27b-it", 0.98)]
    eps = [*observed(first, [chat]), *answered_201(nodes[:1], asked, settings)]
    consolidating = replace(settings, consolidation=ConsolidationSettings(enabled=True))
    decision = decide(Observation(nodes, eps, owned, signals={}, pods=pods), consolidating, REGISTRY, CATALOG, NOW)
    assert [e.reason for e in decision.events] == []  # no move
    assert "consolidation" not in decision.statuses[("team-a", "chat")]
    chat_now = next(d for d in decision.endpoints if d.name == "chat")
    assert (chat_now.gpu_class, chat_now.placed, chat_now.waiting) == ("H100-80GB", 1, 0)
    assert stranding(pods_on(list(decision.placed.placements), NODE), 2) == []


def test_pods_of_several_gpus_bind_in_every_order_exactly_when_the_rule_says() -> None:
    rng = random.Random(11)
    passed = 0
    for _ in range(400):
        # GPUs of 100 MiB, idle or not; shares, and pods of whole GPUs (all of each GPU's memory).
        free = [100 if rng.random() < 0.5 else rng.randrange(10, 100) for _ in range(rng.randint(1, 4))]
        pending = [
            Pending(100, rng.randint(1, 2)) if rng.random() < 0.3 else Pending(rng.randrange(1, 60), rng.randint(1, 2))
            for _ in range(rng.randint(1, 4))
        ]
        every = all(hami_binds(free, order) for order in permutations(pending))
        assert binds_in_every_order(free, pending) == every
        if never_stranded(free, pending):
            passed += 1
            assert every
    assert passed > 0
