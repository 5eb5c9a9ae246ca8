"""The churn benchmark's fleet knobs (`--fleet`, `--fleet-size`, `--occupied`): unseen fleets are played through
the same command, so each kind must be the fleet it names, every node of it readable as the controller reads
nodes, and today's fleet what it was for every seed (runs already reported stay comparable).

Covers the fleet drawn and the pods that occupy it; playing a whole scenario is the benchmark's own (minutes).
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any, cast

import pytest

from autoscaler.pods import holds
from benchmarks.churnkit.play import Play, Pod
from benchmarks.churnkit.scenario import FLEETS, PRICES, Shape, endpoint_bodies, fleet, occupying, script, teams
from localplay.kube_standin import KubeCluster
from scheduler.catalog import Catalog
from scheduler.inventory import Inventory, SharingPolicy, build_inventory
from scheduler.registry import Registry

CATALOG = Catalog.load(prices=PRICES)


def drawn(seed: int, endpoints: int, shape: Shape | None = None) -> list[dict[str, Any]]:
    """The fleet of `seed` as the benchmark draws it: after the endpoints, from the same generator."""
    rng = random.Random(seed)
    endpoint_bodies(endpoints, rng, "ep", teams(3))
    return fleet(CATALOG, rng, endpoints, shape or Shape())


def names(nodes: list[dict[str, Any]]) -> list[str]:
    return [n["metadata"]["name"] for n in nodes]


def test_todays_fleet_for_seed_4_is_the_fleet_it_always_was() -> None:
    # As `fleet` drew it at 0d274d5, before the fleet knobs (the runs in docs/benchmarks.md).
    nodes = drawn(4, 49)
    assert names(nodes) == [
        *(f"{kind}-{i}" for i in range(3) for kind in ("h100", "a100-mig", "l40s-kai", "mi300x-dpx", "mi250x")),
        "h100-research",
        "l4-research",
        "h200-hami-0",
        "a100-40-mig-0",
    ]
    assert [n["metadata"]["labels"]["nvidia.com/gpu.count"] for n in nodes[0:15:5]] == ["2", "4", "2"]


@pytest.mark.parametrize("kind", sorted(FLEETS))
def test_every_node_of_every_fleet_kind_is_read_as_the_controller_reads_nodes(kind: str) -> None:
    nodes = drawn(5, 49, Shape(fleet=kind))
    inventory = build_inventory(nodes, CATALOG, sharing=SharingPolicy(FLEETS[kind].sharing), strict=False)
    assert (len(inventory.nodes), inventory.skipped) == (len(nodes), ())
    assert set(FLEETS[kind].provisionable) <= {n.model.name for n in inventory.nodes}


def test_one_vendor_fleets_hold_that_vendor_alone_and_pcie_no_linked_gpus() -> None:
    vendors = {
        k: {n.model.vendor for n in build_inventory(drawn(6, 49, Shape(fleet=k)), CATALOG).nodes} for k in FLEETS
    }
    assert (vendors["amd"], vendors["nvidia"]) == ({"amd"}, {"nvidia"})
    pcie = build_inventory(drawn(6, 49, Shape(fleet="pcie")), CATALOG).nodes
    assert all(n.model.interconnect == "pcie" for n in pcie)
    assert all(CATALOG.get(c).interconnect == "pcie" for c in FLEETS["pcie"].provisionable)
    assert max(len(n.gpus) for n in pcie) >= 4  # a 70B model fits tensor parallel over PCIe


def test_the_shared_fleet_shares_most_of_its_gpus_through_hami_or_kai_and_many_has_fourteen_classes() -> None:
    kind = FLEETS["shared"]
    nodes = build_inventory(drawn(7, 49, Shape(fleet="shared")), CATALOG, sharing=SharingPolicy(kind.sharing)).nodes
    shared = [n for n in nodes if n.sharing in ("hami", "kai")]
    assert len(shared) > len(nodes) / 2
    assert {n.sharing for n in shared} == {"hami", "kai"}
    assert len({n.model.name for n in build_inventory(drawn(7, 49, Shape(fleet="many")), CATALOG).nodes}) >= 14


def test_a_fleet_of_size_zero_holds_only_the_nodes_tainted_for_another_team() -> None:
    for kind in FLEETS:
        nodes = drawn(8, 49, Shape(fleet=kind, fleet_size=0.0))
        assert nodes and all(n["spec"].get("taints") for n in nodes)
    assert len(drawn(8, 160, Shape(fleet_size=0.5))) < len(drawn(8, 160))


@pytest.mark.parametrize("kind", sorted(FLEETS))
def test_an_occupied_node_has_nothing_left_as_the_controller_reads_its_pods(kind: str) -> None:
    nodes = drawn(9, 49, Shape(fleet=kind))
    others = occupying(nodes, 0.5, random.Random(1))
    taken = {p["spec"]["nodeName"] for p in others}
    untainted = [n for n in nodes if not n["spec"].get("taints")]
    assert len(taken) == round(len(untainted) * 0.5) and not taken & set(names(nodes)) - set(names(untainted))
    inventory = build_inventory(nodes, CATALOG, sharing=SharingPolicy(FLEETS[kind].sharing))
    by_name = {n.node: n for n in inventory.nodes}
    for pod in others:
        node = by_name[pod["spec"]["nodeName"]]
        by_name[node.node] = Inventory((node,)).allocated(holds(node, pod, None)).nodes[0]
    for name in taken:
        assert not [g for g in by_name[name].gpus if g.free_mib] and not [s for s in by_name[name].mig if s.free]
    assert occupying(nodes, 0.0, random.Random(1)) == []


def test_the_play_binds_nothing_on_an_occupied_node() -> None:
    registry = Registry.load("examples/models.yaml", CATALOG)
    nodes = [n for n in drawn(10, 16, Shape(fleet="pcie")) if not n["spec"].get("taints")]
    play = Play(cast(KubeCluster, None), CATALOG, registry, random.Random(0), 20.0, kind=FLEETS["pcie"])
    play.others = occupying(nodes, 1.0, random.Random(1))
    template = {"spec": {"containers": [{"name": "m", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}
    play.pods["team/p"] = Pod("team", "p", "d", "team/ep", template, 1.0, "L40S")
    play._schedule(0.0, nodes)
    assert play.pods["team/p"].node == ""
    play.others = []
    play._schedule(0.0, nodes)
    assert play.pods["team/p"].node


def test_late_nodes_nobody_ordered_are_of_the_fleets_own_kinds() -> None:
    for kind in FLEETS:
        plan = script(11, 49, Shape(fleet=kind, late_nodes=(3, 3)))
        assert {name for _, name in plan.late_nodes} <= set(FLEETS[kind].unordered)
    assert (
        script(11, 49, Shape(late_nodes=(3, 3))).late_nodes
        == script(11, 49, Shape(fleet="many", late_nodes=(3, 3))).late_nodes
    )


@pytest.mark.parametrize("seed", [5, 12])
def test_another_teams_pods_end_within_their_minutes_and_never_by_default(seed: int) -> None:
    assert script(seed, 49, Shape(occupied=0.5)).released == 0.0
    plan = script(seed, 49, Shape(occupied=0.5, occupied_minutes=(10.0, 14.0)))
    assert 10.0 <= plan.released <= 14.0 and plan.last >= plan.released
    assert replace(plan, released=0.0) == script(seed, 49, Shape())
