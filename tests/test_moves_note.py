"""A new leader counts the moves the last one began on endpoints deleted since (issue 16, churn seed 3153).

Churn seed 3153 (`--consolidation 0.1 --fleet shared`) spent 7 nodes in one interval where 4 were allowed: the
leader moved five endpoints off four nodes, the play deleted four of them 90 s (of its clock) later and handed the
leadership over 4 s after that. The old leader remembered the moves (`Observation.moves_begun`); the new one read
the budget from the statuses, and a deleted endpoint takes its status with it, so it counted one node and moved
three more. The leader now leaves its moves on the Lease (`MOVES_NOTE`), as it leaves KAI's GPU indexes."""

from __future__ import annotations

from dataclasses import replace

from autoscaler.controller import merged_moves
from autoscaler.decide import Observation, decide
from autoscaler.decide.state import MOVES_NOTE, Move, moves_note, read_moves_note
from autoscaler.leader import LEASE_NAME
from localplay.kube_standin import KubeCluster
from tests.clock import Clock
from tests.test_consolidation_moves_counted import TWO, moved
from tests.test_consolidation_within_class import lone_endpoints
from tests.test_decide import CATALOG, NOW, REGISTRY, signals
from tests.test_endpoint_api import kube as kube  # kmock, as the controller tests use it
from tests.test_leader import LEASES, NAMESPACE, elector
from tests.test_leader_outage_indexes import leader

GONE = Move(NOW - 100, "team-a", ("gone-fp8-l40s",), nodes=("l40s-8", "l40s-9"))
"""A move 100 s ago off two nodes, a budget of two's whole interval, of an endpoint deleted since."""


def test_the_deleted_endpoints_move_read_from_the_note_spends_the_budget_a_new_leader_has() -> None:
    nodes, eps, owned, pods = lone_endpoints(("alpha", "beta", "gamma", "delta"))
    carried = merged_moves((), read_moves_note(moves_note((("team-a/gone", GONE),)), NOW), 600.0, NOW)
    for begun, moves in (((), True), (carried, False)):  # no record (before), and the note's
        obs = Observation(nodes, eps, owned, signals(), pods=pods, moves_begun=begun)
        assert bool(moved(decide(obs, TWO, REGISTRY, CATALOG, NOW))) is moves


def test_a_new_leader_reads_the_moves_the_lease_carries(kube: KubeCluster) -> None:
    annotations = {MOVES_NOTE: moves_note((("team-a/gone", GONE), ("team-a/long-ago", replace(GONE, at=NOW - 5000))))}
    kube.put(LEASES, {"metadata": {"name": LEASE_NAME, "namespace": "egs-system", "annotations": annotations}})
    b = leader(kube, "b", up=True)
    assert b.reconcile().leader
    [(key, move)] = b.moves_begun  # the one within the interval (600 s)
    assert (key, int(move.at), move.nodes) == ("team-a/gone", int(NOW - 100), GONE.nodes)
    assert b.elector.step()  # its renewal carries them on
    assert read_moves_note(b.elector.noted(MOVES_NOTE), NOW) == b.moves_begun


def test_the_last_loops_moves_go_with_the_lease_handed_back(kube: KubeCluster) -> None:
    # SIGTERM: the loop in progress ends, then the Lease is handed back. Its notes went with renewals only, so the
    # moves of that last loop reached no other replica.
    a = elector(kube, "a", Clock())
    assert a.step()
    a.note(MOVES_NOTE, moves_note((("team-a/gone", GONE),)))  # the last loop's, after the last renewal
    a.release()
    found = kube.get(LEASES, NAMESPACE, LEASE_NAME)
    assert found is not None and found["spec"]["holderIdentity"] == ""
    [(key, move)] = read_moves_note(found["metadata"]["annotations"][MOVES_NOTE], NOW)
    assert (key, move.nodes) == ("team-a/gone", GONE.nodes)


def test_a_note_that_cannot_be_read_holds_no_move() -> None:
    for bad in ("", "not json", "{}", "[1]", '[{"endpoint": "nonamespace"}]', '[{"endpoint": "a/b", "at": 3}]', None):
        assert read_moves_note(bad, NOW) == ()
