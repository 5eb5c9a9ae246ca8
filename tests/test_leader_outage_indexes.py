"""A replica that starts leading while Prometheus is down reads KAI's shared GPUs at the index the last leader
read: the Lease carries the map (`autoscaler.pods.GPU_INDEXES_NOTE`). Before, it numbered them by EGS's own
rule, so a share KAI had put on GPU 1 was read on GPU 0, where the API (which had read the map) answered a 201,
and that 201 was reported Provisioning, a node to be ordered for it, while its GPU stood free. An `egs api`
started in the outage reads the same note, else it answered on the GPU the share fills. Covers the handover
in an outage, the API's first capacity, the note kept to KAI's nodes, and a note that cannot be read."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

import autoscaler.pods
from autoscaler.controller import Controller
from autoscaler.leader import LEASE_NAME
from autoscaler.pods import GPU_INDEXES_NOTE, carried, read_carried
from autoscaler.signals import Snapshot
from common.errors import TemporaryError
from localplay.kube_standin import KubeCluster
from scheduler.inventory import SharingPolicy, build_inventory
from scheduler.synthetic import gpu_node
from tests.clock import Clock
from tests.test_controller import SETTINGS, controller
from tests.test_decide import CATALOG, NOW
from tests.test_endpoint_api import body, post
from tests.test_endpoint_api import kube as kube  # the API's fixture: kmock with alice allowed in team-a
from tests.test_gpu_indexes import EXPORTED, SHARED, answered_gpus, api
from tests.test_leader import LEASES
from tests.test_shared_gpu_recorded import kai_node, kai_pod, reservation

KAI = replace(SETTINGS, sharing={"L40S": "kai"})


class Prometheus:
    """The exporter's GPU index map while `up`, else down (the adapter's TemporaryError)."""

    def __init__(self, up: bool) -> None:
        self.up = up

    def snapshot(self, at: float, history_s: float, step_s: float, live: bool = True) -> Snapshot:
        if not self.up:
            raise TemporaryError("Prometheus: connection refused")
        return Snapshot({}, {}, {}, gpu_indexes=EXPORTED)


def leader(kube: KubeCluster, name: str, up: bool) -> Controller:
    return controller(kube, Prometheus(up), clock=Clock(NOW), name=name, settings=KAI)


def test_a_leader_that_starts_in_an_outage_keeps_the_201s_answered_beside_a_kai_share(kube: KubeCluster) -> None:
    kube.put("v1/nodes", kai_node())
    for pod in (reservation("group-b", SHARED), kai_pod("train", 16000, "group-b")):
        kube.put("v1/pods", pod)  # 16,000 MiB KAI put on GPU 1 (the exporter's index of GPU-bbbb)
    a = leader(kube, "a", up=True)
    assert a.reconcile().errors == []
    assert a.elector.step()  # a renewal: the map goes with it
    client = api(kube, lambda at: EXPORTED)
    small = post(client, body("small", model="phi-3-mini-4k-instruct"))  # beside the share, on GPU 1
    large = post(client, body("large", qualityFloor=1.0))  # alone, on GPU 0
    assert (small.status_code, large.status_code) == (201, 201), (small.text, large.text)
    a.elector.release()  # SIGTERM; Prometheus goes down before the next replica starts
    b = leader(kube, "b", up=False)
    outcome = b.reconcile()
    assert outcome.leader and outcome.decision is not None
    assert {d.name: d.phase for d in outcome.decision.endpoints} == {"small": "Pending", "large": "Pending"}
    assert outcome.decision.numbered_here == ()


def test_an_api_that_starts_in_an_outage_answers_beside_a_kai_share_by_the_lease_s_map(kube: KubeCluster) -> None:
    def down(at: float) -> Any:
        raise TemporaryError("Prometheus: connection refused")

    annotations = {GPU_INDEXES_NOTE: json.dumps(EXPORTED)}
    kube.put(LEASES, {"metadata": {"name": LEASE_NAME, "namespace": "egs-system", "annotations": annotations}})
    # The share is on GPU 1 (the exporter's index of GPU-bbbb): numbered by EGS, it was read on GPU 0, and the
    # 201 answered on GPU 1, which KAI filled.
    assert answered_gpus(kube, api(kube, down)) == [0]


def test_the_note_holds_the_kai_nodes_maps_only_and_one_that_cannot_be_read_holds_none() -> None:
    h100 = gpu_node("h100-0", CATALOG.get("H100-80GB"), 1)
    nodes = build_inventory([kai_node(), h100], CATALOG, sharing=SharingPolicy({"L40S": "kai"}))
    indexes = {**EXPORTED, "h100-0": {"GPU-cccc": 0}}
    assert read_carried(carried(indexes, nodes)) == EXPORTED
    for bad in ("", "not json", "[1, 2]", '{"l40s-0": {"GPU-aaaa": "zero"}}', None):
        assert read_carried(bad) == {}


def test_a_map_past_the_notes_limit_is_not_carried(monkeypatch: pytest.MonkeyPatch) -> None:
    # A renewal whose annotations pass the API server's 256 KiB would be refused, and the leadership lost with it.
    nodes = build_inventory([kai_node()], CATALOG, sharing=SharingPolicy({"L40S": "kai"}))
    text = carried(EXPORTED, nodes)
    monkeypatch.setattr(autoscaler.pods, "CARRIED_MAX_CHARS", len(text) - 1)
    assert carried(EXPORTED, nodes) == ""
