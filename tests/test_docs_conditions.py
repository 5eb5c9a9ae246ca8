"""docs/operations.md names every condition the controller writes on an InferenceEndpoint: `kubectl describe`
shows them, and an operator looks a type up there (the page had lost `ScalingActive`, the one that says
autoscaling is off for an endpoint).
"""

from __future__ import annotations

import re

from autoscaler.decide.status import ENDPOINT_CONDITIONS, PROMISE_KEPT, SPEC_APPLIED
from tests.conftest import REPO


def test_operations_names_every_condition_the_controller_writes() -> None:
    text = " ".join((REPO / "docs" / "operations.md").read_text().split())
    paragraph = re.search(r"\*\*Conditions\*\* (.*?)\*\*", text)
    assert paragraph, "the Conditions paragraph of docs/operations.md"
    named = set(re.findall(r"`([A-Z]\w+)`", paragraph.group(1)))
    assert {*ENDPOINT_CONDITIONS, SPEC_APPLIED, PROMISE_KEPT} <= named
