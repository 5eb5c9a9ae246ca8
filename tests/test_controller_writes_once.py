"""A controller loop works out which of its decision's objects to write once (`controller._to_write`: every
object compared with the cluster's, its managedFields walked), not once to check whether it places a replica
and again to write: at 1,000 endpoints that is thousands of objects a loop. Covers: a first loop (objects to
write) and a second (nothing to write); a loop that decides again (an endpoint posted while it decided)
works it out once a decision, and writes what the second decision found (the endpoint posted meanwhile's
workload among it)."""

from __future__ import annotations

import autoscaler.controller as controller_module
from autoscaler.decide.workloads import owning_endpoint
from localplay.kube_standin import KubeCluster
from tests.conftest import Spy
from tests.test_answer_race import leading, one_gpu
from tests.test_controller import ENDPOINTS, FixedSignals, controller
from tests.test_decide import endpoint, h100


def test_a_loop_works_out_what_to_write_once(kube: KubeCluster, spy: Spy) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    ctl = controller(kube, FixedSignals(demand=3.0))
    calls = spy(controller_module, "_to_write")
    first = ctl.reconcile()
    assert first.writes >= 5 and len(calls) == 1
    assert len(calls[0].returned) >= 4  # objects to write: workload, Service, PriorityClass, balloon
    second = ctl.reconcile()
    assert (second.writes, [len(c.returned) for c in calls[1:]]) == (0, [0])


def test_a_loop_that_decides_again_works_it_out_once_a_decision(kube: KubeCluster, spy: Spy) -> None:
    kube.put("v1/nodes", one_gpu("gpu-0"))
    kube.put(ENDPOINTS, endpoint("first", 1, 1))

    def posted() -> None:
        kube.put(ENDPOINTS, endpoint("second", 1, 1))

    ctl, cluster = leading(kube, posted)
    calls = spy(controller_module, "_to_write")
    ctl.reconcile()
    assert cluster.endpoint_lists == 2  # listed, then listed again: it decided again
    assert len(calls) == 2
    # Every Deployment here was written by this loop: the second endpoint's comes from the second decision only.
    owners = {(owning_endpoint(d) or ("",))[0] for d in kube.all("apps/v1/deployments")}
    assert {"first", "second"} <= owners
