"""KAI Scheduler's shared GPUs read at NVML's index, as the GPU exporter labels each UUID.

KAI names the GPU of a share only by its UUID (its reservation pod's `run.ai/reserve_for_gpu_index`), and a
KAI node registers no UUIDs, so EGS numbered such GPUs itself: the lowest index no registered GPU has, the
UUID whose oldest pod is oldest first. That keeps one GPU's shares together, but the number moves when a
GPU before it stops being shared, and it is not the GPU the scheduler gave: a share could be read on the
GPU a 201 was answered on. dcgm-exporter and EGS's exporter label every GPU's series with `Hostname`,
`UUID` and `gpu` (NVML's index); the controller and `egs api` now read that map from Prometheus
(`GPU_INDEXES`), and number by EGS's rule only what no series maps, saying so once per node.
Covers: the map in the decide step, in the API's answer, in the adapter and in the churn play's
published series; a node without series; pairs that cannot be right. Not covered: MIG instances (KAI
does not share them).
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from autoscaler.adapters.api import Services, _Admissions, create_app
from autoscaler.adapters.kubernetes import Cluster
from autoscaler.adapters.prometheus import GPU_INDEXES, PrometheusMetrics
from autoscaler.admission import capacity
from autoscaler.decide import PROMISE_ANNOTATION, Decision, Observation, Settings, decide, report
from autoscaler.pods import merged_indexes
from benchmarks.churnkit.prometheus import PrometheusStandIn
from benchmarks.churnkit.scenario import gpu_uuid
from common.errors import TemporaryError
from localplay.kube_standin import KubeCluster
from scheduler.synthetic import gpu_node
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS
from tests.test_endpoint_api import ALICE, body, post
from tests.test_endpoint_api import kube as kube  # the API's fixture: kmock with alice allowed in team-a
from tests.test_shared_gpu_recorded import kai_node, kai_pod, reservation

REPO = Path(__file__).resolve().parent.parent
L40S = CATALOG.get("L40S").vram_mib
SHARED = "GPU-bbbb"
"""The UUID of the L40S node's GPU 1, which KAI shares."""
EXPORTED = {"l40s-0": {"GPU-aaaa": 0, SHARED: 1}}


def shared_on_gpu_1(mib: int = 30000) -> list[dict[str, Any]]:
    """A share of another workload on GPU 1 of `l40s-0` (as KAI binpacked it), and its reservation pod."""
    return [reservation("group-b", SHARED), kai_pod("train", mib, "group-b")]


def decided(pods: list[dict[str, Any]], indexes: dict[str, dict[str, int]]) -> Decision:
    obs = Observation(nodes=[kai_node()], endpoints=[], pods=pods, gpu_indexes=indexes)
    return decide(obs, Settings(sharing={"L40S": "kai"}), REGISTRY, CATALOG, NOW)


def free_mib(decision: Decision) -> list[int]:
    return [g.free_mib for g in capacity(decision, CATALOG).free.node("l40s-0").gpus]


def test_a_kai_share_is_read_on_the_gpu_the_exporter_numbers_its_uuid() -> None:
    # Numbered by EGS, the only UUID shared took GPU 0, the lowest; the exporter says GPU 1.
    assert free_mib(decided(shared_on_gpu_1(), EXPORTED)) == [L40S, L40S - 30000]


def test_a_share_stays_on_its_gpu_when_the_gpu_before_it_stops_being_shared() -> None:
    # GPU 0 was shared first (its reservation pod older), so EGS's numbering gave GPU-bbbb index 1; once GPU 0's
    # share went, GPU-bbbb became index 0, and the share was read on the GPU left free a loop before.
    older = reservation("group-a", "GPU-aaaa")
    older["metadata"]["creationTimestamp"] = "2026-12-07T01:00:00Z"
    before = decided([older, kai_pod("batch", 10000, "group-a"), *shared_on_gpu_1()], EXPORTED)
    after = decided(shared_on_gpu_1(), EXPORTED)
    assert free_mib(before) == [L40S - 10000, L40S - 30000]
    assert free_mib(after) == [L40S, L40S - 30000]


@pytest.mark.parametrize(
    "indexes",
    [{}, {"l40s-1": {SHARED: 1}}, {"l40s-0": {SHARED: 7}}, {"l40s-0": {SHARED: 1, "GPU-aaaa": 1}}],
    ids=["no-series", "another-node", "index-out-of-range", "index-given-twice"],
)
def test_a_uuid_no_series_maps_is_numbered_by_egs_and_said_once(
    indexes: dict[str, dict[str, int]], caplog: pytest.LogCaptureFixture
) -> None:
    decision = decided(shared_on_gpu_1(), indexes)
    assert free_mib(decision) == [L40S - 30000, L40S]  # the lowest index: the shares of one GPU stay together
    assert decision.numbered_here == ("l40s-0",)
    said: frozenset[str] = frozenset()
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            said = report(decided(shared_on_gpu_1(), indexes), said, logging.getLogger("test"))
    assert sum("l40s-0: no exporter series maps" in r.getMessage() for r in caplog.records) == 1
    assert decided(shared_on_gpu_1(), EXPORTED).numbered_here == ()


def api(kube: KubeCluster, indexes: Any) -> TestClient:
    settings = replace(SETTINGS, sharing={"L40S": "kai"})
    services = Services(Cluster(kube.api_client()), settings, REGISTRY, CATALOG, clock=lambda: NOW, gpu_indexes=indexes)
    return TestClient(create_app(services))


def answered_gpus(kube: KubeCluster, client: TestClient) -> list[int]:
    """The GPUs of `l40s-0` the API answers a new endpoint on, beside a 40,000 MiB share on GPU 1."""
    kube.put("v1/nodes", kai_node())
    for pod in shared_on_gpu_1(40000):
        kube.put("v1/pods", pod)
    answer = post(client, body())
    assert answer.status_code == 201, answer.text
    created = kube.get("egs.dev/v1alpha1/inferenceendpoints", "team-a", "chat") or {}
    promise = json.loads(created["metadata"]["annotations"][PROMISE_ANNOTATION])
    return [g for p in promise["placements"] for w in p["workers"] for g in w["gpus"]]


def test_the_api_answers_on_the_gpu_left_free_by_nvmls_index(kube: KubeCluster) -> None:
    # Numbered by EGS, the share was read on GPU 0, and the endpoint answered GPU 1: the GPU KAI filled.
    assert answered_gpus(kube, api(kube, lambda at: EXPORTED)) == [0]


def test_a_posts_build_reads_the_indexes_only_until_a_read_answered(kube: KubeCluster) -> None:
    # Read under the API's lock at every build, a slow Prometheus held every POST back while Nodes changed;
    # the map is refreshed every decide step and by a background rebuild instead.
    reads: list[float] = []

    def counted(at: float) -> Any:
        reads.append(at)
        return EXPORTED

    client = api(kube, counted)
    kube.put("v1/nodes", gpu_node("h100-0", CATALOG.get("H100-80GB"), 1))
    assert post(client, body("first"), ALICE).status_code == 201  # its capacity build read the indexes
    assert answered_gpus(kube, client) == [0]  # the L40S node joined: built again, from the map read before
    assert len(reads) == 1


def test_a_prometheus_that_never_answers_is_tried_by_one_build_only(kube: KubeCluster) -> None:
    reads: list[float] = []

    def down(at: float) -> Any:
        reads.append(at)
        raise TemporaryError("Prometheus down")

    client = api(kube, down)
    kube.put("v1/nodes", gpu_node("h100-0", CATALOG.get("H100-80GB"), 1))
    assert post(client, body("first"), ALICE).status_code == 201
    kube.put("v1/nodes", gpu_node("h100-1", CATALOG.get("H100-80GB"), 1))  # the nodes changed: built again
    assert post(client, body("second"), ALICE).status_code == 201
    assert len(reads) == 1


def test_a_failed_read_of_the_indexes_keeps_the_last_one(kube: KubeCluster, caplog: pytest.LogCaptureFixture) -> None:
    reads: list[Any] = [EXPORTED]

    def flaky(at: float) -> Any:
        if not reads:
            raise TemporaryError("Prometheus down")
        return reads.pop()

    services = Services(Cluster(kube.api_client()), SETTINGS, REGISTRY, CATALOG, clock=lambda: NOW, gpu_indexes=flaky)
    admissions = _Admissions(services)
    assert admissions._read_indexes([kai_node()], NOW) == EXPORTED
    with caplog.at_level(logging.WARNING, logger="egs.api"):
        assert admissions._read_indexes([kai_node()], NOW) == EXPORTED
    assert any("GPU indexes not read" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("read", "listed", "merged"),
    [
        ({"l40s-0": {"GPU-aaaa": 0}}, ["l40s-0"], EXPORTED),  # a read without one series keeps its index
        ({"l40s-0": {"GPU-cccc": 1}}, ["l40s-0"], {"l40s-0": {"GPU-aaaa": 0, "GPU-cccc": 1}}),  # GPU 1 replaced
        ({}, ["l40s-0"], EXPORTED),  # a node listed but not read keeps its map
        ({}, [], {}),  # neither read nor listed (an exporter's Hostname changed): dropped
        ({"l40s-9": {"GPU-dddd": 0}}, [], {"l40s-9": {"GPU-dddd": 0}}),  # read before its Node is listed
    ],
    ids=["partial", "replaced", "listed", "gone", "read-first"],
)
def test_the_index_map_is_merged_uuid_by_uuid(
    read: dict[str, dict[str, int]], listed: list[str], merged: dict[str, dict[str, int]]
) -> None:
    nodes = [{"metadata": {"name": name}} for name in listed]
    assert merged_indexes(EXPORTED, read, nodes) == merged


def test_the_adapter_reads_the_indexes_the_churn_plays_exporters_publish() -> None:
    nodes = [gpu_node("l40s-0", CATALOG.get("L40S"), 2), gpu_node("mi300x-0", CATALOG.get("MI300X"), 8)]
    not_ready = gpu_node("l40s-1", CATALOG.get("L40S"), 2)
    not_ready["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    stand_in = PrometheusStandIn({}, lambda: [*nodes, not_ready])
    try:
        prometheus = PrometheusMetrics(stand_in.url)
        expected = {"l40s-0": {gpu_uuid("l40s-0", 0): 0, gpu_uuid("l40s-0", 1): 1}}
        assert prometheus.gpu_indexes(NOW) == expected
        assert prometheus.snapshot(NOW, 600.0, 60.0).gpu_indexes == expected
    finally:
        stand_in.close()


@pytest.mark.parametrize("source", ["egs", "dcgm-exporter"])
def test_the_query_read_is_the_one_promtool_checks_against_both_exporters_rules(source: str) -> None:
    assert f"expr: {GPU_INDEXES}\n" in (REPO / "alerts" / "tests" / f"{source}-rules-test.yaml").read_text()
