"""The node schema check's answers are reused by node content (`scheduler.inventory`): a Node that changes
between loops is checked anew, a bad one is refused with the same message wherever it stands, and a node
that JSON cannot write is still checked."""

from __future__ import annotations

from typing import Any

import pytest

from scheduler import inventory
from scheduler.catalog import Catalog
from scheduler.inventory import InventoryError, NodeGpus, SharingPolicy, build_inventory
from tests.conftest import Spy

CATALOG = Catalog.load()
T4 = {"nvidia.com/gpu.product": "Tesla-T4", "nvidia.com/gpu.count": "1"}


def node(name: str, replicas: str) -> dict[str, Any]:
    labels = T4 | {"nvidia.com/gpu.replicas": replicas}
    status = {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {"nvidia.com/gpu": "1"}}
    return {"metadata": {"name": name, "labels": labels}, "spec": {}, "status": status}


def reasons(nodes: list[dict[str, Any]]) -> dict[str, str]:
    return {s.node: s.reason for s in build_inventory(nodes, CATALOG, strict=False).skipped}


def test_a_node_broken_then_mended_then_broken_again_is_judged_as_it_is_each_loop() -> None:
    assert reasons([node("n", "1")]) == {}
    assert reasons([node("n", "two")])["n"].startswith("metadata.labels[\"nvidia.com/gpu.replicas\"]: 'two'")
    assert reasons([node("n", "1")]) == {}
    assert reasons([node("n", "two")]).keys() == {"n"}


def test_the_same_bad_node_is_named_where_it_stands_in_every_list() -> None:
    bad = node("bad", "two")
    for at, nodes in ((0, [bad]), (2, [node("a", "1"), node("b", "1"), bad])):
        with pytest.raises(InventoryError, match=rf"^items\[{at}\]\.metadata\.labels"):
            build_inventory(nodes, CATALOG)


def test_a_node_json_cannot_write_is_still_checked() -> None:
    odd = node("odd", "1")
    odd["spec"]["taints"] = [{"key": "k", "effect": "NoSchedule", "since": object()}]
    assert reasons([odd]) == {}
    odd["spec"]["taints"] = [{"key": "k", "effect": "Sometimes", "since": object()}]
    assert reasons([odd])["odd"].startswith("spec.taints[0].effect: 'Sometimes' is not one of")


def test_a_node_that_did_not_change_is_read_once_and_anew_for_a_label_a_catalogue_or_a_sharing_policy(
    spy: Spy,
) -> None:
    """Each Node is read once for its JSON text, catalogue and sharing policy (a serving loop at 1,750 nodes read
    them all every loop, 0.06-0.07 s); a label, a catalogue (another price) or a sharing policy changed reads it
    again, and the inventory says what the change says."""
    calls = spy(inventory, "_node")

    def only(nodes: list[dict[str, Any]], catalog: Catalog = CATALOG, policy: SharingPolicy | None = None) -> NodeGpus:
        return build_inventory(nodes, catalog, sharing=policy, strict=False).nodes[0]

    first = only([node("read-once", "1")])
    assert only([node("read-once", "1")]) == first
    assert [c.arguments["raw"]["metadata"]["name"] for c in calls] == ["read-once"]
    assert only([node("read-once", "4")]).sharing == "timeslice" and len(calls) == 2
    dearer = CATALOG.priced({"T4": 9.0})
    assert only([node("read-once", "1")], dearer).model.price_per_hour == 9.0 and len(calls) == 3
    assert only([node("read-once", "1")], dearer, SharingPolicy({"T4": "hami"})).sharing == "hami"
    assert len(calls) == 4
    assert only([node("read-once", "1")], CATALOG) == first
