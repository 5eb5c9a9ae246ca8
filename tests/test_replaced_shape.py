"""A workload whose shape changed keeps pods of its old template until the new ones serve (a rolling update,
make-before-break): such a pod holds what it asks for, not a replica of the new shape.

Found by churn seed 403 (`--provision-minutes 20-20 --late-fleet 0.7`): an endpoint on a partition of an MI300X
DPX node had its minimum raised and moved to whole GPUs of a new node; its old pod, still Ready, was read as
an incumbent of the new shape holding no GPU, so its partition counted free and `egs api` answered a 201 there,
demoted by the next loop (`CapacityGone`); and it took the place of one of the endpoint's new pods, whose
whole GPU was answered to another 201 (served on another class).
"""

from __future__ import annotations

from autoscaler.admission import capacity
from autoscaler.decide import Observation, decide
from scheduler.synthetic import gpu_node
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, signals
from tests.test_reconcile_state import applied, observed

MI300X = CATALOG.get("MI300X")
DPX = gpu_node("mi300x-dpx-0", MI300X, 1, partition="dpx_nps1")
WHOLE = gpu_node("mi300x-new", MI300X, 8)


def test_a_pod_of_a_workloads_old_shape_holds_its_partition_until_it_goes() -> None:
    # alpha and beta share the DPX node's two partitions.
    eps = [endpoint("alpha"), endpoint("beta")]
    first = decide(Observation([DPX], eps, signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    assert [(d.name, d.placed) for d in first.endpoints] == [("alpha", 1), ("beta", 1)]
    owned, pods = applied(first)
    # alpha now wants two replicas: its workload is rewritten to whole GPUs of a node that joined.
    wants_two = observed(first, [endpoint("alpha", lo=2), endpoint("beta")])
    wants_two[0]["metadata"]["generation"] = 4
    moved = decide(Observation([DPX, WHOLE], wants_two, owned, signals(), pods=pods), SETTINGS, REGISTRY, CATALOG, NOW)
    rewritten, new_pods = applied(moved, ready=False)
    assert {p["spec"]["nodeName"] for p in new_pods if p["metadata"]["name"].startswith("alpha")} == {"mi300x-new"}
    # The new pods are bound, not Ready yet; the old one serves on its partition until they are.
    names = {(o["kind"], o["metadata"]["name"]) for o in rewritten}
    owned = [o for o in owned if (o["kind"], o["metadata"]["name"]) not in names] + rewritten
    new_pods = [{**p, "metadata": {**p["metadata"], "name": p["metadata"]["name"] + "-new"}} for p in new_pods]
    pods += [p for p in new_pods if p["metadata"]["name"].startswith("alpha")]
    later = decide(
        Observation([DPX, WHOLE], observed(moved, wants_two), owned, signals(), pods=pods),
        SETTINGS, REGISTRY, CATALOG, NOW + 60,
    )  # fmt: skip
    alpha = [p for p in later.placed.placements if p.request == "alpha"]
    assert {w.node for p in alpha for w in p.workers} == {"mi300x-new"}
    free = capacity(later, CATALOG).free
    [partitions] = free.node("mi300x-dpx-0").mig
    assert partitions.used == partitions.count  # beta's and alpha's old pod: nothing to answer a 201 on
    # Both new pods hold their GPUs: the old pod took no incumbent's place (the second's GPU was answered too).
    assert [g.holders for g in free.node("mi300x-new").gpus] == [1, 1, 0, 0, 0, 0, 0, 0]
