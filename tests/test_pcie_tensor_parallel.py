"""Tensor parallel over PCIe, and replicas over several nodes only where the network does RDMA.

Covers: the throughput factor (1.0 on one GPU, lower over PCIe than over NVLink, lower with more
GPUs), 70B models placed over 4 and 8 L40S (no NVLink) through `egs plan` with the factor and the
assumption about PCIe roots in the output, the choice between NVLink and PCIe by cost per unit of
throughput under two price settings (both engines), PCIe roots as labelled, the reasons that name
the interconnect, and the vLLM flags of a PCIe replica. Not covered: real all-reduce timings; the
factor is a model of decoding (`scheduler/interconnect.py`), checked here for its direction.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from egs.cli import main
from scheduler.catalog import Catalog
from scheduler.interconnect import tensor_parallel_throughput
from scheduler.inventory import PCIE_DOMAINS_LABEL, Allocation, Inventory, build_inventory
from scheduler.manifests import manifests
from scheduler.plan import Request
from scheduler.registry import Registry
from scheduler.schedule import schedule
from scheduler.synthetic import gpu_node

REPO = Path(__file__).resolve().parent.parent
CATALOG = Catalog.load()
REGISTRY = Registry.load(REPO / "examples" / "models.yaml", CATALOG)
LLAMA_70B = REGISTRY.get("llama-3.1-70b-instruct")
RDMA = {"feature.node.kubernetes.io/rdma.available": "true"}


def node(name: str, cls: str, gpus: int, labels: dict[str, str] | None = None) -> dict[str, Any]:
    raw = gpu_node(name, CATALOG.get(cls), gpus)
    raw["metadata"]["labels"] |= labels or {}
    return raw


def nodes_file(tmp_path: Path, *nodes: dict[str, Any]) -> Path:
    path = tmp_path / "nodes.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "NodeList", "items": list(nodes)}))
    return path


def test_the_throughput_factor_is_one_on_one_gpu_and_falls_with_slower_links_and_more_gpus() -> None:
    fp8, bf16 = LLAMA_70B.variant("fp8"), LLAMA_70B.variant("bf16")
    l40s, h100 = CATALOG.get("L40S"), CATALOG.get("H100-80GB")
    assert tensor_parallel_throughput(LLAMA_70B, fp8, h100, 1) == 1.0
    pcie, nvlink = (
        tensor_parallel_throughput(LLAMA_70B, fp8, l40s, 4),
        tensor_parallel_throughput(LLAMA_70B, fp8, h100, 4),
    )
    assert 0.5 < pcie < nvlink < 1.0
    assert tensor_parallel_throughput(LLAMA_70B, bf16, l40s, 8) < tensor_parallel_throughput(LLAMA_70B, bf16, l40s, 4)
    # More sequences per step: more activations to all-reduce against the same weights read.
    assert tensor_parallel_throughput(LLAMA_70B, fp8, l40s, 4, 4096, 64) < pcie


def test_a_70b_model_runs_over_4_l40s_at_fp8_and_over_8_at_bf16_with_the_factor_in_the_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = nodes_file(tmp_path, node("l40s-4", "L40S", 4), node("l40s-8", "L40S", 8))
    requests = tmp_path / "requests.yaml"
    requests.write_text(
        yaml.safe_dump(
            {
                "requests": [
                    {"name": "fp8", "model": LLAMA_70B.name, "min_quality": 0.99},
                    {"name": "bf16", "model": LLAMA_70B.name, "min_quality": 1.0},
                ]
            }
        )
    )
    models = str(REPO / "examples" / "models.yaml")
    args = ["plan", "--fleet", str(fleet), "--models", models, "--requests", str(requests), "-o", "json"]
    assert main(args) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["unplaced"] == []
    by_request = {p["request"]: p for p in document["placements"]}
    assert (by_request["fp8"]["node"], by_request["fp8"]["tp"]) == ("l40s-4", 4)
    assert (by_request["bf16"]["node"], by_request["bf16"]["tp"]) == ("l40s-8", 8)
    for placed in by_request.values():
        assert placed["interconnect"] == "pcie" and 0.5 < placed["throughput_factor"] < 1.0
    assert by_request["bf16"]["throughput_factor"] < by_request["fp8"]["throughput_factor"]
    price = CATALOG.get("L40S").price_per_hour
    assert document["cost_per_hour"] == pytest.approx(12 * price)
    lost = sum(p["tp"] * price * (1 / p["throughput_factor"] - 1) for p in by_request.values())
    assert document["effective_cost_per_hour"] == pytest.approx(12 * price + lost, abs=1e-3)
    assert [PCIE_DOMAINS_LABEL in note and "l40s-4, l40s-8" in note for note in document["notes"]] == [True]


def nvlink_or_pcie() -> tuple[Inventory, list[Request]]:
    """One node of 4 L40S (PCIe) and one of 8 H100 (NVLink); one 70B replica at fp8 or better."""
    inventory = build_inventory([node("l40s", "L40S", 4), node("h100", "H100-80GB", 8)], CATALOG)
    return inventory, [Request("chat", LLAMA_70B.name, 1, min_quality=0.99)]


@pytest.mark.parametrize("engine", ["exact", "online"])
def test_nvlink_is_chosen_when_it_is_cheaper_per_unit_of_throughput_and_pcie_otherwise(engine: str) -> None:
    # Four L40S at $1.86 cost $7.44 and keep ~84% of the throughput: $8.88 per unit. Two H100s keep
    # ~93%: at the catalogue's $6.88 they cost $14.80 per unit, so PCIe; at $4.00 they cost $8.00,
    # more than the L40S, but $8.61 per unit of throughput, less: NVLink.
    inventory, requests = nvlink_or_pcie()
    at_list = schedule(requests, REGISTRY, inventory, engine=engine, time_limit_s=10).plan
    assert [(p.gpu_class, p.interconnect, p.tp) for p in at_list.placements] == [("L40S", "pcie", 4)]
    cheap = Catalog.load(prices={"H100-80GB": 4.00})
    inventory = build_inventory([node("l40s", "L40S", 4), node("h100", "H100-80GB", 8)], cheap)
    registry = Registry.load(REPO / "examples" / "models.yaml", cheap)
    cheaper = schedule(requests, registry, inventory, engine=engine, time_limit_s=10).plan
    assert [(p.gpu_class, p.interconnect, p.tp) for p in cheaper.placements] == [("H100-80GB", "nvlink", 2)]
    assert cheaper.cost_per_hour > at_list.cost_per_hour  # dearer per hour, cheaper per unit of throughput
    assert cheaper.effective_cost_per_hour < 4 * 1.86 / at_list.placements[0].throughput


def test_a_replica_keeps_to_one_labelled_pcie_root_and_says_so_when_none_is_large_enough() -> None:
    split = node("l40s", "L40S", 8, {PCIE_DOMAINS_LABEL: "2"})
    inventory = build_inventory([split], CATALOG)
    assert {g.domain for g in inventory.node("l40s").gpus} == {"l40s/pcie0", "l40s/pcie1"}
    fp8 = [Request("fp8", LLAMA_70B.name, 2, min_quality=0.99)]
    plan = schedule(fp8, REGISTRY, inventory, engine="online").plan
    assert sorted(sorted(p.gpus) for p in plan.placements) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    bf16 = [Request("bf16", LLAMA_70B.name, 1, min_quality=1.0)]
    (unplaced,) = schedule(bf16, REGISTRY, inventory, engine="online").plan.unplaced
    assert "over 2 nodes with RDMA/InfiniBand between them, 4 per node in one PCIe root" in unplaced.reason
    # Six GPUs idle, but three per root: no room for four of one root.
    held = build_inventory([split], CATALOG, [Allocation("l40s", (0,)), Allocation("l40s", (4,))])
    (unplaced,) = schedule(fp8[:1], REGISTRY, held, engine="online").plan.unplaced[:1]
    assert "on each of 4 GPUs of one PCIe root" in unplaced.reason
    assert f"l40s has 6 idle L40S GPUs but at most 3 in one domain ({PCIE_DOMAINS_LABEL}=2)" in unplaced.reason


def test_a_bad_pcie_roots_label_skips_the_node_with_the_reason() -> None:
    inventory = build_inventory([node("l40s", "L40S", 8, {PCIE_DOMAINS_LABEL: "3"})], CATALOG)
    (skipped,) = inventory.skipped
    assert PCIE_DOMAINS_LABEL in skipped.reason and "8 GPUs" in skipped.reason


def test_a_replica_over_several_nodes_needs_rdma_and_the_reason_says_so() -> None:
    requests = [Request("huge", "llama-3.1-405b-instruct", 1, min_quality=1.0)]
    plain = build_inventory([node(f"h100-{i}", "H100-80GB", 8) for i in range(3)], CATALOG)
    (unplaced,) = schedule(requests, REGISTRY, plain, engine="exact", time_limit_s=10).plan.unplaced
    assert "RDMA" in unplaced.reason and "feature.node.kubernetes.io/rdma.available=true" in unplaced.reason
    fabric = build_inventory([node(f"h100-{i}", "H100-80GB", 8, RDMA) for i in range(3)], CATALOG)
    for engine in ("exact", "online"):
        (huge,) = schedule(requests, REGISTRY, fabric, engine=engine, time_limit_s=10).plan.placements
        assert huge.multi_node and huge.interconnect == "nvlink" and huge.throughput < 1.0


def test_a_pcie_replica_runs_without_vllms_own_all_reduce_and_records_its_factor() -> None:
    inventory = build_inventory([node("l40s", "L40S", 4)], CATALOG)
    requests = [Request("chat", LLAMA_70B.name, 1, min_quality=0.99)]
    plan = schedule(requests, REGISTRY, inventory, engine="online").plan
    (deployment,) = [o for o in manifests(plan, REGISTRY, CATALOG, requests) if o["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--disable-custom-all-reduce" in container["args"]
    assert container["args"][container["args"].index("--tensor-parallel-size") + 1] == "4"
    annotations = deployment["metadata"]["annotations"]
    assert annotations["egs.io/interconnect"] == "pcie"
    assert float(annotations["egs.io/throughput-factor"]) == plan.placements[0].throughput
    h100 = build_inventory([node("h100", "H100-80GB", 8)], CATALOG)
    plan = schedule(requests, REGISTRY, h100, engine="online").plan
    (deployment,) = [o for o in manifests(plan, REGISTRY, CATALOG, requests) if o["kind"] == "Deployment"]
    assert "--disable-custom-all-reduce" not in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
