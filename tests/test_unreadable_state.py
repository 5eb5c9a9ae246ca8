"""What the cluster holds that cannot be read never stops the decide step for the other endpoints.

Two objects a new release, another writer or an older CRD can leave behind, each of which raised out of
`decide` (the loop failed, and no endpoint was decided):
- a workload recording a GPU class the catalogue does not have (a class renamed since it was written, or
  an annotation edited): its replica was read as an incumbent of that class, whose manifest could not be
  rendered (`CatalogError`); its replicas are now placed again, in a class the catalogue has;
- an endpoint status whose conditions are not a list of objects: read as if they were.
"""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.decide import Observation, decide
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, h100, signals
from tests.test_reconcile_state import applied, l40s, observed

NODES = [l40s("l40s-0"), h100("gpu-0")]


def settled() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Two endpoints decided and applied: the endpoints with their statuses, the workloads, the pods."""
    eps = [endpoint("alpha"), endpoint("beta")]
    first = decide(Observation(NODES, eps, signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    owned, pods = applied(first)
    return observed(first, eps), owned, pods


def test_a_workload_of_a_class_the_catalogue_lacks_is_placed_again_and_the_others_are_decided() -> None:
    eps, owned, pods = settled()
    alpha = next(o for o in owned if o["kind"] == "Deployment" and "alpha" in o["metadata"]["name"])
    alpha["metadata"]["annotations"]["egs.io/gpu-class"] = "L40S-RENAMED"
    second = decide(Observation(NODES, eps, owned, signals(), pods=pods), SETTINGS, REGISTRY, CATALOG, NOW + 60)
    by_name = {d.name: d for d in second.endpoints}
    assert by_name["alpha"].gpu_class in CATALOG
    assert by_name["beta"].phase == "Ready"


@pytest.mark.parametrize("conditions", ["all good", [5, "Ready"]])
def test_an_endpoint_whose_conditions_cannot_be_read_is_decided_and_its_conditions_written_anew(
    conditions: Any,
) -> None:
    eps, owned, pods = settled()
    eps[0]["status"] = {**eps[0]["status"], "conditions": conditions}
    second = decide(Observation(NODES, eps, owned, signals(), pods=pods), SETTINGS, REGISTRY, CATALOG, NOW + 60)
    assert [d.phase for d in second.endpoints] == ["Ready", "Ready"]
    written = second.statuses[("team-a", "alpha")]["conditions"]
    assert {c["type"] for c in written} >= {"Ready", "ScalingActive"}
