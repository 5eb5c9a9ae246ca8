"""Issue 16: an endpoint switched to `scaling: hpa` or `keda` must not shrink to 1 replica.

EGS stopped applying its workloads' `spec.replicas` at once; with EGS the field's only owner, the apply removed it
and the API server defaulted it to 1 until the HPA (or KEDA's) scaled it back. Now EGS applies the count the
workload has until another manager owns the field (`autoscaler.decide.workloads.held_replicas`).
"""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.decide.workloads import held_replicas
from localplay.kube_standin import KubeCluster
from tests.test_controller import DEPLOYMENTS, ENDPOINTS, FixedSignals, chat_deployment, controller
from tests.test_decide import endpoint, h100


def _max_num_seqs(deployment: dict[str, Any]) -> str:
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return str(args[args.index("--max-num-seqs") + 1])


@pytest.mark.parametrize("scaling", ["hpa", "keda"])
def test_a_switch_keeps_the_replicas_until_the_autoscaler_writes_its_own(kube: KubeCluster, scaling: str) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    ctl = controller(kube, FixedSignals(demand=9.0))
    ctl.reconcile()
    assert chat_deployment(kube)["spec"]["replicas"] == 6
    # The switch, with a change of the spec that leaves the workload's template as it is (the upper bound).
    kube.patch(ENDPOINTS, "team-a", "chat", {"spec": {"scaling": scaling, "replicas": {"max": 7}}})
    outcome = ctl.reconcile()
    assert outcome.errors == []
    deployment = chat_deployment(kube)
    assert deployment["metadata"]["name"] == "chat-bf16-h100-80gb"
    assert deployment["spec"]["replicas"] == 6  # before: 1, the API server's default
    # The autoscaler scales (its scale write owns the field); the controller leaves it to it from then on.
    name = deployment["metadata"]["name"]
    kube.patch(DEPLOYMENTS, "team-a", name, {"spec": {"replicas": 3}})
    kube.patch(ENDPOINTS, "team-a", "chat", {"spec": {"replicas": {"max": 8}}})
    assert ctl.reconcile().errors == []
    deployment = chat_deployment(kube)
    assert (deployment["metadata"]["name"], deployment["spec"]["replicas"]) == (name, 3)
    assert not [e for e in deployment["metadata"]["managedFields"]
                if e["manager"] == "egs-controller" and "f:replicas" in e["fieldsV1"]["f:spec"]]  # fmt: skip
    # A change the template carries but not its shape (the same KV cache: twice the sequences, half the context)
    # makes a new workload, made before the old one breaks: it starts with the autoscaler's count, not EGS's 6.
    kube.patch(ENDPOINTS, "team-a", "chat", {"spec": {"concurrency": 32, "contextTokens": 4096}})
    assert ctl.reconcile().errors == []
    deployment = chat_deployment(kube)  # the old one served nothing here: it went at once
    assert (_max_num_seqs(deployment), deployment["metadata"]["name"]) == ("32", "chat-bf16-h100-80gb-2")
    assert deployment["spec"]["replicas"] == 3


@pytest.mark.parametrize("scaling", ["hpa", "keda"])
def test_a_workload_created_new_is_written_with_its_planned_replicas(kube: KubeCluster, scaling: str) -> None:
    # No workload yet: the field is EGS's until the autoscaler writes it (left out, the API server wrote 1).
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint(scaling=scaling))
    ctl = controller(kube, FixedSignals(demand=9.0))
    assert ctl.reconcile().errors == []
    deployment = chat_deployment(kube)
    assert deployment["spec"]["replicas"] == 6
    # Its template changed, not its shape: the new workload that replaces it starts with the count it has.
    kube.patch(ENDPOINTS, "team-a", "chat", {"spec": {"concurrency": 32, "contextTokens": 4096}})
    assert ctl.reconcile().errors == []
    assert (_max_num_seqs(chat_deployment(kube)), chat_deployment(kube)["spec"]["replicas"]) == ("32", 6)


def _workload(replicas: int | None, *entries: tuple[str, str, bool]) -> dict[str, Any]:
    """A workload whose managedFields hold (manager, operation, owns spec.replicas) entries."""
    managed = [
        {"manager": m, "operation": op, "fieldsV1": {"f:spec": {"f:replicas": {}} if owns else {"f:template": {}}}}
        for m, op, owns in entries
    ]
    spec = {} if replicas is None else {"replicas": replicas}
    return {"metadata": {"managedFields": managed}, "spec": spec}


def test_held_replicas_are_kept_while_egs_s_apply_alone_owns_them() -> None:
    assert held_replicas(_workload(6, ("egs-controller", "Apply", True))) == 6
    hpa = ("kube-controller-manager", "Update", True)
    assert held_replicas(_workload(3, ("egs-controller", "Apply", True), hpa)) is None  # shared with the HPA
    assert held_replicas(_workload(3, ("egs-controller", "Apply", False), hpa)) is None
    assert held_replicas(_workload(1, ("egs-controller", "Apply", False))) is None  # defaulted: nobody's
    assert held_replicas(_workload(None, ("egs-controller", "Apply", False))) is None
    assert held_replicas(None) is None  # a new workload
