"""The scheduler's one entry point: engine choice, deadlines and fallback, taints for both engines,
and a clean stdout while HiGHS talks.

Small fleets stated as data (synthetic nodes labelled as GFD and the AMD labeller label them); the
exact engine runs under small time limits.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.errors import InputError
from scheduler import placement, replan
from scheduler.catalog import Catalog
from scheduler.fleet import FleetState
from scheduler.inventory import Allocation, Inventory, SharingPolicy, build_inventory
from scheduler.placement import place
from scheduler.plan import Request, Toleration
from scheduler.registry import Registry
from scheduler.replan import online, solve
from scheduler.schedule import schedule
from scheduler.synthetic import drawn_prices, gpu_node, mixed_fleet, mixed_requests
from tests.conftest import Spy
from tests.test_placement import check_plan

REPO = Path(__file__).resolve().parent.parent
CATALOG = Catalog.load()
REGISTRY = Registry.load(REPO / "examples" / "models.yaml", CATALOG)
BATCH_TAINT = {"key": "dedicated", "value": "batch", "effect": "NoSchedule"}
SMALL = "llama-3.1-8b-instruct"


def nodes(*groups: tuple[str, int, int, list[dict[str, str]] | None]) -> list[dict[str, Any]]:
    """(class, nodes, GPUs per node, taints) groups as Node objects."""
    out: list[dict[str, Any]] = []
    for cls, count, per_node, taints in groups:
        for _ in range(count):
            out.append(gpu_node(f"{cls.lower()}-{len(out)}", CATALOG.get(cls), per_node, taints=taints))
    return out


def tainted_fleet(taints: list[dict[str, str]]) -> Inventory:
    """Cheap L4s carrying `taints`, and untainted H100s that cost far more."""
    return build_inventory(nodes(("L4", 2, 4, taints), ("H100-80GB", 1, 8, None)), CATALOG)


def classes_used(plan: Any) -> set[str]:
    return {p.gpu_class for p in plan.placements}


def test_the_engines_answer_through_one_entry_point_with_what_they_proved() -> None:
    inventory = tainted_fleet([])
    requests = [Request("chat", SMALL, 3, concurrency=8)]
    online = schedule(requests, REGISTRY, inventory, engine="online")
    assert (online.engine, online.lower_bound, online.optimal) == ("online", None, False)
    exact = schedule(requests, REGISTRY, inventory, engine="exact", time_limit_s=5)
    assert exact.engine == "exact" and exact.lower_bound is not None
    assert exact.lower_bound <= exact.plan.cost_per_hour + 1e-6
    auto = schedule(requests, REGISTRY, inventory)
    assert auto.engine in ("online", "exact") and auto.plan.cost_per_hour <= online.plan.cost_per_hour
    assert auto.optimal and auto.plan.cost_per_hour == pytest.approx(exact.plan.cost_per_hour)
    for engine, limit in (("fastest", 1.0), ("auto", 0.0)):
        with pytest.raises(InputError):
            schedule(requests, REGISTRY, inventory, engine=engine, time_limit_s=limit)


@pytest.mark.parametrize("engine", ["online", "exact"])
def test_replicas_go_only_where_their_pods_tolerate_the_taints(engine: str) -> None:
    inventory = tainted_fleet([BATCH_TAINT])
    plain = [Request("chat", SMALL, 2, concurrency=8)]
    kept_off = schedule(plain, REGISTRY, inventory, engine=engine, time_limit_s=5).plan
    assert classes_used(kept_off) == {"H100-80GB"} and not kept_off.unplaced
    check_plan(kept_off, inventory, plain)
    tolerating = [Request("chat", SMALL, 2, concurrency=8, tolerations=(Toleration("dedicated", "Equal", "batch"),))]
    allowed = schedule(tolerating, REGISTRY, inventory, engine=engine, time_limit_s=5).plan
    assert classes_used(allowed) == {"L4"}, "the cheap tainted L4s are open to a pod that tolerates them"
    check_plan(allowed, inventory, tolerating)
    wrong_value = [Request("chat", SMALL, 1, concurrency=8, tolerations=(Toleration("dedicated", "Equal", "ml"),))]
    assert classes_used(schedule(wrong_value, REGISTRY, inventory, engine=engine, time_limit_s=5).plan) == {"H100-80GB"}


@pytest.mark.parametrize("engine", ["online", "exact"])
def test_gpu_taints_and_prefer_no_schedule_do_not_keep_replicas_off(engine: str) -> None:
    taints = [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},
        {"key": "spot", "effect": "PreferNoSchedule"},
    ]
    plan = schedule([Request("chat", SMALL, 2, concurrency=8)], REGISTRY, tainted_fleet(taints), engine=engine).plan
    assert classes_used(plan) == {"L4"}


@pytest.mark.parametrize("engine", ["online", "exact"])
def test_an_unplaced_replica_names_the_taint_that_keeps_it_off(engine: str) -> None:
    only_tainted = build_inventory(nodes(("L4", 1, 4, [{"key": "team", "value": "a", "effect": "NoExecute"}])), CATALOG)
    plan = schedule([Request("chat", SMALL, 1, concurrency=8)], REGISTRY, only_tainted, engine=engine).plan
    assert not plan.placements
    assert "tainted team=a:NoExecute" in plan.unplaced[0].reason
    assert "l4-0" in plan.unplaced[0].reason


def fleet_and_batch(replicas: int = 6) -> tuple[Inventory, list[Request]]:
    fleet = [gpu_node(f"l4-{i}", CATALOG.get("L4"), 4, replicas=4) for i in range(4)]
    fleet += nodes(("A10G", 2, 8, None), ("H100-80GB", 3, 8, None))
    inventory = build_inventory(fleet, CATALOG, sharing=SharingPolicy({"H100-80GB": "kai"}))
    models = [SMALL, "mistral-7b-instruct-v0.3", "qwen2.5-14b-instruct", "llama-3.1-70b-instruct"]
    return inventory, [Request(f"r{i}-{m}", m, replicas, min_quality=0.95) for i, m in enumerate(models)]


def test_exact_falls_back_to_the_online_plan_when_the_deadline_leaves_no_solution() -> None:
    inventory, requests = fleet_and_batch()
    solution = solve(requests, REGISTRY, inventory, time_limit_s=0.01)
    assert solution.fell_back and not solution.optimal
    assert solution.plan == place(requests, REGISTRY, inventory)
    scheduled = schedule(requests, REGISTRY, inventory, engine="exact", time_limit_s=0.01)
    assert scheduled.engine == "online" and len(scheduled.plan.placements) == 4 * 6


def test_auto_under_a_tiny_deadline_returns_the_online_plan_complete() -> None:
    inventory, requests = fleet_and_batch()
    scheduled = schedule(requests, REGISTRY, inventory, engine="auto", time_limit_s=0.001)
    assert scheduled.engine == "online" and not scheduled.plan.unplaced
    check_plan(scheduled.plan, inventory, requests)


def test_solver_output_on_file_descriptor_1_goes_to_stderr() -> None:
    """HiGHS with its log on writes from C++ straight to descriptor 1; inside the guard it reaches
    stderr, and Python's own prints around it stay on stdout."""
    script = textwrap.dedent(
        """
        import highspy
        from scheduler.solver import solver_output_to_stderr
        print("before")
        with solver_output_to_stderr():
            highs = highspy.Highs()
            highs.setOptionValue("output_flag", True)
            highs.setOptionValue("log_to_console", True)
            x = highs.addVariable(0, 2.5, -1.0)
            highs.setInteger(x)
            highs.run()
        print("after")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.split() == ["before", "after"]
    assert "HiGHS" in result.stderr or "Running" in result.stderr


def test_plan_json_is_one_document_on_stdout_while_highs_talks(tmp_path: Path) -> None:
    """A batch solved with HiGHS's log switched on (`--solver-log` makes every solver call talk on
    descriptor 1 from C): stdout still parses as one JSON document."""
    inventory_nodes = nodes(("L4", 4, 4, None), ("A10G", 2, 8, None), ("H100-80GB", 2, 8, None))
    (tmp_path / "nodes.yaml").write_text(yaml.safe_dump({"items": inventory_nodes}))
    batch = [
        {"name": f"r{i}", "model": m, "replicas": 4, "min_quality": 0.95}
        for i, m in enumerate([SMALL, "qwen2.5-14b-instruct"])
    ]
    (tmp_path / "requests.yaml").write_text(yaml.safe_dump({"requests": batch}))
    args = ["--fleet", str(tmp_path / "nodes.yaml"), "--models", str(REPO / "examples" / "models.yaml")]
    args += ["--requests", str(tmp_path / "requests.yaml"), "--engine", "exact", "--solver-log", "-o", "json"]
    args += ["--time-limit", "30"]
    result = subprocess.run([sys.executable, "-m", "egs.cli", "plan", *args], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "HiGHS" in result.stderr, "the solver did not talk: the test would prove nothing"
    document = json.loads(result.stdout)
    assert document["engine"] == "exact" and len(document["placements"]) == 8


@pytest.mark.parametrize("seed", [3, 11])
def test_generated_mixed_fleets_have_their_shape_and_every_engine_keeps_the_rules_there(seed: int) -> None:
    """The packing benchmark's fleets: both vendors, MIG, partitioned and whole AMD, every NVIDIA
    class shared, a PCIe-only class of 4 or more GPUs per node, tainted nodes; the batch has
    tolerating requests; the online and exact plans keep every invariant (VRAM, floors, domains,
    taints) there."""
    rng = random.Random(seed)
    fleet, policy = mixed_fleet(rng, CATALOG)
    batch = mixed_requests(rng, REGISTRY)
    inventory = build_inventory(fleet, CATALOG, sharing=SharingPolicy(policy))
    assert 228 <= sum(n.physical_gpus for n in inventory) <= 259
    assert len({(n.model.name, n.sharing) for n in inventory}) >= 9
    sharings = {n.sharing for n in inventory}
    assert "partition" in sharings and sharings & {"kai", "hami", "timeslice"}
    assert all(n.sharing in ("kai", "hami", "timeslice") or n.mig for n in inventory if n.model.vendor == "nvidia")
    assert any(not n.model.peer_links and len(n.gpus) >= 4 for n in inventory), "a PCIe class for tensor parallel"
    assert any(n.mig and n.model.vendor == "nvidia" for n in inventory), "a MIG-split kind"
    assert {n.model.vendor for n in inventory} == {"nvidia", "amd"}
    assert any(n.taints for n in inventory) and any(r.tolerations for r in batch)
    assert 40 <= len(batch) <= 55 and 102 <= sum(r.replicas for r in batch) <= 177
    for engine in ("online", "exact"):
        check_plan(schedule(batch, REGISTRY, inventory, engine=engine, time_limit_s=5).plan, inventory, batch)


def generated(seed: int, fleet: int, drawn: bool = False) -> tuple[Inventory, list[Request], Registry]:
    """Fleet `fleet` of the packing benchmark's generator at `seed`, its batch, and the registry
    at its prices (the catalogue's, or with `drawn` the benchmark's drawn ones)."""
    rng = random.Random(seed)
    for _ in range(fleet + 1):
        nodes, policy = mixed_fleet(rng, CATALOG)
        batch = mixed_requests(rng, REGISTRY)
        prices = drawn_prices(rng, CATALOG, (n.model.name for n in build_inventory(nodes, CATALOG))) if drawn else {}
    priced = CATALOG.priced(prices)
    registry = Registry.load(REPO / "examples" / "models.yaml", priced)
    return build_inventory(nodes, priced, sharing=SharingPolicy(policy)), batch, registry


@pytest.mark.parametrize(("seed", "fleet", "drawn"), [(22, 1, False), (25, 1, False), (103, 1, True), (208, 0, True)])
def test_short_of_room_the_online_engine_leaves_no_more_unplaced_than_exact_and_is_deterministic(
    seed: int, fleet: int, drawn: bool
) -> None:
    """Generated fleets too small for their batch: placing the large replicas first strands small
    ones. On seed 25's fleet 1 the greedy passes left 6 replicas unplaced where the exact plan
    places all; the online engine rounds the LP relaxation, which places all, and places as many as
    the exact plan (seed 22's fleet 1: the greedy passes that hold the large replicas back did
    too). On seed 103's fleet 1 at the benchmark's prices, what the rounding left went largest
    first and one replica more than in the exact plan stayed out: short of room, the smallest of it
    go first too. On seed 208's fleet 0 the LP leaves 5 replicas out, whole, and its rounding 6 (a
    72B and a 27B replica where exact leaves a second 70B one out): the integer programme over the
    generated columns repairs the rounding there too, not only where the LP places every replica.
    And the same inputs give the same plan, as the controller's idempotence needs: the LP is given
    time enough to converge here, so that a busy machine's clock does not decide."""
    inventory, batch, registry = generated(seed, fleet, drawn)
    plan = online(batch, registry, inventory, time_limit_s=10)
    assert plan == online(batch, registry, inventory, time_limit_s=10)
    exact = schedule(batch, registry, inventory, engine="exact", time_limit_s=10).plan
    assert place(batch, registry, inventory).unplaced, "the fleet must be short of room for the greedy passes"
    assert len(plan.unplaced) <= len(exact.unplaced)
    check_plan(plan, inventory, batch)


def test_short_of_room_a_rounding_that_leaves_out_more_than_the_lp_is_repaired() -> None:
    """A MIG-split H100 node, an MI250X node and two HAMi-shared L40S nodes, too small for the batch:
    the LP leaves the 72B replica out, whole, and places the rest; its roundings left the 27B
    replica out as well (what they left went to the greedy policy, which strands it), and the
    online engine repaired a rounding only where the LP placed every replica. The integer programme
    over the generated columns places it, as the exact plan does (seed 208's fleet 0, shrunk)."""
    fleet = [
        gpu_node("h100-0", CATALOG.get("H100-80GB"), 8, mig={"3g.40gb": 16}),
        gpu_node("mi250x-0", CATALOG.get("MI250X"), 8),
        *(gpu_node(f"l40s-{i}", CATALOG.get("L40S"), 4) for i in range(2)),
    ]
    inventory = build_inventory(fleet, CATALOG, sharing=SharingPolicy({"L40S": "hami"}))
    batch = [
        Request("q32", "qwen2.5-32b-instruct", 3, min_quality=0.99, context=4096, concurrency=8),
        Request("l8a", SMALL, 3, min_quality=0.99, context=4096, concurrency=64),
        Request("l8b", SMALL, 1, min_quality=0.98, context=8192, concurrency=8),
        Request("q72", "qwen2.5-72b-instruct", 1, min_quality=1.0, context=4096, concurrency=32),
        Request("g27", "gemma-2-27b-it", 1, min_quality=0.95, context=8192, concurrency=8),
        Request("q32-long", "qwen2.5-32b-instruct", 1, min_quality=1.0, context=16384, concurrency=8),
        Request("m7", "mistral-7b-instruct-v0.3", 3, min_quality=0.99, context=4096, concurrency=64),
        Request("q14", "qwen2.5-14b-instruct", 2, min_quality=0.98, context=4096, concurrency=64),
        Request("l8c", SMALL, 1, min_quality=0.99, context=16384, concurrency=16),
    ]
    plan = online(batch, REGISTRY, inventory, time_limit_s=10)
    exact = schedule(batch, REGISTRY, inventory, engine="exact", time_limit_s=10).plan
    assert [u.request for u in exact.unplaced] == ["q72"], "the fleet must be short of room by the 72B replica"
    assert [u.request for u in plan.unplaced] == ["q72"]
    assert plan.effective_cost_per_hour <= 1.005 * exact.effective_cost_per_hour
    check_plan(plan, inventory, batch)


def test_short_of_room_the_hold_back_passes_run_only_where_the_rounding_leaves_out_more_than_the_lp(
    spy: Spy,
) -> None:
    """Seed 2's fleet 1 at the benchmark's prices is short of room: the LP leaves 10.5 replicas
    out and its rounding 11, which no plan can beat on that count. The greedy passes that hold
    replicas back to place more took 0.2 s of the online engine's 0.52 s of CPU there, for a plan
    the rounding's beat; now they are not run, and the plan is no worse than the full passes'."""
    inventory, batch, registry = generated(2, 1, drawn=True)
    calls = spy(placement, "_short_of_room")
    plan = online(batch, registry, inventory, time_limit_s=10)
    assert plan.unplaced and not calls
    greedy = place(batch, registry, inventory)
    assert calls, "the greedy passes alone must hold replicas back here"
    assert not greedy.better_than(plan)
    check_plan(plan, inventory, batch)


@pytest.mark.parametrize("fleet", [0, 1, 2])
def test_the_online_engine_is_within_2_percent_of_exact_where_the_greedy_passes_were_not(fleet: int) -> None:
    """The packing benchmark's fleets of seed 20, at its drawn prices: the greedy passes' best plan
    cost 2.8%, 4.9% and 2.1% more per unit of throughput than the exact plan, because one replica
    at a time they guess what a shared GPU costs and let arrival order decide who fills the cheap
    classes. The online engine rounds the cutting-stock LP, which prices whole GPUs."""
    inventory, batch, registry = generated(20, fleet, drawn=True)
    plan = online(batch, registry, inventory, time_limit_s=10)
    exact = schedule(batch, registry, inventory, engine="exact", time_limit_s=10).plan
    assert len(plan.unplaced) <= len(exact.unplaced)
    assert plan.effective_cost_per_hour <= 1.02 * exact.effective_cost_per_hour
    check_plan(plan, inventory, batch)


@pytest.mark.parametrize(("seed", "fleet"), [(200, 0), (218, 2)])
def test_where_the_roundings_strand_a_replica_the_online_engine_repairs_them_not_the_greedy_passes(
    seed: int, fleet: int
) -> None:
    """The packing benchmark's fleets at its drawn prices where the LP places every replica and
    both its roundings leave one out (a model the LP split over fractional tensor-parallel groups
    and patterns): the online engine then fell back to the greedy passes, which leave 1 and 2
    replicas out here. The integer programme over the columns generated so far repairs the
    rounding: within half a percent of exact, every replica placed. (Seed 202's fleet 2 and 38's
    fleet 1 until tensor-parallel replicas left time-sliced nodes, which changed those fleets' plans:
    38's roundings strand nothing now, and on 202's the repair does not finish in time.)"""
    inventory, batch, registry = generated(seed, fleet, drawn=True)
    plan = online(batch, registry, inventory, time_limit_s=10)
    exact = schedule(batch, registry, inventory, engine="exact", time_limit_s=10).plan
    assert not plan.unplaced and not exact.unplaced
    assert plan.effective_cost_per_hour <= 1.005 * exact.effective_cost_per_hour
    check_plan(plan, inventory, batch)


def test_auto_keeps_its_deadline_where_setting_up_the_model_would_pass_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch of 1,600 replicas (about 550 requests) on 300 nodes: the greedy pass comes first (the
    plan to fall back on), and setting up the cutting-stock model for such a batch takes longer
    (0.7 s) than the 0.15 s left after it, so it must stop at the deadline rather than after
    it (it ran 1.6 s past a 1.7 s limit, 1.9x it; without its checks of the deadline, 1.8-1.9x now).
    The limit and the bound are on the process's CPU clock, put in place of the wall clock the solver
    keeps its deadline on: the claim is about the work done past the deadline, and on a loaded 2-core
    machine the wall clock also counts the other processes' turns, which a load that rose after the
    greedy pass was timed gave to `schedule` alone (1.49 s against 1.40 s, once at load 5-10). With
    half the limit of slack: the greedy pass runs again inside `schedule`, slower on a busy machine."""

    class CpuDeadline(replan._Deadline):
        def __init__(self, seconds: float, clock: Callable[[], float] = time.process_time) -> None:
            super().__init__(seconds, clock)

    monkeypatch.setattr(replan, "_Deadline", CpuDeadline)
    monkeypatch.setattr(time, "perf_counter", time.process_time)  # the solver's own timings too
    rng = random.Random(1)
    fleet: list[dict[str, Any]] = []
    policy: dict[str, str] = {}
    while len(fleet) < 300:
        more, sharing = mixed_fleet(rng, CATALOG)
        if all(policy.get(cls, mechanism) == mechanism for cls, mechanism in sharing.items()):
            policy |= sharing
            fleet += [n | {"metadata": {**n["metadata"], "name": f"node-{len(fleet) + i}"}} for i, n in enumerate(more)]
    batch: list[Request] = []
    while sum(r.replicas for r in batch) < 1_600:
        batch += [replace(r, name=f"{r.name}-{len(batch)}") for r in mixed_requests(rng, REGISTRY)]
    inventory = build_inventory(fleet[:300], CATALOG, sharing=SharingPolicy(policy))
    began = time.process_time()
    greedy = place(batch, REGISTRY, inventory)
    limit = time.process_time() - began + 0.15
    began = time.process_time()
    scheduled = schedule(batch, REGISTRY, inventory, engine="auto", time_limit_s=limit)
    assert time.process_time() - began <= 1.5 * limit
    assert len(scheduled.plan.unplaced) <= len(greedy.unplaced)


def test_the_exact_plan_is_no_worse_than_the_rounded_lp_it_could_have_found() -> None:
    """Seed 108's fleet 1 of the packing benchmark, at its drawn prices: column generation stopped
    with an LP that needs no more patterns, and the integer programme over those patterns cost 0.59%
    more than the LP bound, while rounding that LP and placing the rest greedily cost 0.01% more. The
    roundings' patterns go into the integer programme. (Seed 102's fleet 1, 1.05% and 0.08%, until
    tensor-parallel replicas left time-sliced nodes; its patterns change nothing there now.)"""
    inventory, batch, registry = generated(108, 1, drawn=True)
    solution = solve(batch, registry, inventory, time_limit_s=30)
    assert solution.lower_bound is not None and not solution.plan.unplaced
    assert solution.plan.effective_cost_per_hour <= 1.002 * solution.lower_bound


@pytest.mark.parametrize("engine", ["online", "exact", "auto"])
def test_short_of_room_at_equal_cost_the_requests_listed_later_wait(engine: str) -> None:
    """One 8-GPU node, eight one-replica requests and then one of two: leaving out the last request's
    two replicas or two of the others' costs the same; the last waits, as the API answered it on what
    the others left (a degenerate LP chose freely, and the API's 202 became the controller's 201)."""
    inventory = build_inventory(nodes(("H100-80GB", 1, 8, None)), CATALOG)
    first = [Request(f"e{i}", SMALL, 1, concurrency=8) for i in range(8)]
    for batch in (first, list(reversed(first))):
        plan = schedule([*batch, Request("late", SMALL, 2, concurrency=8)], REGISTRY, inventory, engine=engine).plan
        assert sorted({p.request for p in plan.placements}) == sorted(r.name for r in first)
        assert {u.request for u in plan.unplaced} == {"late"}


def test_a_cpu_budget_gives_the_solver_the_wall_time_its_cpu_left_is_worth_on_a_busy_machine() -> None:
    """HiGHS keeps its limit on the wall clock: given the CPU left as wall seconds, a solve on a loaded
    machine stopped short and the same batch got another plan (a decide test, once at load 16)."""
    cpu, wall = [0.0], [0.0]
    deadline = replan._Deadline(0.3, lambda: cpu[0], lambda: wall[0])
    assert deadline.solver_s() == pytest.approx(0.3)  # nothing used yet: nothing known of the contention
    cpu[0], wall[0] = 0.1, 0.4  # a quarter of the wall time on a CPU: 0.2 s of CPU is worth 0.8 s
    assert deadline.solver_s() == pytest.approx(0.8)
    cpu[0], wall[0] = 0.2, 0.2  # quiet (or several threads): never less than the CPU left
    assert deadline.solver_s() == pytest.approx(0.1)
    on_the_wall = replan._Deadline(0.3, lambda: wall[0], lambda: wall[0])
    wall[0] = 0.3
    assert on_the_wall.solver_s() == pytest.approx(on_the_wall.left())


def test_an_lp_of_whole_columns_is_realised_once_for_both_roundings(spy: Spy) -> None:
    """The online engine rounds its LP down and to the nearest and realises each; an LP whose columns are whole
    rounds alike both ways (both of the reconcile benchmark's serving-loop calls at 1,000 endpoints), and its
    plans are realised once (each realising cost that loop 0.01-0.015 s), with the same plan."""
    inventory = build_inventory(nodes(("L4", 2, 4, None), ("H100-80GB", 1, 8, None)), CATALOG)
    batch = [Request("a", SMALL, replicas=3), Request("b", SMALL, replicas=2, min_quality=1.0)]
    calls = spy(replan, "_realise")
    plan = online(batch, REGISTRY, inventory, time_limit_s=10)
    realised = [(tuple(c.arguments["chosen"]), c.arguments["smallest_first"]) for c in calls]
    assert realised and len(set(realised)) == len(realised)
    assert not plan.unplaced
    check_plan(plan, inventory, batch)


def test_the_capacity_rows_of_a_fleet_of_nodes_in_alike_states_are_its_states_times_their_nodes() -> None:
    """The cutting-stock model's capacity is counted once per state of node, times the nodes in it (1,750 nodes
    read one by one took half of a consolidation search); a fleet of the same nodes three times over has three
    times the capacity of every row, and the same shared-GPU kinds in the same order (the model's columns follow
    them)."""

    def fleet(copies: int) -> Inventory:
        raw, taken = [], []
        for copy in range(copies):
            for cls, gpus, sharing_replicas, mig in (
                ("L4", 4, 4, None),
                ("A100-80GB", 8, 1, {"3g.40gb": 8}),
                ("L40S", 4, 1, None),
                ("H100-80GB", 8, 1, None),
            ):
                for i in range(2):
                    name = f"{cls.lower()}-{i}-{copy}"
                    raw.append(gpu_node(name, CATALOG.get(cls), gpus, mig, sharing_replicas))
            taken += [
                Allocation(f"l4-0-{copy}", (0,), 6_000, sharing="timeslice"),
                Allocation(f"l4-0-{copy}", (0,), 4_000, sharing="timeslice"),
                Allocation(f"l4-1-{copy}", (2,), 9_000, sharing="timeslice"),
                Allocation(f"l40s-0-{copy}", (0,), 20_000, sharing="hami"),
                Allocation(f"a100-80gb-1-{copy}", mig="3g.40gb", count=3),
                Allocation(f"h100-80gb-0-{copy}", (0, 1, 2)),
            ]
        policy = SharingPolicy({"L4": "timeslice", "L40S": "hami"})
        return build_inventory(raw, CATALOG, taken, sharing=policy)

    def rows(inventory: Inventory) -> tuple[dict[str, float], list[replan._Bin]]:
        like = FleetState.of(inventory)
        model, bins = replan._model([Request("a", SMALL, 1)], REGISTRY, inventory, replan._Deadline(10.0), like)
        return model.capacity, bins

    def node_by_node(inventory: Inventory) -> tuple[dict[str, float], list[replan._Bin]]:
        """The rows each node alone gives, summed, and the kinds in the order of the first node with each: a
        grouping that merged nodes in different states counts otherwise."""
        capacity: dict[str, float] = {}
        bins: dict[str, replan._Bin] = {}
        for node in inventory:
            mine, kinds = rows(Inventory((node,)))
            for row, count in mine.items():
                capacity[row] = capacity.get(row, 0) + count
            for b in kinds:
                bins.setdefault(b.row, b)
        return capacity, list(bins.values())

    one, bins = rows(fleet(1))
    three, bins_three = rows(fleet(3))
    assert {r for r in one if r.startswith("open:")} and {r for r in one if r.startswith("tp:")}
    assert any(r.startswith("mig:") for r in one) and any(b.row.startswith("idle:") for b in bins)
    assert three == {row: 3 * count for row, count in one.items()}
    assert bins_three == bins
    assert (one, bins) == node_by_node(fleet(1))
    assert (three, bins_three) == node_by_node(fleet(3))
