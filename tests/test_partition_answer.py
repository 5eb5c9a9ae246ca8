"""A 201 on AMD partitions names its node and partition mode, never a partition: the answer cannot depend
on which partition the device plugin gives.

AMD's device plugin advertises each partition of a mode as one `amd.com/gpu` (or `amd.com/<mode>`) and the
kubelet hands a pod any free ones; every partition of a mode has the same memory and compute, and a replica
takes one (placement puts only tensor-parallel-1 replicas on a partition), so EGS counts partitions per
node (`scheduler.inventory.MigSlots`) and answers with the node, the mode and the resource. Pods of 201s
bound off their answered MI325X CPX node in a chain were one Deployment's replicas, answered on two nodes,
bound on the first (the churn play did not spread them as kube-scheduler does): not a partition's index.
This guards the answer's shape; it passes on the code before that change too.
"""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from autoscaler.adapters.api import Services, create_app
from autoscaler.adapters.kubernetes import Cluster
from autoscaler.decide import PROMISE_ANNOTATION
from localplay.kube_standin import KubeCluster
from scheduler.synthetic import gpu_node
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS
from tests.test_endpoint_api import body, post
from tests.test_endpoint_api import kube as kube  # the API's fixture: kmock with alice allowed in team-a


def test_a_201_on_cpx_partitions_names_the_node_and_the_mode_not_a_partition(kube: KubeCluster) -> None:
    kube.put("v1/nodes", gpu_node("mi325x-0", CATALOG.get("MI325X"), 2, partition="cpx_nps4"))
    services = Services(Cluster(kube.api_client()), SETTINGS, REGISTRY, CATALOG, clock=lambda: NOW)
    assert post(TestClient(create_app(services)), body(replicas={"min": 2, "max": 2})).status_code == 201
    created = kube.get("egs.dev/v1alpha1/inferenceendpoints", "team-a", "chat") or {}
    placements = json.loads(created["metadata"]["annotations"][PROMISE_ANNOTATION])["placements"]
    workers = [w for p in placements for w in p["workers"]]
    assert [p["sharing"] for p in placements] == ["partition", "partition"]
    assert workers == [{"node": "mi325x-0", "gpus": [], "profile": "cpx_nps4", "resource": "amd.com/gpu"}] * 2
