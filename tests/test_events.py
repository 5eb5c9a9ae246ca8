"""Events (events.k8s.io/v1) and KEP-1623 conditions (autoscaler/events.py), Events written to kmock.

Covers: a repeated Event is one object whose series counts up (not an object per occurrence), a
repeat after the 6-minute window or with another reason is a new object, a cluster-scoped object's
Events live in `default`, an Event that cannot be written is dropped without raising; a condition's
lastTransitionTime moves on a status change only.
"""

from __future__ import annotations

from typing import Any

from autoscaler.adapters.kubernetes import Cluster
from autoscaler.decide import EndpointDecision
from autoscaler.decide.status import endpoint_status
from autoscaler.events import Recorder, event, find_condition, set_condition
from localplay.kube_standin import KubeCluster
from tests.clock import Clock
from tests.test_decide import endpoint, h100

EVENTS = "events.k8s.io/v1/events"
NOW = 1_800_000_000.0


def test_a_repeated_event_is_one_object_whose_series_counts_up(kube: KubeCluster) -> None:
    clock = Clock(NOW)
    recorder = Recorder(Cluster(kube.api_client()), "egs-controller-0", clock)
    chat = endpoint()
    chat["metadata"]["uid"] = "uid-chat"
    for i in range(3):
        recorder.record(event(chat, "Warning", "HoldingReplicas", "Scale", f"metrics {60 + i}s old"))
        clock.t += 30
    (written,) = kube.all(EVENTS)
    assert written["metadata"]["namespace"] == "team-a"
    assert written["regarding"] == {
        "apiVersion": "egs.dev/v1alpha1",
        "kind": "InferenceEndpoint",
        "namespace": "team-a",
        "name": "chat",
        "uid": "uid-chat",
    }
    assert (written["type"], written["reason"], written["action"]) == ("Warning", "HoldingReplicas", "Scale")
    assert (written["reportingController"], written["reportingInstance"]) == ("egs.dev/controller", "egs-controller-0")
    assert written["series"] == {"count": 3, "lastObservedTime": "2027-01-15T08:01:00.000000Z"}
    assert written["note"] == "metrics 62s old"  # the latest occurrence's
    assert written["eventTime"] == "2027-01-15T08:00:00.000000Z"


def test_another_reason_or_a_repeat_after_the_window_is_a_new_event(kube: KubeCluster) -> None:
    clock = Clock(NOW)
    recorder = Recorder(Cluster(kube.api_client()), "a", clock)
    chat = endpoint()
    recorder.record(event(chat, "Normal", "WaitingForCapacity", "Provision", "1 of 1 replicas wait"))
    recorder.record(event(chat, "Normal", "AllReplicasReady", "Provision", "1 of 1 replicas ready"))
    clock.t += 7 * 60
    recorder.record(event(chat, "Normal", "WaitingForCapacity", "Provision", "1 of 1 replicas wait"))
    reasons = sorted(e["reason"] for e in kube.all(EVENTS))
    assert reasons == ["AllReplicasReady", "WaitingForCapacity", "WaitingForCapacity"]
    assert all("series" not in e for e in kube.all(EVENTS))


def test_a_node_s_events_live_in_the_default_namespace(kube: KubeCluster) -> None:
    recorder = Recorder(Cluster(kube.api_client()), "a", Clock(NOW))
    node = {"apiVersion": "v1", "kind": "Node", **h100("gpu-0")}
    recorder.record(event(node, "Warning", "UnusableNode", "Place", "no GPU product label"))
    (written,) = kube.all(EVENTS)
    assert written["metadata"]["namespace"] == "default"
    assert written["regarding"] == {"apiVersion": "v1", "kind": "Node", "name": "gpu-0"}


def test_an_event_that_cannot_be_written_is_dropped_without_raising(kube: KubeCluster) -> None:
    recorder = Recorder(Cluster(kube.api_client()), "a", Clock(NOW))
    kube.fail("POST", 403, times=1, path_part="/events")
    recorder.record(event(endpoint(), "Warning", "WriteFailed", "Apply", "422"))
    assert (recorder.failures, kube.all(EVENTS)) == (1, [])
    recorder.record(event(endpoint(), "Warning", "WriteFailed", "Apply", "422"))  # not a series of a lost one
    (written,) = kube.all(EVENTS)
    assert "series" not in written


def test_a_condition_s_transition_time_moves_only_when_its_status_does() -> None:
    first = set_condition(None, "Ready", "False", "WaitingForCapacity", "1 waits", NOW, observed_generation=1)
    assert first == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "WaitingForCapacity",
            "message": "1 waits",
            "lastTransitionTime": "2027-01-15T08:00:00Z",
            "observedGeneration": 1,
        }
    ]
    reason_only = set_condition(first, "Ready", "False", "ReplicasStarting", "0 of 1 ready", NOW + 60)
    assert find_condition(reason_only, "Ready") == {
        "type": "Ready",
        "status": "False",
        "reason": "ReplicasStarting",
        "message": "0 of 1 ready",
        "lastTransitionTime": "2027-01-15T08:00:00Z",
    }
    both = set_condition(reason_only, "Progressing", "True", "ReplicasStarting", "", NOW + 60)
    ready = set_condition(both, "Ready", "True", "AllReplicasReady", "1 of 1 ready", NOW + 120)
    assert [c["type"] for c in ready] == ["Ready", "Progressing"]  # kept in place
    assert find_condition(ready, "Ready")["lastTransitionTime"] == "2027-01-15T08:02:00Z"  # type: ignore[index]
    assert find_condition(ready, "Progressing")["lastTransitionTime"] == "2027-01-15T08:01:00Z"  # type: ignore[index]


def test_an_endpoint_s_conditions_move_on_a_status_change_only_and_say_progressing_and_degraded() -> None:
    # The finding: Ready's lastTransitionTime moved when only its reason changed (WaitingForCapacity ->
    # ReplicasStarting), and there was no Progressing or Degraded condition.
    def decided(phase: str, reason: str) -> EndpointDecision:
        return EndpointDecision("team-a", "chat", "m", 1, 1, 0, 0, None, None, None, phase, 0, reason, "why")

    waiting = endpoint_status(decided("Provisioning", "WaitingForCapacity"), None, {}, NOW)
    starting = endpoint_status(decided("Pending", "ReplicasStarting"), None, waiting, NOW + 300)
    ready = endpoint_status(decided("Ready", "AllReplicasReady"), None, starting, NOW + 400)
    failed = endpoint_status(decided("Failed", "Unschedulable"), None, ready, NOW + 500)

    def seen(status: dict[str, Any]) -> list[tuple[str, str, str, str]]:
        return [(c["type"], c["status"], c["reason"], c["lastTransitionTime"][11:19]) for c in status["conditions"]]

    assert seen(starting) == [
        ("Ready", "False", "ReplicasStarting", "08:00:00"),
        ("Progressing", "True", "ReplicasStarting", "08:00:00"),
        ("Degraded", "False", "ReplicasStarting", "08:00:00"),
        ("ScalingActive", "True", "ReplicasFollowDemand", "08:00:00"),
    ]
    assert seen(ready) == [
        ("Ready", "True", "AllReplicasReady", "08:06:40"),
        ("Progressing", "False", "AllReplicasReady", "08:06:40"),
        ("Degraded", "False", "AllReplicasReady", "08:00:00"),
        ("ScalingActive", "True", "ReplicasFollowDemand", "08:00:00"),
    ]
    assert seen(failed)[2] == ("Degraded", "True", "Unschedulable", "08:08:20")


def test_an_event_on_a_listed_object_names_its_kind(kube: KubeCluster) -> None:
    # A list's items carry no apiVersion and kind; the adapter puts them back, or `regarding` would be
    # nameless and `kubectl describe` would not find the Event.
    bare = endpoint()
    del bare["apiVersion"], bare["kind"]  # as a real API server's list items come
    kube.put("egs.dev/v1alpha1/inferenceendpoints", bare)
    cluster = Cluster(kube.api_client())
    (listed,) = cluster.endpoints()
    Recorder(cluster, "a", Clock(NOW)).record(event(listed, "Warning", "CapacityGone", "Revise", "the node went"))
    (written,) = kube.all(EVENTS)
    assert (written["regarding"]["apiVersion"], written["regarding"]["kind"]) == (
        "egs.dev/v1alpha1",
        "InferenceEndpoint",
    )
