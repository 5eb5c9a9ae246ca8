"""Which GPU a KAI or HAMi share is on: read from what the scheduler wrote on the pod, not inferred.

Both schedulers binpack a memory share onto the tightest GPU; the decide step used to put a bound share
of another workload on the lowest GPU with room, and EGS's own at the GPU its workload planned, so the
controller's (and the API's) free memory per GPU could differ from the scheduler's: a GPU answered as
free could be full. Covers: HAMi's device annotation against the UUIDs the node registers (a foreign
share and an incumbent), KAI's GPU group against its reservation pod (a UUID, or an index), the
reservation pod holding nothing more, and annotations that cannot be read (inferred, carried in the
decision, logged once by the controller and by the API).
"""

from __future__ import annotations

import json
import logging
import random
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient

from autoscaler.adapters.api import Services, create_app
from autoscaler.adapters.kubernetes import Cluster
from autoscaler.admission import capacity
from autoscaler.decide import Observation, Settings, decide
from autoscaler.pods import HAMI_DEVICES, KAI_GPU_GROUP, KAI_RESERVED, with_devices, without_foreign_pods
from benchmarks.churnkit.play import Play, reservation_pod
from benchmarks.churnkit.prometheus import exported_gpus
from benchmarks.churnkit.scenario import hami_registered
from localplay.kube_standin import KubeCluster
from scheduler.inventory import HAMI_REGISTER, SharingPolicy, build_inventory
from scheduler.synthetic import gpu_node
from tests.test_controller import FixedSignals, controller
from tests.test_decide import CATALOG, MODEL, NOW, REGISTRY, endpoint
from tests.test_decide import SETTINGS as SETTINGS_API
from tests.test_endpoint_api import ALICE, body, kube  # noqa: F401 (the fixture)
from tests.test_shared_gpu_binpack import REGISTRY as REGISTRY_PLAY
from tests.test_shared_gpu_binpack import Nodes, pod

H200 = CATALOG.get("H200-141GB").vram_mib
L40S = CATALOG.get("L40S").vram_mib
SHARING = {"H200-141GB": "hami", "L40S": "kai"}
UUIDS = ("GPU-5f0c3e1a-0000-4000-8000-000000000000", "GPU-9b7d2c4e-0000-4000-8000-000000000001")


def hami_node(name: str = "h200-0", register: str | None = None) -> dict[str, Any]:
    """An H200 node with two GPUs, registered by HAMi's device plugin (GPU 1 listed first, as NVML may)."""
    node = gpu_node(name, CATALOG.get("H200-141GB"), 2)
    listed = [{"id": UUIDS[1], "index": 1, "count": 10, "devmem": H200}, {"id": UUIDS[0], "count": 10, "devmem": H200}]
    node["metadata"]["annotations"] = {HAMI_REGISTER: json.dumps(listed) if register is None else register}
    return node


def hami_pod(name: str, mib: int, recorded: str | None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A pod HAMi bound to `h200-0` with `mib` on one GPU; `recorded`: its device annotation."""
    limits = {"nvidia.com/gpu": "1", "nvidia.com/gpumem": str(mib)}
    annotations = {HAMI_DEVICES[0]: recorded, HAMI_DEVICES[1]: recorded} if recorded is not None else {}
    return {
        "metadata": {"name": name, "namespace": "ml", "labels": labels or {}, "annotations": annotations},
        "spec": {"nodeName": "h200-0", "containers": [{"name": "c", "resources": {"limits": limits}}]},
        "status": {"phase": "Running"},
    }


def free_mib(obs: Observation, node: str) -> list[int]:
    """Free MiB per GPU of `node` in the capacity the API answers from, after one decide step."""
    decision = decide(obs, Settings(sharing=SHARING), REGISTRY, CATALOG, NOW)
    return [g.free_mib for g in capacity(decision, CATALOG).free.node(node).gpus]


def test_a_foreign_hami_share_binpacked_on_gpu_1_leaves_gpu_0_free_in_the_apis_view() -> None:
    # 100 GiB on GPU 1, where HAMi binpacked it; the lowest GPU with room (0) is what was inferred.
    share = hami_pod("train", 102400, f"{UUIDS[1]},NVIDIA,102400,0:;")
    assert free_mib(Observation(nodes=[hami_node()], endpoints=[], pods=[share]), "h200-0") == [H200, H200 - 102400]


def test_an_incumbent_hami_replica_stays_on_the_gpu_hami_gave_it_not_the_one_planned() -> None:
    shape = {
        "egs.io/model": MODEL,
        "egs.io/variant": "bf16",
        "egs.io/precision": "bf16",
        "egs.io/gpu-class": "H200-141GB",
        "egs.io/sharing": "hami",
        "egs.io/tensor-parallel": "1",
        "egs.io/nodes-per-replica": "1",
        "egs.io/vram-mib-per-gpu": "34003",
        "egs.io/placement": json.dumps([{"workers": [["h200-0", [0]]]}]),
    }
    workload = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "chat-bf16-h200",
            "namespace": "team-a",
            "annotations": {"egs.io/request-name": "chat", **shape},
        },
        "spec": {"replicas": 1},
        "status": {"readyReplicas": 1},
    }
    labels = {
        "app.kubernetes.io/managed-by": "egs",
        "egs.io/request": "chat",
        "egs.io/workload": "chat-bf16-h200",
        "app.kubernetes.io/component": "server",
    }
    ours = hami_pod("chat-0", 34003, f"{UUIDS[1]},NVIDIA,34003,0:;", labels)
    ours["metadata"]["namespace"] = "team-a"
    ours["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    # Another workload's 117 GiB share, binpacked by HAMi on GPU 0: it fits there only if chat is on GPU 1.
    train = hami_pod("train", 120000, f"{UUIDS[0]},NVIDIA,120000,0:;")
    obs = Observation(nodes=[hami_node()], endpoints=[endpoint(lo=1, hi=1)], owned=[workload], pods=[ours, train])
    decision = decide(obs, Settings(sharing=SHARING), REGISTRY, CATALOG, NOW)
    chat = [p for p in decision.placed.placements if p.request == "chat"]
    assert [w.gpus for p in chat for w in p.workers] == [(1,)]
    assert [g.free_mib for g in capacity(decision, CATALOG).free.node("h200-0").gpus] == [H200 - 120000, H200 - 34003]


def kai_node(name: str = "l40s-0") -> dict[str, Any]:
    return gpu_node(name, CATALOG.get("L40S"), 2)


def kai_pod(name: str, mib: int, group: str | None, node: str = "l40s-0") -> dict[str, Any]:
    """A pod KAI Scheduler shares a GPU for, bound to `node`, in GPU group `group`."""
    return {
        "metadata": {
            "name": name,
            "namespace": "ml",
            "labels": {KAI_GPU_GROUP: group} if group else {},
            "annotations": {"gpu-memory": str(mib)},
        },
        "spec": {"nodeName": node, "schedulerName": "kai-scheduler", "containers": [{"name": "c"}]},
        "status": {"phase": "Running"},
    }


def reservation(group: str, device: str, node: str = "l40s-0") -> dict[str, Any]:
    """KAI's reservation pod for `group`: it asks for the whole GPU and names it."""
    limits = {"nvidia.com/gpu": "1"}
    return {
        "metadata": {
            "name": f"gpu-reservation-{node}-{group[:5]}",
            "namespace": "kai-resource-reservation",
            "labels": {"app": "kai-resource-reservation", KAI_GPU_GROUP: group},
            "annotations": {KAI_RESERVED: device},
            "creationTimestamp": f"2026-12-07T02:0{len(group) % 10}:00Z",
        },
        "spec": {"nodeName": node, "containers": [{"name": "resource-reservation", "resources": {"limits": limits}}]},
        "status": {"phase": "Running"},
    }


def kai_free(pods: list[dict[str, Any]]) -> list[int]:
    inventory = build_inventory([kai_node()], CATALOG, sharing=SharingPolicy(SHARING))
    return [g.free_mib for g in without_foreign_pods(with_devices(inventory, pods)[0], pods).node("l40s-0").gpus]


def test_kai_shares_of_two_gpu_groups_are_on_two_gpus_and_their_reservation_pods_hold_nothing_more() -> None:
    # 20 GiB each, on the GPUs of two groups: inferred, both went on GPU 0 (and each reservation pod took a
    # GPU whole), so a 30 GiB replica was planned on a GPU 1 that is not free.
    pods = [
        reservation("group-a", "GPU-aaaa"),
        reservation("group-bb", "GPU-bbbb"),
        kai_pod("a", 20480, "group-a"),
        kai_pod("b", 20480, "group-bb"),
    ]
    assert kai_free(pods) == [L40S - 20480, L40S - 20480]


def test_kai_shares_of_one_group_are_on_one_gpu_as_kai_gives_its_index() -> None:
    # An index in the reservation (as a scheduler of old wrote it) is the GPU; both shares are there.
    pods = [reservation("group-a", "1"), kai_pod("a", 10240, "group-a"), kai_pod("b", 10240, "group-a")]
    assert kai_free(pods) == [L40S, L40S - 20480]


def test_kai_saying_it_knows_no_gpu_yet_leaves_its_shares_inferred() -> None:
    # KAI writes -1 while its reservation pod has not named the GPU: not a GPU of its own, so the
    # shares of the group are where inference puts them (the lowest GPU with room), not on a made-up one.
    pods = [reservation("group-a", "-1"), kai_pod("a", 10240, "group-a"), kai_pod("b", 40000, "group-a")]
    assert kai_free(pods) == [L40S - 10240, L40S - 40000]


@pytest.mark.parametrize(
    "recorded",
    ["GPU-x,NVIDIA", f"{UUIDS[1]},NVIDIA,lots,0:;", f"{UUIDS[1]},NVIDIA,-5,0:;"],
    ids=["fields-missing", "memory-not-a-number", "memory-negative"],
)
def test_a_hami_annotation_that_cannot_be_read_is_inferred_and_carried_in_the_decision(recorded: str) -> None:
    share = hami_pod("bad", 102400, recorded)
    obs = Observation(nodes=[hami_node()], endpoints=[], pods=[share])
    assert free_mib(obs, "h200-0") == [H200 - 102400, H200]
    decision = decide(obs, Settings(sharing=SHARING), REGISTRY, CATALOG, NOW)
    assert decision.unreadable == (("ml/bad", recorded),)


def test_an_unreadable_annotation_is_logged_once_by_the_controller_and_by_the_api(
    kube: KubeCluster,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The decide step, which the API runs too, logs nothing itself: each caller reports what the decision
    carries once, when it starts, as it reports a skipped node."""
    kube.put("v1/nodes", hami_node())
    kube.put("v1/pods", hami_pod("bad", 102400, "GPU-x,NVIDIA"))
    services = Services(
        Cluster(kube.api_client()), SETTINGS_API, REGISTRY, CATALOG, clock=lambda: NOW, capacity_ttl_s=0
    )
    app = TestClient(create_app(services))
    ctl = controller(kube, FixedSignals(demand=1.0))
    with caplog.at_level(logging.WARNING):
        ctl.reconcile()
        ctl.reconcile()
        for name in ("one", "two"):
            assert app.post("/v1/namespaces/team-a/endpoints", json=body(name), headers=ALICE).status_code < 300
    said = [(r.name, r.getMessage()) for r in caplog.records if "cannot be read" in r.getMessage()]
    line = "pod ml/bad: HAMi device annotation 'GPU-x,NVIDIA' cannot be read; its GPUs are inferred"
    assert sorted(said) == [("egs.api", line), ("egs.controller", line)]


@pytest.mark.parametrize("register", ["not json", '[{"index": 0}]', json.dumps([{"id": UUIDS[1], "index": 5}])])
def test_a_register_annotation_that_cannot_be_read_maps_nothing_and_the_share_stays_counted(register: str) -> None:
    # Unmapped, HAMi's UUID is given a GPU of its own (the lowest), as a KAI node's: the share is counted once.
    share = hami_pod("train", 102400, f"{UUIDS[1]},NVIDIA,102400,0:;")
    assert free_mib(Observation(nodes=[hami_node(register=register)], endpoints=[], pods=[share]), "h200-0") == [
        H200 - 102400,
        H200,
    ]


@pytest.mark.parametrize(
    ("gpu_class", "asks"),
    [
        ("H200-141GB", [({}, {"nvidia.com/gpu": "1", "nvidia.com/gpumem": str(m)}) for m in (50000, 100000, 40000)]),
        ("L40S", [({"gpu-memory": str(m)}, {}) for m in (20000, 40000, 5000)]),
    ],
    ids=["hami", "kai"],
)
def test_the_churn_plays_scheduler_writes_where_it_binpacked_as_the_controller_reads_it(
    gpu_class: str, asks: list[tuple[dict[str, str], dict[str, str]]]
) -> None:
    """The play binpacks shares itself and records them as HAMi and KAI do; the controller's reading of
    those pods (with KAI's reservation pods) is the play's own per-GPU view, GPU by GPU."""
    node = gpu_node("n-0", CATALOG.get(gpu_class), 4)
    node = hami_registered(node) if gpu_class == "H200-141GB" else node
    stand_in = Nodes([node])
    play = Play(cast(KubeCluster, stand_in), CATALOG, REGISTRY_PLAY, random.Random(0), 20.0)
    for i, (kai, resources) in enumerate(asks):
        share = pod(f"p{i}", gpu_class, kai, resources)
        play.pods[share.key] = share
        play._schedule(float(i), stand_in.nodes)  # one at a time: the second binpacks beside the first
    bound = [{**p.obj(), "status": {"phase": "Running"}} for p in play.pods.values()]
    bound += [
        reservation_pod("n-0", i) for p in play.pods.values() for a in p.held for i in a.gpus if a.sharing == "kai"
    ]
    inventory = build_inventory([node], CATALOG, sharing=SharingPolicy(SHARING))
    # KAI's UUIDs at NVML's index, as the play's exporter series give them (HAMi's the node registers).
    indexes = {"n-0": {s["UUID"]: int(s["gpu"]) for s in exported_gpus([node])}}
    read = without_foreign_pods(with_devices(inventory, bound, indexes)[0], bound).node("n-0")
    played = play._inventory(stand_in.nodes).node("n-0")
    # The third share is binpacked on GPU 1, where the lowest GPU with room (0) was inferred: the very GPUs.
    assert [g.free_mib for g in read.gpus] == [g.free_mib for g in played.gpus]


def test_a_201_whose_answered_gpu_a_binpacked_share_filled_keeps_its_node_on_another_gpu() -> None:
    # chat was answered 201 on GPU 0 of h200-0; HAMi then binpacked another workload's 117 GiB share there.
    # GPU 1 holds chat as well, and HAMi, not EGS, picks the GPU: the promise is kept on its node, not
    # placed again (on h200-1's GPU 0, the tightest fit) and revised.
    promised = {"variant": "bf16", "gpuClass": "H200-141GB", "sharing": "hami", "tensorParallel": 1}
    promised |= {"vramMiBPerGpu": 34003, "workers": [{"node": "h200-0", "gpus": [0]}]}
    promise = {"answer": "Created", "variant": "bf16", "gpuClass": "H200-141GB", "observedGeneration": 3}
    chat = endpoint(lo=1, hi=1, status={"promise": {**promise, "placements": [promised]}})
    other = hami_node("h200-1")
    other["metadata"]["annotations"][HAMI_REGISTER] = json.dumps(
        [{"id": "GPU-other-0"}, {"id": "GPU-other-1", "index": 1}]
    )
    pods = [
        hami_pod("train", 120000, f"{UUIDS[0]},NVIDIA,120000,0:;"),
        hami_pod("batch", 100000, "GPU-other-0,NVIDIA,100000,0:;"),
    ]
    pods[1]["spec"]["nodeName"] = "h200-1"
    obs = Observation(nodes=[hami_node(), other], endpoints=[chat], pods=pods)
    decision = decide(obs, Settings(sharing=SHARING), REGISTRY, CATALOG, NOW)
    placed = [(w.node, w.gpus) for p in decision.placed.placements if p.request == "chat" for w in p.workers]
    assert placed == [("h200-0", (1,))]
    conditions = decision.statuses[("team-a", "chat")].get("conditions") or []
    assert not [c for c in conditions if c["type"] == "PromiseKept" and c["status"] == "False"]


def test_a_share_whose_annotation_cannot_be_read_is_inferred_after_the_shares_recorded() -> None:
    """Listed first, a pod with an unreadable annotation was taken as recorded and put on GPU 0 by inference,
    so the share HAMi recorded on GPU 0 found no room there and GPU 1 read as empty."""
    unreadable = hami_pod("odd", 102400, "not,a,device")
    recorded = hami_pod("train", 102400, f"{UUIDS[0]},NVIDIA,102400,0:;")
    obs = Observation(nodes=[hami_node()], endpoints=[], pods=[unreadable, recorded])
    assert free_mib(obs, "h200-0") == [H200 - 102400, H200 - 102400]
