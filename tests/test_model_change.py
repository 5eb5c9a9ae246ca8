"""An endpoint made to serve another model: its replicas of the model it served before are not its replicas.

A workload records its model (`egs.io/model`), but the decide step read only its variant and class, so once
the status caught up with the new spec the old model's workload, whose variant has the same name, counted
as the endpoint's again: its pods were incumbents (the workload was rolled to the new model in place, on
GPUs the plan had not chosen for it), and the replicas held while metrics were missing were the old and
new workloads together (churn seed 107 at 20 endpoints: `holding 4 replicas` of an endpoint that wanted 2,
the bad samples of its new model's demand and its model change within a minute).
"""

from __future__ import annotations

from typing import Any

from autoscaler.decide import Observation, decide
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, h100
from tests.test_reconcile_state import applied, l40s, observed, workloads

NODES = [l40s("l40s-0"), h100("gpu-0")]
NEW_MODEL = "mistral-7b-instruct-v0.3"


def test_while_metrics_are_missing_an_endpoint_that_changed_model_holds_its_new_replicas_only() -> None:
    eps = [endpoint("alpha")]
    first = decide(Observation(NODES, eps, signals=None), SETTINGS, REGISTRY, CATALOG, NOW)
    assert [(d.gpu_class, d.variant, d.replicas) for d in first.endpoints] == [("L40S", "bf16", 1)]
    old, old_pods = applied(first)
    # The user makes it serve another model: a new generation of its spec.
    changed = observed(first, eps)
    changed[0]["spec"]["model"] = NEW_MODEL
    changed[0]["metadata"]["generation"] = 4
    second = decide(Observation(NODES, changed, old, None, pods=old_pods), SETTINGS, REGISTRY, CATALOG, NOW + 60)
    new_workloads = workloads(second, "alpha")
    assert [w["metadata"]["annotations"]["egs.io/gpu-class"] for w in new_workloads.values()] == ["H100-80GB"]
    new, new_pods = applied(second, ready=False)
    owned: list[dict[str, Any]] = [*old, *(o for o in new if o["metadata"]["name"] in new_workloads)]
    # The status has caught up with the new spec; the old model's workload serves until the new one does.
    third = decide(
        Observation(NODES, observed(second, changed), owned, None, pods=[*old_pods, *new_pods]),
        SETTINGS, REGISTRY, CATALOG, NOW + 120,
    )  # fmt: skip
    (alpha,) = third.endpoints
    assert (alpha.gpu_class, alpha.replicas) == ("H100-80GB", 1)
    assert set(workloads(third, "alpha")) == set(new_workloads)
