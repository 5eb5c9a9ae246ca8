"""Cost per team's inputs (`autoscaler.cost`), as data, and as the controller exports them.

Covers: whole GPUs count 1; a shared GPU counts by the share of its memory a pod holds (KAI
`gpu-memory` and `gpu-fraction`, HAMi `nvidia.com/gpumem`, time-slicing replicas), so that four
quarter-GPU pods are exactly one GPU; MIG instances by their share of the GPU; every namespace's pods,
EGS's and others'; only Ready nodes (for the fleet and the pods on them), only bound pods that have
not finished; the namespaces' GPUs plus the idle ones are the fleet's; prices from the catalogue or
the configured ones; the controller's series, and none from a replica that does not lead; `egs cost`
without a Prometheus (its figures from a real one are checked in tests/test_end_to_end.py). The
recording rules that turn these into dollars are tested by promtool (`alerts/tests/common-rules-test.yaml`).
"""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from autoscaler.controller import ControllerMetrics, Outcome
from autoscaler.cost import TeamCost, holdings
from egs.cli import main
from localplay.localstack import free_port
from tests.test_decide import CATALOG, serving_pod
from tests.test_decide import h100 as labelled_h100
from tests.test_pods import a100_mig, pod, timesliced

H100_MIB = 81920
"""The GPU memory the nodes here are labelled with (`nvidia.com/gpu.memory`), so that a quarter is whole MiB."""


def h100(name: str, ready: bool = True) -> dict[str, Any]:
    node = labelled_h100(name, ready)
    node["metadata"]["labels"]["nvidia.com/gpu.memory"] = str(H100_MIB)
    return node


def in_namespace(namespace: str, p: dict[str, Any]) -> dict[str, Any]:
    p["metadata"]["namespace"] = namespace
    return p


def kai(name: str, annotations: dict[str, str], node: str = "gpu-0", namespace: str = "team-a") -> dict[str, Any]:
    p = in_namespace(namespace, pod(name, {}, node=node, schedulerName="kai-scheduler"))
    p["metadata"]["annotations"] = annotations
    return p


def test_four_pods_each_holding_a_quarter_of_one_gpus_memory_are_exactly_one_gpu() -> None:
    quarter = str(H100_MIB // 4)
    pods = [kai(f"q{i}", {"gpu-memory": quarter}) for i in range(4)]
    held = holdings([h100("gpu-0")], pods, CATALOG)
    assert held.namespace_gpus == {("team-a", "H100-80GB"): 1.0}


def test_whole_gpus_count_one_each_and_every_namespace_pays_for_its_own() -> None:
    pods = [
        in_namespace("team-a", pod("train", {"nvidia.com/gpu": "3"})),
        in_namespace("team-b", pod("starting", {"nvidia.com/gpu": "2"}, phase="Pending")),  # bound: it holds them
        serving_pod("ours", "chat"),  # EGS's own replicas are charged to their namespace too
    ]
    held = holdings([h100("gpu-0")], pods, CATALOG)
    assert held.namespace_gpus == {("team-a", "H100-80GB"): 4.0, ("team-b", "H100-80GB"): 2.0}
    assert held.class_gpus == {"H100-80GB": 8}


@pytest.mark.parametrize(
    ("what", "a_pod", "node", "gpus"),
    [
        ("KAI gpu-fraction", kai("f", {"gpu-fraction": "0.5"}), h100("gpu-0"), 0.5),
        (
            "KAI gpu-memory on two devices",
            kai("m", {"gpu-memory": str(H100_MIB // 4), "gpu-fraction-num-devices": "2"}),
            h100("gpu-0"),
            0.5,
        ),
        (
            "HAMi gpumem",
            pod("h", {"nvidia.com/gpu": "1", "nvidia.com/gpumem": str(H100_MIB // 8)}),
            h100("gpu-0"),
            0.125,
        ),
        ("a time-slicing replica of four", pod("t", {"nvidia.com/gpu": "2"}), timesliced("gpu-0"), 0.5),
        ("three 1g.10gb MIG instances", pod("s", {"nvidia.com/mig-1g.10gb": "3"}), a100_mig("gpu-0"), 3 / 7),
    ],
)
def test_a_shared_gpu_counts_by_the_share_a_pod_holds(
    what: str, a_pod: dict[str, Any], node: dict[str, Any], gpus: float
) -> None:
    held = holdings([node], [a_pod], CATALOG)
    assert sum(held.namespace_gpus.values()) == pytest.approx(gpus), what


def test_only_ready_nodes_and_the_bound_pods_on_them_count() -> None:
    pods = [
        pod("on-ready", {"nvidia.com/gpu": "1"}),
        pod("on-not-ready", {"nvidia.com/gpu": "8"}, node="gpu-1"),
        pod("done", {"nvidia.com/gpu": "8"}, phase="Succeeded"),
        pod("waits", {"nvidia.com/gpu": "8"}, node=None, phase="Pending"),
        pod("on-a-cpu-node", {"nvidia.com/gpu": "8"}, node="cpu-0"),
    ]
    held = holdings([h100("gpu-0"), h100("gpu-1", ready=False)], pods, CATALOG)
    assert held.namespace_gpus == {("batch", "H100-80GB"): 1.0}
    assert held.class_gpus == {"H100-80GB": 8}


def test_held_plus_idle_is_the_fleet_and_prices_are_the_configured_ones() -> None:
    pods = [kai(f"q{i}", {"gpu-memory": str(H100_MIB // 4)}, node="gpu-1") for i in range(6)]
    pods += [in_namespace("team-b", pod("train", {"nvidia.com/gpu": "8"}))]
    held = holdings([h100("gpu-0"), h100("gpu-1")], pods, CATALOG.priced({"H100-80GB": 2.0}))
    idle = held.class_gpus["H100-80GB"] - sum(held.namespace_gpus.values())
    assert (held.namespace_gpus, idle) == ({("team-a", "H100-80GB"): 1.5, ("team-b", "H100-80GB"): 8.0}, 6.5)
    assert held.price_usd_per_hour == {"H100-80GB": 2.0}
    assert holdings([h100("gpu-0")], [], CATALOG).price_usd_per_hour == {
        "H100-80GB": CATALOG.get("H100-80GB").price_per_hour
    }


def test_the_controller_exports_them_and_a_replica_that_does_not_lead_exports_none() -> None:
    registry = CollectorRegistry()
    metrics = ControllerMetrics(registry)
    held = holdings([h100("gpu-0")], [kai("q", {"gpu-fraction": "0.25"})], CATALOG.priced({"H100-80GB": 2.0}))
    metrics.record(Outcome(leader=True, cost=held), 0.1, 1.0)
    assert registry.get_sample_value("egs_namespace_gpus", {"namespace": "team-a", "gpu_class": "H100-80GB"}) == 0.25
    assert registry.get_sample_value("egs_gpu_class_gpus", {"gpu_class": "H100-80GB"}) == 8
    assert registry.get_sample_value("egs_gpu_class_price_usd_per_hour", {"gpu_class": "H100-80GB"}) == 2.0
    metrics.record(Outcome(leader=False), 0.1, 2.0)
    assert registry.get_sample_value("egs_gpu_class_gpus", {"gpu_class": "H100-80GB"}) is None


def test_egs_cost_without_prometheus_says_so_in_one_line_and_prints_no_document(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["cost", "--prometheus", f"http://127.0.0.1:{free_port()}", "--timeout", "2", "-o", "json"]) == 4
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("egs: error: Prometheus http://127.0.0.1:") and err.count("\n") == 1


def test_dollars_print_as_cents_not_float_noise() -> None:
    cost = TeamCost(
        namespace_usd_per_hour={"a": 0.1, "b": 0.2},
        idle_usd_per_hour={"L4": 0.1 * 3},
        namespace_gpus={("a", "L4"): 1.0, ("b", "L4"): 2.0},
        class_gpus={"L4": 6.0},
        price_usd_per_hour={"L4": 0.1},
    )
    doc = cost.as_json()
    assert (doc["teams_usd_per_hour"], doc["idle_usd_per_hour"], doc["fleet_usd_per_hour"]) == (0.3, 0.3, 0.6)
    assert doc["gpu_classes"][0]["idle_usd_per_hour"] == 0.3
