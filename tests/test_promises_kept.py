"""A 201 stays serving-now: the controller places it where the endpoint API answered it.

Covers: the API records the GPUs a 201 was answered from (`status.promise.placements`) and the
controller holds them as incumbents, although placing the new endpoints together would pack them
otherwise; an endpoint listed before its status is written (by the controller, or by the API's own
capacity rebuilt) is held to its answer, which it carries from its creation; only capacity that is
gone (the node) makes a 201 wait. Skips the ETA of a 202 (tests/test_reconcile_state.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema

from autoscaler import endpoint as ie
from autoscaler.adapters.api import Services, _Admissions
from autoscaler.adapters.kubernetes import Cluster
from autoscaler.admission import admit, capacity
from autoscaler.decide import ClassSettings, Decision, Observation, Settings, answer_status, decide
from localplay.kube_standin import KubeCluster
from scheduler.catalog import Catalog
from scheduler.registry import Registry
from scheduler.synthetic import gpu_node
from tests.test_decide import NOW

REPO = Path(__file__).resolve().parent.parent

CATALOG = Catalog.load()
REGISTRY = Registry.load(REPO / "examples" / "models.yaml", CATALOG)
SETTINGS = Settings(sharing={"L40S": "kai"}, classes={"L40S": ClassSettings(gpus_per_node=4, policy="static")})
NODES = [
    gpu_node("l40s-kai-0", CATALOG.get("L40S"), 1),
    gpu_node("mi300x-dpx-0", CATALOG.get("MI300X"), 1, partition="dpx_nps1"),
]
# Three endpoints the API answers one by one; placed together, the scheduler packs them otherwise
# (found by admitting random bursts on the churn benchmark's fleet and deciding on the answers).
ASKED = [
    ("ep-7", "qwen2.5-14b-instruct", 0.95, 2),
    ("ep-10", "llama-3.1-70b-instruct", 0.95, 1),
    ("ep-11", "qwen2.5-14b-instruct", 1.0, 1),
]


def asked(name: str, model: str, floor: float, replicas: int) -> dict[str, Any]:
    obj = ie.manifest("team-b", name, {"model": model, "qualityFloor": floor, "replicas": {"min": replicas, "max": 4}})
    obj["metadata"]["generation"] = 1
    return obj


def answered(
    nodes: list[dict[str, Any]], endpoints: Sequence[dict[str, Any]] | None = None, settings: Settings = SETTINGS
) -> list[dict[str, Any]]:
    """The endpoints (`ASKED` unless given) as the API leaves them: each admitted on what the ones before left, its
    answer recorded for its generation."""
    cap = capacity(decide(Observation(nodes, [], signals={}), settings, REGISTRY, CATALOG, NOW), CATALOG)
    out = []
    for obj in [asked(*spec) for spec in ASKED] if endpoints is None else endpoints:
        result = admit(cap, obj, settings, REGISTRY, CATALOG, NOW)
        cap = result.capacity
        out.append({**obj, "status": answer_status(result.decision, obj["metadata"]["generation"], result.placed)})
    return out


def broken(decision: Decision, endpoints: list[dict[str, Any]]) -> list[str]:
    """The 201s the decision does not keep: not all placed, or in another variant or class than answered."""
    promised = {e["metadata"]["name"]: e["status"]["promise"] for e in endpoints if "status" in e}
    return [
        f"{d.name}: answered {promised[d.name]['variant']} on {promised[d.name]['gpuClass']}, decided "
        f"{d.placed} placed and {d.waiting} waiting in {d.variant} on {d.gpu_class}"
        for d in decision.endpoints
        if promised[d.name]["answer"] == "Created"
        and (d.waiting or d.placed < d.replicas or (d.variant, d.gpu_class) != (promised[d.name]["variant"],
                                                                                 promised[d.name]["gpuClass"]))
    ]  # fmt: skip


def test_each_201_is_placed_where_it_was_answered_when_the_new_endpoints_are_placed_together() -> None:
    endpoints = answered(NODES)
    assert [e["status"]["promise"]["answer"] for e in endpoints].count("Created") >= 2
    decision = decide(Observation(NODES, endpoints, signals={}), SETTINGS, REGISTRY, CATALOG, NOW)
    assert broken(decision, endpoints) == []
    # The GPUs recorded are the ones the controller's plan holds for it.
    for e in endpoints:
        recorded = e["status"]["promise"].get("placements") or []
        planned = [p for p in decision.placed.placements if p.request == e["metadata"]["name"]]
        assert [[w["node"] for w in r["workers"]] for r in recorded] == [[w.node for w in p.workers] for p in planned][
            : len(recorded)
        ]


def test_a_201_waits_only_when_its_node_is_gone() -> None:
    endpoints = answered(NODES)

    def on(e: dict[str, Any]) -> set[str]:
        return {w["node"] for r in e["status"]["promise"].get("placements", ()) for w in r["workers"]}

    assert any("l40s-kai-0" in on(e) for e in endpoints) and any(on(e) == {"mi300x-dpx-0"} for e in endpoints)
    left = [n for n in NODES if n["metadata"]["name"] != "l40s-kai-0"]
    decision = decide(Observation(left, endpoints, signals={}), SETTINGS, REGISTRY, CATALOG, NOW)
    # Those with a replica on the node that went, and the 202s that waited already; not the others.
    gone = {e["metadata"]["name"] for e in endpoints if "l40s-kai-0" in on(e)}
    accepted = {e["metadata"]["name"] for e in endpoints if e["status"]["promise"]["answer"] == "Accepted"}
    assert {d.name for d in decision.endpoints if d.waiting} == gone | accepted


def test_an_endpoint_listed_before_its_status_is_written_is_held_to_its_answer(kube: KubeCluster) -> None:
    for node in NODES:
        kube.put("v1/nodes", node)
    cluster = Cluster(kube.api_client())
    admissions = _Admissions(Services(cluster, SETTINGS, REGISTRY, CATALOG, clock=lambda: NOW))
    answers = {}
    for spec in ASKED:
        _, created, status = admissions.admit(asked(*spec))
        assert created is not None
        answers[spec[0]] = status
    # Nothing has written a status yet (the API's route writes it next): what a loop listing now sees.
    listed = cluster.endpoints()
    assert not any(e.get("status") for e in listed)
    decision = decide(Observation(cluster.nodes(), listed, signals={}), SETTINGS, REGISTRY, CATALOG, NOW)
    assert broken(decision, [{**e, "status": answers[e["metadata"]["name"]]} for e in listed]) == []
    # The API's own capacity, rebuilt from that listing, counts the GPUs it promised as taken.
    rebuilt, *_ = admissions._build(NOW, cluster.nodes())
    again = capacity(decision, CATALOG)
    assert [n.gpus for n in rebuilt.free] == [n.gpus for n in again.free]


def test_the_workloads_of_endpoints_that_wait_are_written_after_those_that_serve_now() -> None:
    # kube-scheduler binds first in, first out: a waiting replica's pod written first would take a 201's room.
    endpoints = answered(NODES)[::-1]
    assert endpoints[0]["status"]["promise"]["answer"] == "Accepted"
    decision = decide(Observation(NODES, endpoints, signals={}), SETTINGS, REGISTRY, CATALOG, NOW)
    waits = {d.name for d in decision.endpoints if d.waiting}
    served = [(o.get("metadata") or {}).get("annotations", {}).get("egs.io/request-name") for o in decision.objects]
    order = [name in waits for name in served if name]
    assert order == sorted(order) and order[0] is False and order[-1] is True


def test_the_promise_with_its_placements_is_what_the_crd_keeps() -> None:
    # A structural schema prunes what it does not declare: undeclared placements would be dropped on write.
    schema = ie.schema()["properties"]["status"]
    for e in answered(NODES):
        jsonschema.validate(e["status"], schema)
        assert set(e["status"]["promise"]) <= set(schema["properties"]["promise"]["properties"])
        for placed in e["status"]["promise"].get("placements", ()):
            declared = schema["properties"]["promise"]["properties"]["placements"]["items"]
            assert set(placed) <= set(declared["properties"])
            assert all(
                set(w) <= set(declared["properties"]["workers"]["items"]["properties"]) for w in placed["workers"]
            )


def test_a_tensor_parallel_replica_is_written_before_one_gpu_replicas() -> None:
    # A one-GPU pod bound first (first fit) may split the node a tensor-parallel replica was planned on.
    nodes = [gpu_node(f"h100-{i}", CATALOG.get("H100-80GB"), 4) for i in range(2)]
    small = asked("small", "mistral-7b-instruct-v0.3", 1.0, 1)
    big = asked("big", "llama-3.1-70b-instruct", 1.0, 1)
    decision = decide(Observation(nodes, [small, big], signals={}), SETTINGS, REGISTRY, CATALOG, NOW)
    gpus = {p.request: p.tp * len(p.workers) for p in decision.placed.placements}
    assert gpus["big"] > gpus["small"] == 1
    served = [(o.get("metadata") or {}).get("annotations", {}).get("egs.io/request-name") for o in decision.objects]
    assert [name for name in served if name in gpus][:1] == ["big"]
