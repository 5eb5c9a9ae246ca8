"""The node schema check's answers are reused by node content (`scheduler.inventory`): a Node that changes
between loops is checked anew, a bad one is refused with the same message wherever it stands, and a node
that JSON cannot write is still checked."""

from __future__ import annotations

from typing import Any

import pytest

from scheduler.catalog import Catalog
from scheduler.inventory import InventoryError, build_inventory

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
