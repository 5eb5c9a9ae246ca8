"""An endpoint deleted and posted again under its name gets a new uid; its old workload of the same
name may still be there (garbage collection is asynchronous). The node preference a workload keeps
from its creation is its own incarnation's: the new one's pods prefer the nodes it is placed on now,
not those the old plan chose."""

from __future__ import annotations

from typing import Any

from autoscaler.decide import Observation, decide
from autoscaler.decide.workloads import HOSTNAME, PREFERRED
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, h100, signals
from tests.test_reconcile_state import applied, workloads


def _preferred_nodes(obs: Observation) -> list[list[str]]:
    decision = decide(obs, SETTINGS, REGISTRY, CATALOG, NOW)
    out = []
    for w in workloads(decision, "chat").values():
        for term in w["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][PREFERRED]:
            out += [e["values"] for e in term["preference"]["matchExpressions"] if e["key"] == HOSTNAME]
    return out


def test_a_reposted_endpoint_does_not_keep_its_deleted_incarnations_preference() -> None:
    first = decide(
        Observation([h100("gpu-0")], [endpoint("chat")], signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW
    )
    old, _ = applied(first)  # its pods are gone with gpu-0; the workload is still listed
    again: dict[str, Any] = endpoint("chat")
    again["metadata"]["uid"] = "uid-chat-2"
    assert _preferred_nodes(Observation([h100("gpu-1")], [again], old, signals())) == [["gpu-1"]]
    # The same incarnation keeps the preference it was created with (a new template would restart its pods).
    assert _preferred_nodes(Observation([h100("gpu-1")], [endpoint("chat")], old, signals())) == [["gpu-0"]]
