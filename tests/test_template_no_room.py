"""A template rollout that waits for room on a full cluster costs one pass of the decide step a loop (issue 16).

Each turn given to a new pod template whose replicas fit nowhere made `decide` run the whole step again (up to 3
passes), loop after loop while the cluster stayed full: 3.8 s of CPU where the same loop with nothing drifted took
0.95 s, at 1,000 endpoints (`python benchmarks/reconcile.py --drift`). Now the endpoints found with no room wait
untried while the room they were tried on stays as it was (`Observation.no_room`), and take their turn once it
changes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import replace
from typing import Any

import pytest

from autoscaler import decide as decide_step
from autoscaler.admission import admit, capacity
from autoscaler.decide import Decision, Observation, answer_status, decide
from localplay.kube_standin import KubeCluster
from scheduler.registry import Registry
from tests.conftest import Spy
from tests.test_controller import ENDPOINTS, FixedSignals, controller
from tests.test_controller import SETTINGS as CONTROLLER_SETTINGS
from tests.test_decide import CATALOG, NOW, REGISTRY, endpoint, h100, training
from tests.test_reconcile_state import applied, l40s, observed, workloads
from tests.test_template_drift import mirrored, one_at_a_time, running, spec_applied, template

__all__ = ["mirrored"]  # the fixture: the registry with every endpoint's template changed

NAMES = ("alpha", "beta", "gamma")

Loop = Callable[..., tuple[Decision, int]]


def full(spy: Spy, registry: Registry, jobs: int = 0, promised: bool = False) -> tuple[Decision, Loop]:
    """Three one-GPU endpoints serving on three one-GPU L40S nodes, with `jobs` more nodes each held by another
    workload's pod (and where `promised` one more, on which delta was answered, its pod not bound yet), nothing to
    provision: the first decision, and a loop over `(nodes, other pods, endpoints deleted)` with every template
    drifted (`registry`), a minute after the one before, fed what it wrote and what the controller remembers, that
    says how many passes of the step it took."""
    nodes = [l40s(f"l40s-{i}") for i in range(3 + jobs + promised)]
    others = [training(f"l40s-{i}", 1) for i in range(3, 3 + jobs)]
    eps = [endpoint(n, gpuClasses=["L40S"]) for n in NAMES]
    first = decide(Observation(nodes, eps, (), None, pods=others), one_at_a_time(), REGISTRY, CATALOG, NOW)
    owned, pods = applied(first)
    eps = observed(first, eps)
    if promised:  # answered as the API does, on what the first decision left
        delta = endpoint("delta", gpuClasses=["L40S"])
        answer = admit(capacity(first, CATALOG), delta, one_at_a_time(), REGISTRY, CATALOG, NOW)
        assert answer.decision.serves_now
        eps.append({**delta, "status": answer_status(answer.decision, delta["metadata"]["generation"], answer.placed)})
    passes = spy(decide_step, "_decided")
    last, at = first, NOW

    def loop(
        fleet: list[dict[str, Any]], running: list[dict[str, Any]], gone: Collection[str] = ()
    ) -> tuple[Decision, int]:
        nonlocal eps, last, at
        passes.clear()
        at += 60
        eps = [ep for ep in eps if ep["metadata"]["name"] not in gone]
        obs = Observation(fleet, eps, owned, None, pods=[*pods, *running], no_room=last.no_room)
        last = decide(obs, one_at_a_time(), registry, CATALOG, at)
        eps = observed(last, eps)
        return last, len(passes)

    return first, loop


def rolled(decision: Decision, first: Decision) -> list[str]:
    """The endpoints whose new template took its turn: a workload beside the one that serves."""
    return [n for n in NAMES if set(workloads(decision, n)) != set(workloads(first, n))]


def test_a_rollout_that_waits_for_room_costs_one_pass_a_loop_while_the_room_stays(spy: Spy, mirrored: Registry) -> None:
    first, loop = full(spy, mirrored)
    nodes = [l40s(f"l40s-{i}") for i in range(3)]
    made = [loop(nodes, []) for _ in range(6)]
    # alpha and beta tried on the first loop (a pass each, and one with neither), gamma on the next; from then on
    # none is tried again: one pass a loop. Before, each loop tried two again: three passes, loop after loop.
    assert [passes for _, passes in made] == [3, 2, 1, 1, 1, 1]
    for decision, _ in made:
        assert rolled(decision, first) == [] and decision.kept == () and decision.deletions == ()
        for n in NAMES:  # each serves in the template it runs
            ((name, obj),) = workloads(decision, n).items()
            assert template(obj) == template(workloads(first, n)[name])
    said = [{n: spec_applied(d, n) for n in NAMES} for d, _ in made[1:]]
    assert all(s == said[0] for s in said)  # untried, each says what it said: no status written again
    assert {c["reason"] for c in said[0].values()} == {"TemplateChangeWaitsForRoom"}
    assert made[-1][0].no_room is not None and made[-1][0].no_room.keys == {f"team-a/{n}" for n in NAMES}


@pytest.mark.parametrize("room", ["a node joins", "another workload's pod goes", "a promise is let go"])
def test_room_that_appears_gives_a_waiting_template_its_turn_on_the_next_loop(
    spy: Spy, mirrored: Registry, room: str
) -> None:
    first, loop = full(spy, mirrored, jobs=1, promised=room == "a promise is let go")
    nodes, job = [l40s(f"l40s-{i}") for i in range(4 + (room == "a promise is let go"))], [training("l40s-3", 1)]
    for _ in range(4):
        decision, passes = loop(nodes, job)
    assert passes == 1 and rolled(decision, first) == []
    gone: tuple[str, ...] = ()
    if room == "a node joins":
        nodes = [*nodes, l40s("l40s-9")]
    elif room == "another workload's pod goes":
        job = []
    else:  # delta, answered 201 on the last GPU and deleted before its pod was bound: no pod goes
        gone = ("delta",)
    decision, passes = loop(nodes, job, gone)
    assert rolled(decision, first) == ["alpha"]  # the first in the queue, on the GPU that came free
    assert passes == 1  # its turn fits: no pass again
    assert "SpecApplied" not in {c["type"] for c in decision.statuses[("team-a", "alpha")]["conditions"]}


def test_the_controller_remembers_the_room_a_waiting_template_was_tried_on(
    kube: KubeCluster, spy: Spy, mirrored: Registry
) -> None:
    # One H100 node, seven of its GPUs held by a job, nothing to provision: the endpoint's new template (a registry
    # change) has no room beside its serving pod. The leader tries it once, then waits untried, loop after loop.
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put("v1/pods", {"apiVersion": "v1", "kind": "Pod", **training("gpu-0", 7)})
    kube.put(ENDPOINTS, endpoint())
    full_settings = replace(CONTROLLER_SETTINGS, classes={})
    ctl = controller(kube, FixedSignals(demand=1.0), settings=full_settings)
    ctl.reconcile()
    for d in kube.all("apps/v1/deployments"):
        if d["metadata"]["namespace"] == "team-a":
            labels, spec = d["spec"]["template"]["metadata"]["labels"], d["spec"]["template"]["spec"]
            kube.put("v1/pods", running(f"{d['metadata']['name']}-0", labels, spec["containers"]))
    assert ctl.reconcile().writes == 0
    before = {d["metadata"]["name"]: d["metadata"]["resourceVersion"] for d in kube.all("apps/v1/deployments")}
    ctl.registry = mirrored
    passes = spy(decide_step, "_decided")
    tried = []
    for _ in range(3):
        passes.clear()
        ctl.reconcile()
        tried.append(len(passes))
    assert tried == [2, 1, 1]  # tried and found no room, then untried while the room stays (2 a loop before)
    (ep,) = kube.all(ENDPOINTS)
    [said] = [c for c in ep["status"]["conditions"] if c["type"] == "SpecApplied"]
    assert (said["status"], said["reason"]) == ("False", "TemplateChangeWaitsForRoom")
    assert {d["metadata"]["name"]: d["metadata"]["resourceVersion"] for d in kube.all("apps/v1/deployments")} == before
