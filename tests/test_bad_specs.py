"""One InferenceEndpoint whose spec its CRD would refuse never stops the decide step for the others.

The controller trusts the API server's schema check for speed, but an object can be stored without it
(written before the CRD's schema was tightened, or where the CRD has none). A minimum of -1, a minimum of
1.5, a throughput of -1 or a string, a context of "x" each raised inside `decide`: the loop failed and no
endpoint was decided. Each is now reported on its own endpoint, naming the field, and the rest proceed.
"""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.decide import Observation, decide
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, h100, signals

AT = (SETTINGS, REGISTRY, CATALOG, NOW)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"replicas": {"min": -1, "max": 2}}, "spec.replicas.min"),
        ({"replicas": {"min": 1.5, "max": 2}}, "spec.replicas.min"),
        ({"throughputPerReplica": -1}, "spec.throughputPerReplica"),
        ({"throughputPerReplica": "fast"}, "spec.throughputPerReplica"),
        ({"contextTokens": "x"}, "spec.contextTokens"),
    ],
)
def test_a_spec_the_crd_would_refuse_fails_its_endpoint_alone(spec: dict[str, Any], field: str) -> None:
    bad = endpoint("bad")
    bad["spec"] |= spec
    decision = decide(Observation([h100("gpu-0")], [endpoint("good"), bad], signals=signals()), *AT)
    by_name = {d.name: d for d in decision.endpoints}
    assert (by_name["bad"].phase, by_name["bad"].reason) == ("Failed", "InvalidSpec")
    assert str(by_name["bad"].message).startswith(f"{field}: ")
    assert (by_name["good"].phase, by_name["good"].gpu_class) == ("Pending", "H100-80GB")
