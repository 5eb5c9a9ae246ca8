"""An answer re-made after its create (`_Admissions._confirmed`) keeps its earlier GPUs taken for a few controller
intervals: a controller loop may have listed it at an earlier answer and be placing it there.

Found by churn `--api-replicas 2` (seed 752, docs/benchmark-notes.md): two POSTs at two replicas answered on the
same GPU, each listing before the other's create, were both re-made away from it; a controller loop had listed
one at its first answer and placed it there, and a view built before its pod was bound (the same replicas' after a
rebuild, or a third's) found the GPU free in every answer and answered it 201 again: demoted once the controller's
pod was bound there. The earlier answers are annotated on the endpoint with the time they were re-made
(`REMADE_ANNOTATION`), so that every replica's view holds them, a rebuilt one too, for `REMADE_HOLD_LOOPS`
intervals (a workload written is not enough: churn seed 752 again, a view that listed the workload of an endpoint
placed at its first answer, its pod not bound yet, answered that room), and a failed POST's leftover holds nothing
for good.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from autoscaler import endpoint as ie
from autoscaler.adapters.api import Services, _Admissions
from autoscaler.adapters.api_limits import REMADE_HOLD_LOOPS
from autoscaler.adapters.kubernetes import Cluster
from autoscaler.admission import REMADE_ANNOTATION, earlier
from autoscaler.controller import Controller, owned_kinds
from autoscaler.decide import EndpointDecision
from localplay.kube_standin import KubeCluster
from scheduler.synthetic import gpu_node
from tests.clock import Clock
from tests.test_answer_race import MidLoop, schedule
from tests.test_api_replicas import NOW, SPEC
from tests.test_controller import ENDPOINTS, FixedSignals
from tests.test_endpoint_api import kube as kube  # kmock, as the API's tests start it
from tests.test_promises_kept import CATALOG, REGISTRY, SETTINGS


def replica(kube: KubeCluster, cluster: Cluster | None = None, at: float = NOW) -> _Admissions:
    """One `egs api` process's admissions, its clock standing at `at`."""
    services = Services(cluster or Cluster(kube.api_client()), SETTINGS, REGISTRY, CATALOG, clock=lambda: at)
    return _Admissions(services)


class Together(Cluster):
    """The cluster as one of two replicas reaches it, their POSTs in step: both list and admit before either
    creates, and both create before either lists again (`_confirmed`): each list holds the other's answer."""

    def __init__(self, kube: KubeCluster, before: threading.Barrier, after: threading.Barrier) -> None:
        super().__init__(kube.api_client())
        self.before, self.after = before, after
        self.created: dict[str, Any] = {}
        """The endpoint as created: at its first answer."""

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        self.before.wait()
        self.created = super().create(obj)
        self.after.wait()
        return self.created


def both_remade(kube: KubeCluster, first: dict[str, dict[str, Any]] | None = None) -> list[EndpointDecision]:
    """Two replicas' POSTs answered on the one GPU of h100-0 at once, both re-made to a 202; each endpoint as created
    (at its first answer) in `first`."""
    before, after = threading.Barrier(2, timeout=30), threading.Barrier(2, timeout=30)
    answers: dict[str, EndpointDecision] = {}

    def post(name: str) -> None:
        cluster = Together(kube, before, after)
        answers[name], _, _ = replica(kube, cluster).admit(ie.manifest("team-a", name, SPEC))
        if first is not None:
            first[name] = cluster.created

    threads = [threading.Thread(target=post, args=(name,)) for name in ("one", "two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(answers) == ["one", "two"]
    return [answers["one"], answers["two"]]


def test_a_view_built_after_both_answers_were_re_made_keeps_their_first_gpu(kube: KubeCluster) -> None:
    kube.put("v1/nodes", gpu_node("h100-0", CATALOG.get("H100-80GB"), 1))
    one, two = both_remade(kube)
    assert not one.serves_now and not two.serves_now  # each yielded the GPU to the other
    # A controller loop may have listed either at its first answer (201 on h100-0 GPU 0) and be writing its
    # workload there: a view built now (a third replica's) must not answer that GPU 201 again.
    three, created, _ = replica(kube).admit(ie.manifest("team-a", "three", SPEC))
    assert created is not None
    assert not three.serves_now


def test_the_earlier_answers_are_held_a_few_controller_intervals_at_most(kube: KubeCluster) -> None:
    kube.put("v1/nodes", gpu_node("h100-0", CATALOG.get("H100-80GB"), 1))
    both_remade(kube)
    # No workload of either showed up (no controller runs): a failed POST's leftover holds nothing for good.
    later = NOW + REMADE_HOLD_LOOPS * SETTINGS.eta.step_s
    three, _, _ = replica(kube, at=later).admit(ie.manifest("team-a", "three", SPEC))
    assert three.serves_now


class ListedFirst(MidLoop):
    """The controller's adapter, whose loops list `first` (endpoints at their first answer, by name) in place of the
    endpoint as it is: a loop that listed them between their create and their answer re-made."""

    def __init__(self, *args: Any, first: dict[str, dict[str, Any]], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.first = first

    def endpoints(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return [self.first.get(o["metadata"]["name"], o) for o in super().endpoints(namespace)]


def test_a_201_answered_beside_a_loop_that_listed_a_re_made_answer_at_its_first_is_not_demoted(
    kube: KubeCluster,
) -> None:
    kube.put("v1/nodes", gpu_node("h100-0", CATALOG.get("H100-80GB"), 1))
    first: dict[str, dict[str, Any]] = {}
    both_remade(kube, first)
    answers: list[EndpointDecision] = []
    post_three = lambda: answers.append(replica(kube).admit(ie.manifest("team-a", "three", SPEC))[0])  # noqa: E731
    # The loop lists `one` at its first answer (201 on h100-0 GPU 0), three is answered, and the loop places one.
    cluster = ListedFirst(kube.api_client(), owned_kinds=owned_kinds(SETTINGS), then=post_three, first=first)
    ctl = Controller(cluster, FixedSignals(demand=1.0), SETTINGS, REGISTRY, CATALOG, "a", clock=Clock(NOW))
    ctl.elector.step()
    assert ctl.reconcile().errors == []
    schedule(kube)
    cluster.first = {}  # the next loop lists the endpoints as they are
    assert ctl.reconcile().errors == []

    (three,) = answers
    status = (kube.get(ENDPOINTS, "team-a", "three") or {}).get("status") or {}
    demoted = three.serves_now and status.get("phase") == "Provisioning"
    assert not demoted, status


def test_earlier_answers_re_made_years_ahead_hold_nothing(kube: KubeCluster) -> None:
    """An answer re-made ten years ahead (the annotation edited, a replica's clock far off) held its GPUs from every
    other POST for ten years."""
    kube.put("v1/nodes", gpu_node("h100-0", CATALOG.get("H100-80GB"), 1))
    both_remade(kube)
    for name in ("one", "two"):
        obj = kube.get(ENDPOINTS, "team-a", name) or {}
        past = earlier(obj)
        ahead = json.dumps({"at": NOW + 10 * 365 * 86400, "answers": list(past.answers)})
        kube.patch(ENDPOINTS, "team-a", name, {"metadata": {"annotations": {REMADE_ANNOTATION: ahead}}})
    three, _, _ = replica(kube).admit(ie.manifest("team-a", "three", SPEC))
    assert three.serves_now
