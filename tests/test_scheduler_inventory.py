"""The GPU inventory built from Kubernetes Node objects: classes recognised from GFD and AMD labeller
labels, schedulability (Ready, cordoned), MIG layouts (mixed and single), time-slicing replicas,
NVLink domains and cliques, allocations subtracted from free VRAM, the sentence queries, and
rejection of malformed nodes and allocations with the path of the bad field.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.catalog import Catalog
from scheduler.inventory import (
    Allocation,
    Inventory,
    InventoryError,
    SharingPolicy,
    build_inventory,
    load_nodes,
    parse_allocations,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "cluster-nodes.yaml"
CATALOG = Catalog.load()
NODES = load_nodes(EXAMPLE)
POLICY = SharingPolicy({"L4": "timeslice"})
CLIQUE = "8d7f4c22-3c1a-4a5e-9b7e-2f1c0a9e6b11.1"


def fleet(*allocations: dict[str, Any], sharing: SharingPolicy = POLICY) -> Inventory:
    return build_inventory(NODES, CATALOG, parse_allocations(list(allocations)), sharing)


def node(name: str, labels: dict[str, str], allocatable: dict[str, str], **spec: Any) -> dict[str, Any]:
    """A Ready node as kubectl prints it."""
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": allocatable},
    }


def test_example_classes_are_recognised_and_cpu_nodes_left_out() -> None:
    classes = {n.node: n.model.name for n in fleet()}
    assert classes == {
        "gpu-h100-0": "H100-80GB",
        "gpu-h100-1": "H100-80GB",
        "gpu-a100-mig-0": "A100-80GB",
        "gpu-l4-0": "L4",
        "gpu-t4-0": "T4",
        "gpu-a10g-0": "A10G",
        "gpu-mi300x-0": "MI300X",
        "gpu-gb200-0": "GB200",
        "gpu-gb200-1": "GB200",
    }
    assert fleet().skipped == ()


def test_cordoned_and_not_ready_nodes_take_nothing_new() -> None:
    inventory = fleet()
    assert not inventory.node("gpu-h100-1").schedulable
    assert inventory.node("gpu-h100-1").cordoned
    assert not inventory.node("gpu-a10g-0").ready
    assert {n.node for n in inventory} - {n.node for n in inventory.schedulable()} == {"gpu-h100-1", "gpu-a10g-0"}


def test_mixed_mig_layout_is_read() -> None:
    a100 = fleet().node("gpu-a100-mig-0")
    assert len(a100.gpus) == 4  # whole GPUs: allocatable nvidia.com/gpu
    assert a100.physical_gpus == 8  # nvidia.com/gpu.count
    assert [(s.profile.name, s.count, s.profile.memory_mib) for s in a100.mig] == [
        ("1g.10gb", 14, 9728),
        ("3g.40gb", 4, 40192),
    ]


def test_single_mig_strategy_reads_the_profile_from_the_product() -> None:
    labels = {
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb",
        "nvidia.com/mig.strategy": "single",
        "nvidia.com/gpu.count": "56",
        "nvidia.com/gpu.memory": "9728",
    }
    a100 = build_inventory([node("a", labels, {"nvidia.com/gpu": "56"})], CATALOG).node("a")
    assert a100.gpus == ()
    assert [(s.profile.name, s.count) for s in a100.mig] == [("1g.10gb", 56)]
    assert a100.physical_gpus == 8  # 56 instances / 7 per GPU


def test_time_slicing_divides_the_resource_by_its_replicas() -> None:
    l4 = fleet().node("gpu-l4-0")
    assert (len(l4.gpus), l4.timeslice_replicas, l4.sharing) == (4, 2, "timeslice")
    assert l4.gpus[0].vram_mib == 23034  # nvidia.com/gpu.memory


def test_nvlink_domains_and_cliques() -> None:
    inventory = fleet()
    assert {g.domain for g in inventory.node("gpu-h100-0").gpus} == {"gpu-h100-0/nvlink0"}
    assert {g.domain for g in inventory.node("gpu-mi300x-0").gpus} == {"gpu-mi300x-0/xgmi0"}
    assert {g.domain for g in inventory.node("gpu-l4-0").gpus} == {"gpu-l4-0/pcie0"}
    for name in ("gpu-gb200-0", "gpu-gb200-1"):
        assert inventory.node(name).clique == CLIQUE
        assert {g.domain for g in inventory.node(name).gpus} == {CLIQUE}


def test_h100_nvl_pairs_are_separate_domains() -> None:
    nvl = node("nvl", {"nvidia.com/gpu.product": "NVIDIA-H100-NVL"}, {"nvidia.com/gpu": "4"})
    h = build_inventory([nvl], CATALOG).node("nvl")
    assert [g.domain for g in h.gpus] == ["nvl/nvlink0", "nvl/nvlink0", "nvl/nvlink1", "nvl/nvlink1"]


def test_allocations_subtract_free_vram() -> None:
    inventory = fleet(
        {"node": "gpu-h100-0", "gpus": [0, 1, 2, 3]},
        {"node": "gpu-l4-0", "gpus": [0], "vram_mib": 10_000, "sharing": "timeslice"},
        {"node": "gpu-a100-mig-0", "mig": "nvidia.com/mig-1g.10gb", "count": 3},
        {"node": "gpu-h100-1", "gpus": [7]},
    )
    h100 = inventory.node("gpu-h100-0")
    assert sum(g.holders == 0 for g in h100.gpus) == 4
    assert h100.gpus[0].free_mib == 0
    l4 = inventory.node("gpu-l4-0")
    assert l4.gpus[0].free_mib == 23034 - 10_000
    assert l4.available_mib(l4.gpus[0]) == 13034
    assert [s.free for s in inventory.node("gpu-a100-mig-0").mig] == [11, 4]
    h100_1 = inventory.node("gpu-h100-1")
    assert sum(g.holders == 0 for g in h100_1.gpus) == 7  # a cordoned node's allocations count


def test_time_slicing_stops_at_the_device_plugin_replicas() -> None:
    two = [{"node": "gpu-l4-0", "gpus": [0], "vram_mib": 1000, "sharing": "timeslice"}] * 2
    l4 = fleet(*two).node("gpu-l4-0")
    assert l4.gpus[0].free_mib == 21034
    assert l4.available_mib(l4.gpus[0]) == 0


def test_whole_gpus_of_a_mig_node_are_held_whole_and_leave_its_instances_free() -> None:
    a100 = fleet(*[{"node": "gpu-a100-mig-0", "gpus": [i]} for i in range(4)]).node("gpu-a100-mig-0")
    assert all(a100.available_mib(g) == 0 for g in a100.gpus)
    assert [(s.profile.name, s.free, s.resource) for s in a100.mig] == [
        ("1g.10gb", 14, "nvidia.com/mig-1g.10gb"),
        ("3g.40gb", 4, "nvidia.com/mig-3g.40gb"),
    ]
    assert max(s.profile.memory_mib for s in a100.mig) == 40192


def test_unknown_gpus_and_contradicting_labels_are_skipped_with_a_reason() -> None:
    nodes = [
        node("rtx", {"nvidia.com/gpu.product": "NVIDIA-GeForce-RTX-3060"}, {"nvidia.com/gpu": "1"}),
        node(
            "liar",
            {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.compute.major": "8"}
            | {"nvidia.com/gpu.compute.minor": "0"},
            {"nvidia.com/gpu": "8"},
        ),
        node("mig-me", {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}, {"nvidia.com/mig-1g.10gb+me": "1"}),
        node("ok", {"nvidia.com/gpu.product": "Tesla-T4"}, {"nvidia.com/gpu": "1"}),
    ]
    inventory = build_inventory(nodes, CATALOG)
    assert [n.node for n in inventory] == ["ok"]
    reasons = {s.node: s.reason for s in inventory.skipped}
    assert "NVIDIA-GeForce-RTX-3060" in reasons["rtx"]
    assert "compute capability 8.0" in reasons["liar"]
    assert "no MIG profile 1g.10gb+me" in reasons["mig-me"]


def test_amd_nodes_with_count_style_labels_only() -> None:
    labels = {"beta.amd.com/gpu.product-name.AMD_Instinct_MI300X_OAM": "8", "beta.amd.com/gpu.family.AI": "8"}
    mi300x = build_inventory([node("amd", labels, {"amd.com/gpu": "8"})], CATALOG).node("amd")
    assert (mi300x.model.name, len(mi300x.gpus), mi300x.gpus[0].vram_mib) == ("MI300X", 8, 196592)


def test_a_node_without_a_ready_condition_is_not_ready() -> None:
    bare = {"metadata": {"name": "bare", "labels": {"nvidia.com/gpu.product": "Tesla-T4"}}}
    t4 = build_inventory([bare], CATALOG).node("bare")
    assert not t4.schedulable
    assert t4.gpus == ()  # no allocatable: nothing to place on


def test_load_nodes_takes_a_node_list_or_a_plain_list(tmp_path: Path) -> None:
    plain = tmp_path / "nodes.yaml"
    plain.write_text("- metadata: {name: a}\n")
    assert load_nodes(plain) == [{"metadata": {"name": "a"}}]
    with pytest.raises(InventoryError, match="a NodeList"):
        load_nodes(REPO / "examples" / "models.yaml")
    with pytest.raises(InventoryError, match="cannot read"):
        load_nodes(tmp_path / "missing.yaml")


T4 = {"nvidia.com/gpu.product": "Tesla-T4"}


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ([{"metadata": {}}], r"^items\[0\]\.metadata\.name: required"),
        ([{"metadata": {"name": "a", "labels": {"x": 1}}}], r"^items\[0\]\.metadata\.labels\.x: 1 is not of type"),
        (
            [node("a", T4 | {"nvidia.com/gpu.count": "eight"}, {})],
            r'^items\[0\]\.metadata\.labels\["nvidia\.com/gpu\.count"\]: \'eight\' is not a whole number',
        ),
        (
            [node("a", T4, {"nvidia.com/gpu": "two"})],
            r'^items\[0\]\.status\.allocatable\["nvidia\.com/gpu"\]: \'two\' is not a whole number of devices',
        ),
        ([node("a", T4, {}, unschedulable="yes")], r"^items\[0\]\.spec\.unschedulable: 'yes' is not of type"),
        ([node("a", T4, {}, taints=[{"key": "k", "effect": "Never"}])], r"^items\[0\]\.spec\.taints\[0\]\.effect"),
        ([node("a", T4, {}), node("a", T4, {})], r"^items\[1\]\.metadata\.name: duplicate node name 'a'"),
        ({"items": []}, r"^items: \{'items': \[\]\} is not of type 'array'"),
    ],
)
def test_malformed_nodes_are_rejected_with_their_path(nodes: Any, message: str) -> None:
    with pytest.raises(InventoryError, match=message):
        build_inventory(nodes, CATALOG)


@pytest.mark.parametrize(
    ("allocations", "message"),
    [
        ([{"node": "gpu-x", "gpus": [0]}], r"^allocations\[0\]\.node: no usable GPU node 'gpu-x'"),
        ([{"node": "gpu-t4-0", "gpus": [1]}], r"^allocations\[0\]\.gpus: node gpu-t4-0 has no GPU 1"),
        ([{"node": "gpu-t4-0", "gpus": [0]}] * 2, r"^allocations\[1\]\.gpus: GPU 0 of node gpu-t4-0 cannot be both"),
        (
            [{"node": "gpu-l4-0", "gpus": [0], "vram_mib": 20_000, "sharing": "timeslice"}] * 2,
            r"^allocations\[1\]\.vram_mib: GPU 0 of node gpu-l4-0 would hold 40000 of its 23034 MiB",
        ),
        ([{"node": "gpu-a100-mig-0", "mig": "3g.40gb", "count": 5}], r"^allocations\[0\]\.count: .* has 4 free"),
        ([{"node": "gpu-a100-mig-0", "mig": "2g.20gb"}], r"^allocations\[0\]\.mig: .* has no 2g.20gb instances"),
        ([{"node": "gpu-t4-0"}], r"^allocations\[0\]: an allocation names either gpus or a mig profile"),
        ([{"node": "gpu-t4-0", "gpus": [0], "mig": "1g.10gb"}], r"^allocations\[0\]: an allocation names either"),
        ([{"node": "gpu-t4-0", "gpus": [0], "sharing": "mps"}], r"^allocations\[0\]\.sharing: 'mps' is not one of"),
        ([{"node": "gpu-t4-0", "gpus": [0], "vram": 1}], r"^allocations\[0\]\.vram: unknown key"),
        ([{"node": "gpu-t4-0", "mig": "1g"}], r"^allocations\[0\]\.mig: '1g' is not a MIG profile"),
    ],
)
def test_bad_allocations_are_rejected_with_their_path(allocations: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(InventoryError, match=message):
        fleet(*allocations)


def test_sharing_policy_rejects_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match="sharing for L4 must be one of exclusive, mig"):
        SharingPolicy({"L4": "mps"})
    with pytest.raises(InventoryError, match=r"^sharing\.by_class\.H300: no GPU class"):
        fleet(sharing=SharingPolicy({"H300": "exclusive"}))
    with pytest.raises(InventoryError, match=r"^sharing\.by_class\.L4: L4 has no MIG profiles"):
        fleet(sharing=SharingPolicy({"L4": "mig"}))


def test_allocation_records_parse_with_defaults() -> None:
    assert parse_allocations([{"node": "n", "mig": "nvidia.com/mig-1g.10gb"}]) == (Allocation(node="n", mig="1g.10gb"),)


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 30_000)),
        max_size=12,
    ),
)
def test_shared_gpus_never_hold_more_than_they_have(placements: list[tuple[int, int]]) -> None:
    """Apply the allocations that the inventory accepts one by one; whatever is accepted leaves
    no GPU over its VRAM, and what a GPU may still take is never more than it has free."""
    accepted: list[dict[str, Any]] = []
    for gpu, vram in placements:
        attempt = [*accepted, {"node": "gpu-l4-0", "gpus": [gpu], "vram_mib": vram, "sharing": "hami"}]
        try:
            fleet(*attempt, sharing=SharingPolicy({"L4": "hami"}))
        except InventoryError:
            continue
        accepted = attempt
    inventory = fleet(*accepted, sharing=SharingPolicy({"L4": "hami"}))
    for n in inventory:
        assert all(0 <= g.free_mib <= g.vram_mib for g in n.gpus)
        assert all(0 <= n.available_mib(g) <= g.free_mib for g in n.gpus)


def test_sharing_follows_the_node_labels_unless_configured() -> None:
    labelled = build_inventory(NODES, CATALOG)
    assert labelled.node("gpu-l4-0").sharing == "timeslice", "nvidia.com/gpu.replicas > 1 means time-slicing"
    assert labelled.node("gpu-h100-0").sharing == "exclusive"
    configured = build_inventory(NODES, CATALOG, sharing=SharingPolicy({"L4": "exclusive", "H100-80GB": "kai"}))
    assert configured.node("gpu-l4-0").sharing == "exclusive"
    assert configured.node("gpu-h100-0").sharing == "kai"


def test_a_live_cluster_s_unreadable_node_is_skipped_and_the_rest_is_read() -> None:
    """Issue 16: one Node labelled `nvidia.com/gpu.replicas: "two"` made the controller place nothing
    for any endpoint; read from a live cluster (not strict), only that node is left out, with why."""
    bad = node("bad", T4 | {"nvidia.com/gpu.replicas": "two"}, {"nvidia.com/gpu": "1"})
    nodes = [node("a", T4, {"nvidia.com/gpu": "1"}), bad, node("a", T4, {}), node("c", T4, {"nvidia.com/gpu": "5k"})]
    inventory = build_inventory(nodes, CATALOG, strict=False)
    assert [n.node for n in inventory] == ["a"]
    reasons = {s.node: s.reason for s in inventory.skipped}
    assert reasons["bad"].startswith("metadata.labels[\"nvidia.com/gpu.replicas\"]: 'two' is not a whole")
    assert "duplicate node name 'a'" in reasons["a"]
    assert "says 5k devices; a node has at most 4096" in reasons["c"]  # 5,000 devices, read as a quantity
    with pytest.raises(InventoryError, match=r"^items\[1\]\.metadata\.labels"):
        build_inventory(nodes, CATALOG)


def test_gpu_resources_are_read_in_every_canonical_quantity_form() -> None:
    """The API server writes allocatable back canonicalised: 1000 replicas of a time-sliced node read as `1k`."""
    labels = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.replicas": "64"}
    sliced = node("ts", labels, {"nvidia.com/gpu": "512"})
    assert len(build_inventory([sliced], CATALOG).node("ts").gpus) == 8
    sliced["status"]["allocatable"]["nvidia.com/gpu"] = "5e2"  # 500 = 7 whole GPUs of 64 replicas (and a part)
    assert len(build_inventory([sliced], CATALOG).node("ts").gpus) == 7


def test_a_node_with_other_gpus_is_the_node_dataclasses_replace_makes() -> None:
    """`NodeGpus.with_gpus` (every replica a loop reads takes one, a fifth of `dataclasses.replace`'s time) makes
    the node `dataclasses.replace` makes, on every node of the example fleet (MIG, taints, cliques, time-slicing)."""
    for n in fleet():
        gpus = tuple(dataclasses.replace(g, used_mib=g.vram_mib, holders=1, whole=True) for g in n.gpus)
        made = n.with_gpus(gpus)
        assert made == dataclasses.replace(n, gpus=gpus) and made.gpus is gpus and n.gpus is not gpus
        assert vars(made) == vars(dataclasses.replace(n, gpus=gpus))
