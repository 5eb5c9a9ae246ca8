"""A standby checks each Node as a leader's loop does (remembered by its JSON text), so that its first loop as
leader checks none it has seen: cold, those checks were most of a new leader's first loop (0.46-0.60 s against
0.08-0.14 s for its next loops, 224 nodes and 40 endpoints, load 4). The engine it imports on its first batch is
loaded by the standby too, which a test in this process cannot see (another test imported it)."""

from __future__ import annotations

import uuid

import scheduler.inventory
from localplay.kube_standin import KubeCluster
from tests.conftest import Spy
from tests.test_controller import ENDPOINTS, FixedSignals, controller
from tests.test_decide import endpoint, h100


def test_a_standby_checks_the_nodes_so_that_its_first_loop_as_leader_checks_none(kube: KubeCluster, spy: Spy) -> None:
    kube.put("v1/nodes", h100(f"gpu-{uuid.uuid4().hex[:8]}"))  # a Node no other test checked in this process
    kube.put(ENDPOINTS, endpoint())
    checked = spy(scheduler.inventory, "check")
    standby = controller(kube, FixedSignals(demand=1.0), lead=False)
    assert not standby.reconcile().leader
    assert len(checked) == 1
    assert standby.elector.step()
    outcome = standby.reconcile()
    assert outcome.leader and outcome.errors == []
    assert len(checked) == 1  # none again
