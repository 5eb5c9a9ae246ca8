"""The states of one inventory share its untouched nodes (`scheduler.fleet._Pristine`), and the inventories made
from one another their nodes as read (`Inventory.memo`): what one pass takes must stay out of every other pass,
and a pass must see the fleet as a state built alone would."""

from __future__ import annotations

from scheduler.fleet import FleetState, NodeState
from scheduler.inventory import Allocation, Inventory
from scheduler.placement import place_one
from scheduler.plan import Request
from tests.test_placement import REGISTRY, fleet


def seen(state: FleetState) -> list[tuple[object, ...]]:
    """Each node's state, indexed and iterated (iterating copies nothing, indexing copies)."""
    iterated = [n.signature() for n in state.nodes]
    indexed = [state.nodes[i].signature() for i in range(len(state.nodes))]
    assert iterated == indexed
    return indexed


def candidates(state: FleetState) -> list[list[int]]:
    return [g for kind in state.kinds() for g in state.groups(kind)]


def holders(nodes: list[NodeState]) -> int:
    return sum(g.holders for n in nodes for g in n.gpus) + sum(m.taken for n in nodes for m in n.mig)


def take_all(state: FleetState, requests: list[Request]) -> None:
    for request in requests:
        for replica in range(request.replicas):
            assert place_one(state, REGISTRY.get(request.model), request, replica) is not None


def test_a_pass_sees_nothing_another_pass_of_the_same_inventory_took() -> None:
    inventory = fleet(("A100-80GB", 2, 8), ("L40S", 2, 4), ("L4", 2, 4), mig={"3g.40gb": 4})
    requests = [
        Request("llama8", "llama-3.1-8b-instruct", 12, context=4096, concurrency=8),
        Request("llama70", "llama-3.1-70b-instruct", 2, context=4096, concurrency=8),
    ]
    alone = FleetState.of(inventory)
    first = FleetState.of(inventory)
    take_all(first, requests)
    taken = holders(list(first.nodes))
    assert taken > 8  # the 70B replicas over several GPUs each
    second = FleetState.of(inventory, like=first)
    assert seen(second) == seen(alone)
    assert candidates(second) == candidates(alone)
    take_all(second, requests)
    third = FleetState.of(inventory, like=second)
    assert seen(third) == seen(alone)
    assert candidates(third) == candidates(alone)
    assert holders(list(first.nodes)) == holders(list(second.nodes)) == taken
    assert second.plan().placements == first.plan().placements


def derived(inventory: Inventory) -> list[Inventory]:
    """Inventories made from `inventory` as a decide step makes them: a node left out (a search that bars it),
    a GPU and a MIG instance taken (replicas placed before), and both."""
    mig_node = next(n for n in inventory if n.mig)
    taken = [Allocation("l40s-2", (1,), 0), Allocation(mig_node.node, mig="3g.40gb")]
    barred = inventory.where(lambda n: n.node != "l4-5")
    return [barred, inventory.allocated(taken), barred.allocated(taken)]


def test_a_node_the_inventories_made_from_one_another_share_is_read_once_for_them() -> None:
    inventory = fleet(("A100-80GB", 2, 8), ("L40S", 2, 4), ("L4", 2, 4), mig={"3g.40gb": 4})
    first = {n.name: n for n in FleetState.of(inventory)._pristine.nodes}
    for made in derived(inventory):
        for node in FleetState.of(made)._pristine.nodes:
            same = node.inventory is first[node.name].inventory
            assert (node.gpus is first[node.name].gpus) == same, node.name
            assert (node.mig is first[node.name].mig) == same, node.name


def test_a_fleet_of_inventories_made_from_one_another_is_the_fleet_read_afresh() -> None:
    inventory = fleet(("A100-80GB", 2, 8), ("L40S", 2, 4), ("L4", 2, 4), mig={"3g.40gb": 4})
    requests = [
        Request("llama8", "llama-3.1-8b-instruct", 6, context=4096, concurrency=8),
        Request("llama70", "llama-3.1-70b-instruct", 1, context=4096, concurrency=8),
    ]
    alone = FleetState.of(Inventory(inventory.nodes))
    take_all(FleetState.of(inventory), requests)  # taken in a state of one: never seen by another
    for made in derived(inventory):
        state, afresh = FleetState.of(made), FleetState.of(Inventory(made.nodes, made.skipped))
        assert seen(state) == seen(afresh)
        assert candidates(state) == candidates(afresh)
        assert state.kinds() == afresh.kinds() and state.classes() == afresh.classes()
        take_all(state, requests)
        take_all(afresh, requests)
        assert state.plan() == afresh.plan()
    assert seen(FleetState.of(inventory)) == seen(alone)
    assert candidates(FleetState.of(inventory)) == candidates(alone)
