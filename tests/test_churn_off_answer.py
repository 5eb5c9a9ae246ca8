"""Churn counts a 201's pod bound off the node its answer named, but not one a consolidation move made.

Consolidation may move a running replica (issue 16: "unless ... consolidation moves it"): the move's new
pods are bound where the move placed them. Counting them as off their answer made a run with consolidation
on report 18 such pods (seed 464, twelfth session), each a move within its budget.
"""

from __future__ import annotations

import json
import time

from autoscaler.decide import PROMISE_ANNOTATION
from benchmarks.churnkit.figures import Moved
from benchmarks.churnkit.play import Pod
from tests.test_churn_promises import Api, play


def _off_answer(status: dict[str, object], moved_before: bool = False) -> int:
    api = Api()
    run = play(api)
    if moved_before:  # read in flight by an earlier pass
        run.tally.moves["team/chat", str(MOVE["at"])] = Moved(0.0, frozenset({"gpu-a"}), 10, "uid-chat")
    answer = {"placements": [{"gpuClass": "H100-80GB", "workers": [{"node": "gpu-a"}]}]}
    meta = {
        "namespace": "team",
        "name": "chat",
        "uid": "uid-0",
        "annotations": {PROMISE_ANNOTATION: json.dumps(answer)},
    }
    api.objects[("team", "chat")] = {"metadata": meta, "spec": {}, "status": status}
    run.tally.answered_201.add("team/chat")
    pod = Pod("team", "chat-0", "chat", "team/chat", {}, 1.0, "MI300X", node="gpu-b")
    run.play.pods[pod.key] = pod
    run._observe(time.time())
    return run.tally.off_answer


def test_a_201s_pod_bound_off_its_answer_is_counted() -> None:
    assert _off_answer({"phase": "Ready"}) == 1


MOVE = {"at": "2026-12-07T20:00:00+00:00", "nodes": ["gpu-a"], "replacing": ["chat-fp8-h100-80gb"]}


def test_the_pods_of_a_consolidation_move_are_not_counted_off_the_answer() -> None:
    assert _off_answer({"phase": "Ready", "consolidation": MOVE}) == 0


def test_nor_those_bound_once_the_move_was_done() -> None:
    """A compressed move's pods can bind and its record leave the status between two reads of the play."""
    assert _off_answer({"phase": "Ready"}, moved_before=True) == 0
