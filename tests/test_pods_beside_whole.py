"""A pod on a time-sliced node is read beside what the decide step already holds there.

Found by the churn benchmark (`--seed 5`, a time-sliced A10G node in the fleet): a replica held a GPU
whole, and a time-sliced pod on the same node was read as holding a slice of that GPU, which raised
`InventoryError` out of `pod_allocations`: `egs api` answered 500 to every POST.
"""

from __future__ import annotations

from autoscaler.pods import pod_allocations
from scheduler.catalog import Catalog
from scheduler.inventory import Allocation, build_inventory
from scheduler.synthetic import gpu_node

CATALOG = Catalog.load()


def sliced_pod(node: str) -> dict[str, object]:
    one = {"nvidia.com/gpu": "1"}
    return {
        "metadata": {"name": "notebook", "namespace": "team-x"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "resources": {"requests": one, "limits": one}}]},
        "status": {"phase": "Running"},
    }


def test_a_time_sliced_pod_takes_a_slice_of_a_gpu_no_replica_holds_whole() -> None:
    inventory = build_inventory([gpu_node("a10g-ts-0", CATALOG.get("A10G"), 2, replicas=4)], CATALOG)
    assert inventory.node("a10g-ts-0").sharing == "timeslice"
    held = inventory.allocated([Allocation("a10g-ts-0", (0,))])  # a replica holds GPU 0 whole
    taken = pod_allocations(held, [sliced_pod("a10g-ts-0")], placed=())
    assert [(a.gpus, a.sharing) for a in taken] == [((1,), "timeslice")]


def test_a_time_sliced_pod_takes_a_slice_where_the_replicas_left_vram_not_only_a_free_replica() -> None:
    # Churn `--seed 306 --endpoints 150 --bursts 1 --namespaces 1 --deleted 0.5 --provision-minutes 3-6`, three
    # runs: a replica held 21,476 of GPU 0's 23,028 MiB on a time-sliced A10G, one of the device plugin's four
    # replicas; a pod outside the replicas (its endpoint deleted) was read as a quarter of GPU 0, 27,233 MiB in
    # all, and `InventoryError` failed the controller's whole loop 3-5 times in a row.
    inventory = build_inventory([gpu_node("a10g-ts-0", CATALOG.get("A10G"), 2, replicas=4)], CATALOG)
    held = inventory.allocated([Allocation("a10g-ts-0", (0,), 21_476, sharing="timeslice")])
    taken = pod_allocations(held, [sliced_pod("a10g-ts-0")], placed=())
    assert [(a.gpus, a.vram_mib) for a in taken] == [((1,), 23_028 // 4)]
    full = held.allocated([Allocation("a10g-ts-0", (1,), 23_028, sharing="timeslice")])
    taken = pod_allocations(full, [sliced_pod("a10g-ts-0")], placed=())
    assert [(a.gpus, a.vram_mib) for a in taken] == [((0,), 23_028 - 21_476)]  # within what is free there
