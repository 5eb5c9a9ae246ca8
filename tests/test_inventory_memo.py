"""`Inventory.memo` stays bounded however often an inventory is allocated again (issue 16).

The API's capacity is the last decide step's inventory allocated again at each POST until its next rebuild; each
answer's nodes are new objects, read into the memo shared by every inventory made from that one, which kept each
node it replaced alive: nothing bounded it but the rebuild.
"""

from __future__ import annotations

import pytest

from scheduler import inventory as inventory_module
from scheduler.fleet import FleetState
from scheduler.inventory import Allocation, Inventory
from tests.test_fleet_state import seen
from tests.test_placement import fleet


def test_an_inventory_allocated_again_and_again_holds_a_bounded_memo_and_reads_as_built_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inventory_module, "MEMO_HELD", 8)  # 8,192: four a node of a 2,000-node fleet
    base = fleet(("L40S", 2, 4))
    FleetState.of(base)  # a decide step's read of every node
    for i in range(100):  # an answer a POST, each of one GPU of the capacity as the last rebuild left it
        inventory = base.allocated([Allocation(f"l40s-{i % 2}", (i % 4,))])
        state = FleetState.of(inventory)
        assert len(base.memo) <= 8 + len(base)  # emptied past the bound, then each node read once
        alone = FleetState.of(Inventory(inventory.nodes, inventory.skipped))  # a memo of its own
        assert seen(state) == seen(alone)
