"""Placement: the online policy and the exact re-plan, on small fleets stated as data.

Covers what a plan must never do (over-commit VRAM, break a quality floor or a compute-capability
minimum, split a tensor-parallel replica across peer-link domains) as properties over generated
fleets and batches, and the choices that make it good (quantised variants when they cost less,
several replicas per shared GPU, MIG instances, multi-node replicas, the nearest-fit message).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.catalog import Catalog
from scheduler.fleet import UNPLACED_PENALTY, FleetState, shapes, untolerated
from scheduler.inventory import Inventory, SharingPolicy, build_inventory
from scheduler.placement import place
from scheduler.plan import Plan, Request
from scheduler.registry import Registry
from scheduler.replan import solve
from scheduler.shadow import shadow
from scheduler.synthetic import gpu_node

REPO = Path(__file__).resolve().parent.parent
CATALOG = Catalog.load()
REGISTRY = Registry.load(REPO / "examples" / "models.yaml", CATALOG)
MODELS = [m.name for m in REGISTRY if "405b" not in m.name]


def fleet(
    *groups: tuple[str, int, int],
    sharing: dict[str, str] | None = None,
    mig: dict[str, int] | None = None,
    labels: dict[str, str] | None = None,
) -> Inventory:
    """(class, nodes, GPUs per node) groups; `mig` splits every node of a MIG-capable class;
    `labels` go on every node."""
    nodes: list[dict[str, Any]] = []
    for cls, count, per_node in groups:
        gpu = CATALOG.get(cls)
        layout = mig if mig and gpu.mig_profiles else None
        replicas = 4 if (sharing or {}).get(cls) == "timeslice" else 1
        for _ in range(count):
            node = gpu_node(f"{cls.lower()}-{len(nodes)}", gpu, per_node, layout, replicas)
            node["metadata"]["labels"] |= labels or {}
            nodes.append(node)
    return build_inventory(nodes, CATALOG, sharing=SharingPolicy(sharing or {}))


def check_plan(plan: Plan, inventory: Inventory, requests: list[Request]) -> None:
    """The invariants every plan keeps, whatever the engine."""
    by_name = {r.name: r for r in requests}
    vram: dict[tuple[str, int], int] = defaultdict(int)
    holders: dict[tuple[str, int], int] = defaultdict(int)
    mig: dict[tuple[str, str], int] = defaultdict(int)
    for p in plan.placements:
        request = by_name[p.request]
        variant = REGISTRY.get(p.model).variant(p.variant)
        gpu_class = CATALOG.get(p.gpu_class)
        assert variant.quality >= request.min_quality, f"{p.request}: quality floor broken"
        assert variant.runs_on(gpu_class), f"{p.request}: {p.variant} cannot run on {p.gpu_class}"
        for worker in p.workers:
            node = inventory.node(worker.node)
            assert node.schedulable
            assert untolerated(node, request) is None, f"{p.request}: on {node.node} whose taints it does not tolerate"
            if worker.mig_profile:
                mig[(worker.node, worker.mig_profile)] += 1
                slots = next(s for s in node.mig if s.profile.name == worker.mig_profile)
                assert slots.profile.memory_mib >= p.vram_mib_per_gpu
                assert worker.resource == slots.resource
                continue
            assert len(worker.gpus) == p.tp
            domains = {node.gpus[i].domain for i in worker.gpus}
            assert len(domains) == 1, f"{p.request}: a tensor-parallel group spans {domains}"
            for i in worker.gpus:
                vram[(worker.node, i)] += p.vram_mib_per_gpu
                holders[(worker.node, i)] += 1
    for (node_name, i), used in vram.items():
        node = inventory.node(node_name)
        assert used <= node.gpus[i].free_mib, f"{node_name}/gpu{i}: {used} MiB placed on {node.gpus[i].free_mib}"
        if node.sharing in ("exclusive", "mig", "partition"):
            assert holders[(node_name, i)] == 1
        if node.sharing == "timeslice":
            assert holders[(node_name, i)] <= node.timeslice_replicas
    for (node_name, profile), used in mig.items():
        slots = next(s for s in inventory.node(node_name).mig if s.profile.name == profile)
        assert used <= slots.free
    placed: dict[str, int] = defaultdict(int)
    for p in plan.placements:
        placed[p.request] += 1
    unplaced: dict[str, int] = defaultdict(int)
    for u in plan.unplaced:
        unplaced[u.request] += 1
    for r in requests:
        assert placed[r.name] + unplaced[r.name] == r.replicas, f"{r.name}: replicas lost"


def _reaches_the_optimum(requests: list[Request], inventory: Inventory, optimum: float) -> Plan:
    """The exact engine proves `optimum` and the online policy reaches it, placing every replica."""
    exact = solve(requests, REGISTRY, inventory, time_limit_s=10)
    assert exact.optimal and exact.plan.cost_per_hour == pytest.approx(optimum)
    online = place(requests, REGISTRY, inventory)
    check_plan(online, inventory, requests)
    assert not online.unplaced
    assert online.cost_per_hour == pytest.approx(optimum)
    return online


CLASSES = ["H100-80GB", "A100-80GB", "L4", "L40S", "MI300X", "T4", "A10G", "H200-141GB"]
MECHANISMS = ["exclusive", "timeslice", "kai", "hami"]

fleets = st.lists(
    st.tuples(st.sampled_from(CLASSES), st.integers(1, 3), st.sampled_from([1, 2, 4, 8]), st.sampled_from(MECHANISMS)),
    min_size=1,
    max_size=4,
    unique_by=lambda g: g[0],
)
batches = st.lists(
    st.tuples(st.sampled_from(MODELS), st.integers(1, 4), st.sampled_from([0.0, 0.95, 0.98, 1.0])),
    min_size=1,
    max_size=8,
)


def _build(
    groups: list[tuple[str, int, int, str]], reqs: list[tuple[str, int, float]]
) -> tuple[Inventory, list[Request]]:
    # AMD GPUs are shared only by partitioning them (the inventory refuses the other mechanisms there).
    sharing = {cls: mech if CATALOG.get(cls).vendor == "nvidia" else "exclusive" for cls, _, _, mech in groups}
    use_mig = any(mech == "exclusive" and cls == "A100-80GB" for cls, _, _, mech in groups)
    inventory = fleet(*((c, n, g) for c, n, g, _ in groups), sharing=sharing, mig={"3g.40gb": 4} if use_mig else None)
    requests = [Request(f"r{i}", m, n, min_quality=q) for i, (m, n, q) in enumerate(reqs)]
    return inventory, requests


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets, batches)
def test_online_plans_never_overcommit_or_break_floors_or_domains(groups, reqs) -> None:
    inventory, requests = _build(groups, reqs)
    check_plan(place(requests, REGISTRY, inventory), inventory, requests)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets, batches)
def test_exact_plans_keep_the_same_invariants_and_bound_the_online_cost(groups, reqs) -> None:
    inventory, requests = _build(groups, reqs)
    exact = solve(requests, REGISTRY, inventory, time_limit_s=5)
    check_plan(exact.plan, inventory, requests)
    online = place(requests, REGISTRY, inventory)
    assert exact.lower_bound is not None, "a 5 s limit solves these small batches"
    if not exact.plan.unplaced and not online.unplaced and exact.unplaced_in_bound == 0:
        assert exact.lower_bound <= online.effective_cost_per_hour + 1e-6
        assert exact.lower_bound <= exact.plan.effective_cost_per_hour + 1e-6


def test_a_quantised_variant_is_chosen_when_it_costs_less_and_the_floor_allows() -> None:
    inventory = fleet(("L40S", 1, 2), sharing={"L40S": "hami"})
    # 8 sequences of 8k tokens: bf16 needs ~24 GiB a replica, INT4 ~15 GiB.
    loose = place([Request("chat", "llama-3.1-8b-instruct", 2, concurrency=8)], REGISTRY, inventory)
    assert loose.placements[0].variant == "int4-awq", "the first replica opens the GPU at the lowest cost"
    assert loose.gpus_used == 1, "both replicas share one 48 GB GPU, where two bf16 ones would not fit"
    strict = place([Request("chat", "llama-3.1-8b-instruct", 2, min_quality=1.0, concurrency=8)], REGISTRY, inventory)
    assert {p.variant for p in strict.placements} == {"bf16"}
    assert strict.gpus_used == 2


def test_equal_cost_goes_to_the_better_variant() -> None:
    inventory = fleet(("H100-80GB", 1, 1))
    plan = place([Request("chat", "llama-3.1-8b-instruct", 1)], REGISTRY, inventory)
    assert plan.placements[0].variant == "bf16", "a whole GPU costs the same whatever runs on it"


def test_several_replicas_bin_pack_onto_one_shared_gpu_without_overcommitting() -> None:
    inventory = fleet(("H200-141GB", 1, 8), sharing={"H200-141GB": "kai"})
    requests = [Request("phi", "phi-3-mini-4k-instruct", 6)]
    plan = place(requests, REGISTRY, inventory)
    check_plan(plan, inventory, requests)
    assert plan.gpus_used < 6


def test_mig_instances_serve_replicas_that_fit_them() -> None:
    inventory = fleet(("A100-80GB", 1, 8), mig={"3g.40gb": 16})
    plan = place([Request("chat", "llama-3.1-8b-instruct", 3, min_quality=1.0)], REGISTRY, inventory)
    assert [p.workers[0].mig_profile for p in plan.placements] == ["3g.40gb"] * 3
    assert plan.gpus_used == pytest.approx(3 * 3 / 7, abs=1e-3)


def test_tensor_parallel_replicas_stay_in_one_nvlink_domain_and_large_ones_span_rdma_nodes() -> None:
    inventory = fleet(("H100-80GB", 3, 8), labels={"feature.node.kubernetes.io/rdma.available": "true"})
    requests = [
        Request("big", "llama-3.1-70b-instruct", 2, min_quality=1.0),
        Request("huge", "llama-3.1-405b-instruct", 1, min_quality=1.0),
    ]
    plan = place(requests, REGISTRY, inventory)
    check_plan(plan, inventory, requests)
    huge = next(p for p in plan.placements if p.request == "huge")
    assert huge.multi_node and len({w.node for w in huge.workers}) == len(huge.workers) >= 2
    big = [p for p in plan.placements if p.request == "big"]
    assert all(p.tp > 1 and not p.multi_node for p in big)


def test_an_unplaceable_replica_says_what_it_needs_and_the_nearest_fit() -> None:
    inventory = fleet(("L4", 1, 1))
    plan = place([Request("big", "llama-3.1-70b-instruct", 1, min_quality=1.0)], REGISTRY, inventory)
    assert plan.placements == ()
    reason = plan.unplaced[0].reason
    assert "needs" in reason and "GiB" in reason and "compute capability >= 8.0" in reason
    assert "largest free: L4, 22 GiB" in reason


def test_nodes_that_are_not_ready_or_cordoned_hold_nothing_new() -> None:
    gpu = CATALOG.get("L40S")
    ready = gpu_node("ready", gpu, 1)
    cordoned = gpu_node("cordoned", gpu, 8) | {"spec": {"unschedulable": True}}
    not_ready = gpu_node("not-ready", gpu, 8)
    not_ready["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    inventory = build_inventory([ready, cordoned, not_ready], CATALOG)
    plan = place([Request("chat", "mistral-7b-instruct-v0.3", 3)], REGISTRY, inventory)
    assert {p.node for p in plan.placements} == {"ready"}
    assert len(plan.unplaced) == 2


def test_a_cheap_tensor_parallel_pair_does_not_crowd_out_the_replicas_that_need_its_class() -> None:
    # Four MI210s ($1.00) are the cheap class. Taken one replica at a time, the 32B model grabs two
    # of them as a tensor-parallel pair (its alternative, a whole MI325X, costs $6.50: the most
    # regret), the 14B replicas take the rest and the phi-3s end up on two MI325Xs: $17.77. The
    # optimum ($11.27: the RTX, the four MI210s, one MI325X) gives the 32B model one MI325X, which a
    # squeaky-wheel pass finds by putting first the requests that overpaid in the pass before.
    inventory = fleet(("MI210", 1, 4), ("MI325X", 2, 2), ("RTX-6000-Ada", 1, 1))
    requests = [
        Request("phi", "phi-3-mini-4k-instruct", 2, min_quality=0.98, context=4096, concurrency=16),
        Request("qwen14", "qwen2.5-14b-instruct", 3, min_quality=0.99, context=8192, concurrency=16),
        Request("qwen32", "qwen2.5-32b-instruct", 1, min_quality=1.0, context=8192, concurrency=8),
    ]
    optimum = 0.77 + 4 * 1.00 + 6.50
    _reaches_the_optimum(requests, inventory, optimum)


def mi210_fleet() -> tuple[Inventory, list[Request]]:
    """Four MI210s ($1.00) on one node, eight A100-80GBs ($3.43), eight MI300Xs ($6.00); three 72B
    replicas (one MI300X in FP8, $6.00, or a tensor-parallel group of four MI210s, $4.00) and two
    Gemma-27B replicas (two MI210s, $2.00, or one A100, $3.43)."""
    inventory = fleet(("MI210", 1, 4), ("A100-80GB", 1, 8), ("MI300X", 1, 8))
    requests = [
        Request("qwen72", "qwen2.5-72b-instruct", 3, min_quality=0.99, context=32768, concurrency=8),
        Request("gemma", "gemma-2-27b-it", 2, min_quality=0.95, context=4096, concurrency=8),
    ]
    return inventory, requests


def test_the_fluid_relaxation_prices_only_the_class_that_is_short() -> None:
    # The MI210s are worth at least what a 72B replica saves per GPU with them (($6.00 - $4.00 /
    # 0.9507) / 4: four xGMI GPUs keep 95.07% of its throughput) and at most what a Gemma replica
    # saves per GPU (($3.43 - $2.00 / 0.9595) / 2); nobody is short of A100s or MI300Xs, so they
    # are worth nothing more than their price.
    inventory, requests = mi210_fleet()
    state = FleetState.of(inventory)
    options = {r.name: shapes(REGISTRY.get(r.model), r, state.classes()) for r in requests}
    relaxed = shadow(state, requests, options)
    assert set(relaxed.prices) == {("MI210", "")}
    assert 0.448 - 1e-3 <= relaxed.prices[("MI210", "")] <= 0.673 + 1e-3
    assert relaxed.left_out == {}


def test_the_fluid_relaxation_says_which_replicas_cannot_be_placed() -> None:
    inventory = fleet(("MI300X", 1, 8))
    requests = [Request("qwen72", "qwen2.5-72b-instruct", 10, min_quality=0.98, context=4096, concurrency=8)]
    state = FleetState.of(inventory)
    options = {r.name: shapes(REGISTRY.get(r.model), r, state.classes()) for r in requests}
    relaxed = shadow(state, requests, options)
    assert relaxed.left_out == {"qwen72": 2}
    assert relaxed.prices[("MI300X", "")] == pytest.approx(UNPLACED_PENALTY - 6.0)


def test_a_replica_leaves_a_cheap_class_to_those_it_is_worth_more_to() -> None:
    # At real prices the 72B replica has the most to lose (a $6.00 MI300X against four MI210s at
    # $4.00, where a Gemma replica loses $1.43): it takes the four MI210s, both Gemma replicas go
    # to A100s and the other two 72B replicas to MI300Xs: $22.86. Per MI210, though, a Gemma
    # replica saves more ($0.715 against $0.50). With the MI210s' shadow price added to the cost,
    # the Gemma replicas go first and take them, and the 72B replicas the MI300Xs: $22.00, the
    # optimum.
    inventory, requests = mi210_fleet()
    optimum = 2 * 2 * 1.00 + 3 * 6.00
    online = _reaches_the_optimum(requests, inventory, optimum)
    assert {(p.request, p.gpu_class) for p in online.placements} == {("gemma", "MI210"), ("qwen72", "MI300X")}


def test_the_exact_replan_is_never_worse_than_the_online_policy_on_the_benchmark_mix() -> None:
    inventory = fleet(
        ("H100-80GB", 2, 8),
        ("L40S", 2, 8),
        ("L4", 2, 4),
        ("MI300X", 1, 8),
        sharing={"H100-80GB": "kai", "L40S": "hami", "L4": "timeslice"},
    )
    requests = [Request(f"r{i}", m, 1 + i % 3, min_quality=(0.0, 0.98, 1.0)[i % 3]) for i, m in enumerate(MODELS * 2)]
    online = place(requests, REGISTRY, inventory)
    exact = solve(requests, REGISTRY, inventory, time_limit_s=10)
    check_plan(exact.plan, inventory, requests)
    assert exact.plan.effective_cost_per_hour <= online.effective_cost_per_hour + 1e-6
    assert exact.lower_bound is not None and exact.lower_bound <= exact.plan.effective_cost_per_hour + 1e-6
    assert online.effective_cost_per_hour <= 1.10 * exact.lower_bound
