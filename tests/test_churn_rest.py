"""The churn benchmark reads its settled figures once the cluster rests (issue 16's benchmark protocol).

Read at a fixed minute, seed 800's final run (tenth session) caught a consolidation move under way: its
replaced Deployment read as stale, its cost twice (applied 1.106x intended) and its end as quiet writes.
`in_flight` names what is under way; `Run.until_rest` plays on until it names nothing over two whole
controller loops, at most a bound. A stale workload nothing is moving still counts once at rest.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from autoscaler.kubetime import micro_time
from benchmarks.churnkit.figures import settled_figures, workload_cost
from benchmarks.churnkit.kinds import DEPLOYMENTS, ENDPOINTS, EVENTS
from benchmarks.churnkit.rest import in_flight
from benchmarks.churnkit.run import Run
from localplay.kube_standin import KubeCluster
from tests.test_decide import CATALOG, workload

MOVING = {"type": "Consolidating", "status": "True", "reason": "MovingToCheaperShape"}


def ready(name: str, cost: float, *conditions: dict[str, str], generation: int = 1) -> dict[str, Any]:
    """An InferenceEndpoint whose status says Ready, one bf16 replica on an H100 at `cost` $/h."""
    status = {"phase": "Ready", "desiredReplicas": 1, "variant": "bf16", "gpuClass": "H100-80GB",
              "costPerHour": cost, "observedGeneration": 1, "conditions": list(conditions)}  # fmt: skip
    return {"metadata": {"name": name, "namespace": "team-a", "generation": generation}, "status": status}


def moved(t: float, series_last: float | None = None) -> dict[str, Any]:
    """The Event the controller writes on an endpoint whose move it begins."""
    series = {"series": {"count": 2, "lastObservedTime": micro_time(series_last)}} if series_last else {}
    return {"reason": "Consolidating", "eventTime": micro_time(t), **series}


def test_nothing_in_flight_is_rest() -> None:
    assert in_flight([ready("chat", 4.0)], [moved(0.0)], [("team-a/chat-0", True, True)], [], 100.0, 30.0) == []


def test_a_move_under_way_a_spec_not_observed_and_a_phase_not_settled_are_in_flight() -> None:
    endpoints = [
        ready("chat", 4.0, MOVING),
        ready("beta", 4.0, generation=2),
        {"metadata": {"name": "gamma", "namespace": "team-a"}, "status": {"phase": "Provisioning"}},
        {"metadata": {"name": "delta", "namespace": "team-a"}},
        # A shape change of its spec under way: Ready while its old workload serves, its new pod held back.
        ready("epsilon", 4.0, {"type": "Progressing", "status": "True", "reason": "ChangingShape"}),
        {**ready("zeta", 4.0), "status": {**ready("zeta", 4.0)["status"], "shapeChange": {"replacing": ["zeta-h100"]}}},
        # An invalid spec: Failed, its generation never observed (the controller cannot read it): at rest.
        {"metadata": {"name": "bad", "namespace": "team-a", "generation": 1}, "status": {"phase": "Failed"}},
    ]
    assert in_flight(endpoints, [], [], [], 100.0, 30.0) == [
        "team-a/chat consolidating",
        "team-a/beta: generation 2 not observed",
        "team-a/gamma Provisioning",
        "team-a/delta without a status",
        "team-a/epsilon changing shape",
        "team-a/zeta changing shape",
    ]


def test_a_move_begun_within_the_budgets_interval_may_be_followed_by_another_so_it_is_in_flight() -> None:
    assert in_flight([], [moved(80.0)], [], [], 100.0, 30.0) == [
        f"a move began at {micro_time(80.0)}, within the budget's interval"
    ]
    assert in_flight([], [moved(60.0, series_last=90.0)], [], [], 100.0, 30.0) != []  # a series: its last
    assert in_flight([], [moved(60.0)], [], [], 100.0, 30.0) == []


def test_pods_not_ready_or_unbound_nodes_coming_and_a_restart_are_in_flight() -> None:
    pods = [("team-a/a-0", True, False), ("team-a/b-0", False, False), ("team-a/c-0", True, True)]
    assert in_flight([], [], pods, ["mi300x-new-3"], 100.0, 30.0, restarting=True) == [
        "pod team-a/a-0 not Ready",
        "pod team-a/b-0 not bound",
        "node mi300x-new-3 coming",
        "the controller restarting",
    ]


class Cluster:
    """The API server as the run reads it: `kinds` by path, changed by `then` once `ticks` steps were played."""

    def __init__(self, kinds: dict[str, list[dict[str, Any]]], ticks: int, then: dict[str, list[dict[str, Any]]]):
        self.kinds, self.ticks, self.then = kinds, ticks, then

    def all(self, kind: str) -> list[dict[str, Any]]:
        return self.kinds.get(kind, [])

    def step(self, now: float) -> None:
        self.ticks -= 1
        if self.ticks == 0:
            self.kinds |= self.then


def a_run(cluster: Cluster, tmp_path: Path) -> tuple[Run, list[float]]:
    """A run on `cluster` whose controller has run one loop more at each of the play's steps."""
    play = SimpleNamespace(step=cluster.step, pods={}, coming=[])
    run = Run(argparse.Namespace(factor=20.0, tick_s=0.001), tmp_path, cast(KubeCluster, cluster), cast(Any, play),
              cast(Any, SimpleNamespace()), "http://api", [], cast(Any, SimpleNamespace(pid=1, poll=lambda: None)),
              time.time())  # fmt: skip
    loops = [0.0]

    def loops_run() -> tuple[int, float]:
        loops[0] += 1
        return 1, loops[0]

    run.loops_run = loops_run  # type: ignore[method-assign]
    return run, loops


def test_a_move_under_way_at_the_plays_end_is_read_once_done_and_a_stale_workload_nothing_moves_still_counts(
    tmp_path: Path,
) -> None:
    # chat moves from two H100 replicas' workload to one's (make-before-break: both held while it moves); the
    # workload of "gone", whose endpoint was deleted, stays: no move, no rollout, nothing in flight holds it.
    replaced, new, orphan = workload("chat", 2, 2), workload("chat", 1, 1), workload("gone", 1, 1)
    new["metadata"]["name"] += "-2"
    under_way = {ENDPOINTS: [ready("chat", 4.0, MOVING)], DEPLOYMENTS: [replaced, new, orphan]}
    done = {ENDPOINTS: [ready("chat", 4.0)], DEPLOYMENTS: [new, orphan]}
    cluster = Cluster(under_way, 5, done)
    at_the_fixed_minute = settled_figures(cast(KubeCluster, cluster), CATALOG)
    assert at_the_fixed_minute["stale"] == 2  # the move's replaced workload read as stale, as on seed 800
    assert at_the_fixed_minute["applied"] > at_the_fixed_minute["intended"]
    run, loops = a_run(cluster, tmp_path)
    rest = run.until_rest(30.0, 30.0)
    assert rest == {"rest_minutes": rest["rest_minutes"], "rest_bound_hit": False, "in_flight_at_read": []}
    assert loops[0] >= 4  # the move ended, then the loop in flight and two whole ones
    at_rest = settled_figures(cast(KubeCluster, cluster), CATALOG)
    assert at_rest["stale"] == 1  # the deleted endpoint's workload: nothing moved it, so it counts
    assert at_rest["applied"] == workload_cost(new, CATALOG) + workload_cost(orphan, CATALOG)


def test_a_move_still_under_way_at_the_bound_is_named_with_the_figures(tmp_path: Path) -> None:
    cluster = Cluster({ENDPOINTS: [ready("chat", 4.0, MOVING)], EVENTS: [moved(time.time())]}, 0, {})
    run, _ = a_run(cluster, tmp_path)
    rest = run.until_rest(0.05, 30.0)
    assert rest["rest_bound_hit"] is True
    assert rest["in_flight_at_read"][0] == "team-a/chat consolidating"
    assert rest["in_flight_at_read"][1].startswith("a move began")


def test_loops_count_only_within_one_controller_process(tmp_path: Path) -> None:
    # A controller killed and restarted between two reads: the new process's loops count from its own first.
    run, _ = a_run(Cluster({}, 0, {}), tmp_path)
    reads = iter([(1, 10.0), (1, 11.0), (2, 12.0), (2, 13.0), (2, 14.0), (2, 15.0)])
    run.loops_run = lambda: next(reads)  # type: ignore[method-assign]
    assert run.until_rest(30.0, 30.0)["rest_bound_hit"] is False
    assert next(reads, None) is None  # rest counted from (2, 12): three more loops of process 2
