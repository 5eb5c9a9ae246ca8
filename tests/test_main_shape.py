"""An endpoint split over two GPU classes is named by one rule in the API's answer and in its status.

Covers: a 201 whose two replicas the API placed on two classes is reported in the class and variant it
was answered in whichever of its pods are Ready (the controller listed Ready pods first, and named the
class of the first), and the rule itself (most replicas, ties to the first by name). Skips the API's
process: `admit` and `answer_status` are what it answers from.
"""

from __future__ import annotations

import pytest

from autoscaler.admission import admit, capacity
from autoscaler.decide import Observation, answer_status, decide
from autoscaler.decide.status import main_shape
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint
from tests.test_reconcile_state import applied, l40s, node, observed

NODES = [node("h100-0", "NVIDIA-H100-80GB-HBM3", 1), l40s("l40s-0", 1)]


@pytest.mark.parametrize("ready", [(), ("h100-0",), ("l40s-0",), ("h100-0", "l40s-0")])
def test_a_201_split_over_two_classes_is_reported_in_the_class_it_was_answered_in(ready: tuple[str, ...]) -> None:
    base = capacity(decide(Observation(NODES, [], signals={}), SETTINGS, REGISTRY, CATALOG, NOW), CATALOG)
    ep = endpoint("split", lo=2, hi=2)
    answer = admit(base, ep, SETTINGS, REGISTRY, CATALOG, NOW)
    assert sorted(p.gpu_class for p in answer.placed) == ["H100-80GB", "L40S"]  # split, as the case needs
    said = answer_status(answer.decision, 3, answer.placed)
    first = decide(Observation(NODES, [{**ep, "status": said}], signals={}), SETTINGS, REGISTRY, CATALOG, NOW + 10)
    owned, pods = applied(first)
    for pod in pods:
        if pod["spec"]["nodeName"] not in ready:
            pod["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    obs = Observation(NODES, observed(first, [ep]), owned, signals={}, pods=pods)
    status = decide(obs, SETTINGS, REGISTRY, CATALOG, NOW + 20).statuses[("team-a", "split")]
    assert (status["gpuClass"], status["variant"]) == (said["gpuClass"], said["variant"])


def test_the_main_shape_is_the_one_most_replicas_take_ties_to_the_first_by_name() -> None:
    assert main_shape([("bf16", "L40S"), ("fp8", "H100-80GB"), ("bf16", "L40S")]) == ("bf16", "L40S")
    assert main_shape([("bf16", "L40S"), ("bf16", "H100-80GB")]) == ("bf16", "H100-80GB")
    assert main_shape([("fp8", "L40S"), ("bf16", "L40S")]) == ("bf16", "L40S")
    assert main_shape([]) is None
