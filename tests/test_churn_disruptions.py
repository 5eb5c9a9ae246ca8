"""Churn counts a Ready replica that goes away as a disruption only for the incarnation (uid) still there.

`egs api` creates an InferenceEndpoint, then writes its status; when that write fails it deletes the object
again and answers 503, and the client posts once more. Meanwhile the controller may have served the first
incarnation: its replica, Ready, went with it, and the play counted a disruption of the endpoint the retry
made (churn seed 3011, the API server's bad minute: team-c/late-2's MI250X replica, "disrupted ... at minute
17.7"). A replica of the incarnation that serves is still counted.
"""

from __future__ import annotations

import time

from benchmarks.churnkit.play import Pod
from tests.test_churn_promises import Api, play


def _disruptions(served: str) -> int:
    """team/chat, now incarnation uid-2, had a Ready replica written for `served`; the replica goes."""
    api = Api()
    run = play(api)
    api.objects[("team", "chat")] = {"metadata": {"namespace": "team", "name": "chat", "uid": "uid-2"}, "spec": {}}
    pod = Pod("team", "chat-0", "chat", "team/chat", {}, 1.0, "MI250X", node="mi250x-0", ready=True, uid=served)
    run.play.pods[pod.key] = pod
    run._observe(time.time())
    del run.play.pods[pod.key]
    run._observe(time.time())
    return run.tally.disruptions


def test_a_replica_of_an_incarnation_deleted_since_is_no_disruption() -> None:
    assert _disruptions("uid-1") == 0


def test_a_replica_of_the_incarnation_there_is_one() -> None:
    assert _disruptions("uid-2") == 1
