"""The churn benchmark's knobs (`Shape`): unseen scenarios are played through the same command, so each knob
must shape the scenario it names, refuse a value it cannot play with a sentence, and leave every seed's
scenario what it was under today's defaults (runs already reported stay comparable).

Covers the script's draws, the command line's parsing and the play's provisioning delay; playing a whole
scenario is the benchmark's own (minutes), not a test's.
"""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
import requests

from autoscaler.adapters.prometheus import GPU_INDEXES
from benchmarks.churn import _knob
from benchmarks.churnkit.events import UNSCHEDULABLE_TAINT, cordon
from benchmarks.churnkit.figures import Tally
from benchmarks.churnkit.kinds import NODES
from benchmarks.churnkit.play import Play, Pod
from benchmarks.churnkit.prometheus import PrometheusStandIn
from benchmarks.churnkit.run import Run
from benchmarks.churnkit.scenario import BAD_LABELS, FOREIGN_TAINT, MALFORMED, Script, Shape, script, teams
from localplay.kube_standin import KubeCluster
from scheduler.catalog import Catalog
from scheduler.registry import Registry
from scheduler.synthetic import gpu_node

REPO = Path(__file__).resolve().parent.parent
FLEET = tuple(f"node-{i}" for i in range(20))


def test_todays_defaults_draw_the_scenario_seed_4_always_drew() -> None:
    # Seed 4 at 49 endpoints, every draw as `script(4, 49)` drew it at e23b08c, before the knobs (the runs in
    # docs/benchmarks.md); late_fleet did not exist and is empty at the defaults.
    deleted = (2, 5, 8, 11, 12, 14, 15, 16, 17, 18, 20, 21, 25, 26, 27, 28, 30, 39, 40, 41, 44, 46, 47, 48)
    assert script(4, 49, Shape(), FLEET) == Script(
        bursts=((0.0, tuple(range(33))), (10.7, tuple(range(33, 49)))),
        malformed=((9.1, "spec-a-string"), (5.4, "min-above-max"), (12.2, "unknown-model")),
        bad_nodes=((7.5, "nvidia.com/gpu.memory", "lots"),),
        bad_samples=7.1,
        late_nodes=(),
        class_changes=(14.6, 1),
        deleted=(16.7, deleted),
        reposted=(19.3, tuple(i for i in deleted if i != 44)),
        handover=14.3,
        lost_nodes=(19.3, 2),
        replica_changes=(14.5, 1),
        early_deletes=(2.3, 2),
        model_change=14.8,
        api_trouble=6.8,
        late_burst=(15.6, (49, 50, 51)),
        more_malformed=((8.7, "negative-minimum"),),
        unreadable=(15.6, 5.4),
        twice=(28,),
        late_fleet=(),
    )


@pytest.mark.parametrize("seed", [5, 11, 301])
def test_one_burst_posts_every_endpoint_at_minute_zero_and_three_bursts_come_within_their_minutes(seed: int) -> None:
    assert script(seed, 120, Shape(bursts=(1, 1))).bursts == ((0.0, tuple(range(120))),)
    bursts = script(seed, 120, Shape(bursts=(3, 3), burst_minutes=(30.0, 31.0))).bursts
    assert len(bursts) == 3
    assert [i for _, ids in bursts for i in ids] == list(range(120))
    assert all(30.0 <= m <= 31.0 for m, _ in bursts[1:])


def test_the_deleted_share_and_the_counts_of_bad_objects_are_the_knobs() -> None:
    plan = script(9, 50, Shape(deleted=(0.8,), class_changes=(3, 3), malformed=(4, 4), bad_nodes=(3, 3)))
    assert len(plan.deleted[1]) == 40
    assert set(plan.reposted[1]) <= set(plan.deleted[1])
    assert len(plan.reposted[1]) >= 38
    assert plan.class_changes[1] == 3
    assert sorted(k for _, k in plan.malformed) == sorted(MALFORMED)
    assert sorted((label, value) for _, label, value in plan.bad_nodes) == sorted(BAD_LABELS)


def test_a_late_share_of_the_fleet_joins_within_the_late_minutes_and_the_scenario_lasts_until_then() -> None:
    plan = script(12, 49, Shape(late_fleet=0.75, late_minutes=(30.0, 40.0), late_nodes=(2, 2)), FLEET)
    assert len(plan.late_fleet) == 15
    assert {name for _, name in plan.late_fleet} <= set(FLEET)
    assert all(30.0 <= m <= 40.0 for m, _ in plan.late_fleet + plan.late_nodes)
    assert plan.last >= max(m for m, _ in plan.late_fleet)


@pytest.mark.parametrize("seed", [5, 12, 401])
def test_prometheus_is_unreachable_for_the_minutes_asked_and_never_by_default(seed: int) -> None:
    assert script(seed, 49, Shape(), FLEET).prometheus_outage == (0.0, 0.0)
    plan = script(seed, 49, Shape(prometheus_outage=(3.0, 5.0)), FLEET)
    start, minutes = plan.prometheus_outage
    assert 4.0 <= start <= 18.0
    assert 3.0 <= minutes <= 5.0
    assert plan.last >= start + minutes
    # Drawn apart: the rest of the scenario is what the seed draws without it.
    assert plan == Script(**{**script(seed, 49, Shape(), FLEET).__dict__, "prometheus_outage": (start, minutes)})


def test_an_unreachable_prometheus_fails_each_read_at_once_and_answers_again_after() -> None:
    prometheus = PrometheusStandIn({"m": 0.05}, lambda: [])
    query = f"{prometheus.url}/api/v1/query"
    try:
        prometheus.down = True
        with pytest.raises(requests.ConnectionError):
            requests.get(query, params={"query": GPU_INDEXES}, timeout=2)
        prometheus.down = False
        assert requests.get(query, params={"query": GPU_INDEXES}, timeout=2).json()["status"] == "success"
    finally:
        prometheus.close()


def test_namespaces_are_named_in_turn() -> None:
    assert teams(3) == ("team-a", "team-b", "team-c")
    assert teams(5)[-1] == "team-e"


@pytest.mark.parametrize(
    ("shape", "named"),
    [
        ({"malformed": (1, 5)}, "--malformed 1-5: there are 4 kinds"),
        ({"bursts": (0, 2)}, "--bursts 0-2: the least must be at least 1"),
        ({"late_minutes": (20.0, 2.0)}, "--late-minutes 20-2"),
        ({"deleted": (0.5, 1.5)}, "--deleted"),
        ({"late_fleet": 1.2}, "--late-fleet 1.2"),
        ({"provision_minutes": (1.0, 3.0)}, "--provision-minutes 1-3: the least must be at least 1.5"),
        ({"namespaces": 27}, "--namespaces 27"),
        ({"prometheus_outage": (5.0, 2.0)}, "--prometheus-outage 5-2"),
        ({"cordons": (-1, 2)}, "--cordons -1-2"),
    ],
)
def test_a_shape_that_cannot_be_played_is_refused_naming_its_knob(shape: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        Shape(**shape)  # type: ignore[arg-type]


def test_knobs_parse_as_typed_on_the_command_line() -> None:
    assert _knob((2.0, 12.0))("5-7.5") == (5.0, 7.5)
    assert _knob((1, 3))("2") == (2, 2)
    assert _knob((0.25, 1 / 3, 0.5))("0.8,0.9") == (0.8, 0.9)
    assert _knob(0.0)("0.5") == 0.5
    assert _knob(3)("7") == 7


def test_an_ordered_node_is_ready_after_the_configured_provisioning_delay() -> None:
    catalog = Catalog.load()
    registry = Registry.load(REPO / "examples" / "models.yaml", catalog)
    play = Play(cast(KubeCluster, None), catalog, registry, random.Random(0), 20.0, delay_s=(1200.0, 1200.0))
    play.pods["team/p"] = Pod("team", "p", "d", "team/ep", {"spec": {}}, 1.0, "H100-80GB")
    play._order(100.0)
    assert [(t, name) for t, _, name, _ in play.coming] == [(160.0, "h100-80gb-new-1")]


@pytest.mark.parametrize("seed", [5, 12, 401])
def test_cordons_come_within_their_minutes_and_never_by_default(seed: int) -> None:
    assert script(seed, 49, Shape(), FLEET).cordons == (0.0, 0.0, 0)
    plan = script(seed, 49, Shape(cordons=(2, 3)), FLEET)
    start, minutes, count = plan.cordons
    assert (6.0 <= start <= 18.0, 2.0 <= minutes <= 6.0, 2 <= count <= 3) == (True, True, True)
    assert plan.last >= start + minutes
    assert plan == Script(**{**script(seed, 49, Shape(), FLEET).__dict__, "cordons": plan.cordons})


def test_a_cordoned_node_keeps_its_own_taints_and_gets_them_back_uncordoned() -> None:
    catalog = Catalog.load()
    kube = KubeCluster().start()
    try:
        tainted = gpu_node("h100-0", catalog.get("H100-80GB"), 4, taints=[FOREIGN_TAINT])
        kube.put(NODES, tainted)
        kube.put(NODES, gpu_node("h100-1", catalog.get("H100-80GB"), 4))
        pods = {
            "team/a-0": SimpleNamespace(node="h100-0", key="team/a-0", endpoint="team/a", ready=True),
            "team/b-0": SimpleNamespace(node="h100-1", key="team/b-0", endpoint="team/b", ready=True),
        }
        run = SimpleNamespace(
            kube=kube, play=SimpleNamespace(pods=pods, down={"h100-1": 0.0}), tally=Tally(), cordoned={},
            args=SimpleNamespace(seed=1), minutes=lambda: 10.0,
        )  # fmt: skip
        cordon(cast(Run, run), 2)
        node = kube.get(NODES, None, "h100-0") or {}
        assert node["spec"]["unschedulable"] is True
        assert [t["key"] for t in node["spec"]["taints"]] == [FOREIGN_TAINT["key"], UNSCHEDULABLE_TAINT["key"]]
        assert not (kube.get(NODES, None, "h100-1") or {})["spec"].get("unschedulable")  # NotReady: not cordoned
        cordon(cast(Run, run), 0)
        node = kube.get(NODES, None, "h100-0") or {}
        assert (node["spec"]["unschedulable"], node["spec"]["taints"]) == (False, [FOREIGN_TAINT])
    finally:
        kube.stop()
