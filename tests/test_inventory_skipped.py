"""What a node the inventory skipped (a label it cannot read) holds: nothing it can count.

Its GPUs are not in the inventory, yet a replica on it still runs (the node did not go), so the callers
that take every running replica off the inventory used to filter such replicas out by hand, each its
own way; one that forgot raised `InventoryError` for the whole decide step. `Inventory.allocated` takes
nothing on a skipped node now, and still refuses a node it has never heard of.
"""

from __future__ import annotations

import pytest

from scheduler.catalog import Catalog
from scheduler.inventory import Allocation, InventoryError, build_inventory
from scheduler.synthetic import gpu_node

CATALOG = Catalog.load()


def fleet() -> list[dict[str, object]]:
    good = gpu_node("h100-0", CATALOG.get("H100-80GB"), 2)
    bad = gpu_node("h100-bad", CATALOG.get("H100-80GB"), 2)
    bad["metadata"]["labels"]["nvidia.com/gpu.count"] = "lots"
    return [good, bad]


def test_an_allocation_on_a_skipped_node_takes_nothing_and_the_rest_are_taken() -> None:
    inventory = build_inventory(fleet(), CATALOG, strict=False)
    assert [s.node for s in inventory.skipped] == ["h100-bad"]
    taken = inventory.allocated([Allocation("h100-bad", (0, 1)), Allocation("h100-0", (1,))])
    assert [g.holders for g in taken.node("h100-0").gpus] == [0, 1]
    assert [n.node for n in taken] == ["h100-0"]
    assert taken.skipped == inventory.skipped


def test_an_allocation_on_a_node_nobody_listed_is_still_refused() -> None:
    inventory = build_inventory(fleet(), CATALOG, strict=False)
    with pytest.raises(InventoryError, match="no usable GPU node 'h100-9'"):
        inventory.allocated([Allocation("h100-9", (0,))])
