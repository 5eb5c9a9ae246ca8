"""A pod of a workload's template before a rolling update is no replica of the shape recorded now: it holds
what it asks until it goes, and the Ready replicas beside it keep their GPUs.

Found by churn seed 503 (`--api-replicas 2 --controller-kills 1-2`): on a time-sliced A10G node, an endpoint
made to serve another model kept its Deployment's name (same variant and class), so its old pod, still
Ready, was read as a second replica of the new model. Taken first (Ready first), it held the new pod's
planned GPU; the new pod took the lowest GPU with room, the next endpoint's replicas were pushed along, and
a Ready 201 on the last GPU lost its room for a loop (placed anew, `CapacityGone`). Where its workload lacks
replicas (a `maxUnavailable: 1` rollout, as EGS writes it), an old pod still counts, but after every other
endpoint's pods: read in its endpoint's turn, it took the lowest GPUs with room in the new shape's size, and
another endpoint's Ready replicas there lost theirs (found by reading the code; the test is the proof).
"""

from __future__ import annotations

from typing import Any

from autoscaler.decide import Decision, Observation, decide
from autoscaler.decide.state import Template
from autoscaler.signals import ModelSignals
from scheduler.synthetic import gpu_node
from tests.test_decide import CATALOG, MODEL, NOW, REGISTRY, SETTINGS, endpoint
from tests.test_reconcile_state import applied, observed

NODE = gpu_node("a10g-ts-0", CATALOG.get("A10G"), 4, replicas=4)
MISTRAL, PHI = "mistral-7b-instruct-v0.3", "phi-3-mini-4k-instruct"


def signals() -> dict[str, ModelSignals]:
    return {m: ModelSignals(m, 0.1, sampled_at=NOW - 10) for m in (MISTRAL, PHI, MODEL)}


def where(decision: Decision) -> dict[str, list[tuple[int, ...]]]:
    placed: dict[str, list[tuple[int, ...]]] = {}
    for p in decision.placed.placements:
        placed.setdefault(p.request, []).extend(w.gpus for w in p.workers)
    return placed


def on_nodes(decision: Decision) -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    placed: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    for p in decision.placed.placements:
        placed.setdefault(p.request, []).extend((w.node, w.gpus) for w in p.workers)
    return {ep: sorted(gpus) for ep, gpus in placed.items()}


def test_a_ready_replica_keeps_its_gpu_when_a_neighbour_rolls_to_another_model() -> None:
    # One int4 mistral replica per GPU for two endpoints (three GPUs), an fp16 phi replica on the last.
    eps = [
        endpoint("ep-20", hi=1, model=MISTRAL, qualityFloor=0.95),
        endpoint("ep-23", lo=2, hi=2, model=MISTRAL, qualityFloor=0.95),
        endpoint("ep-28", hi=1, model=PHI, qualityFloor=1.0),
    ]
    first = decide(Observation([NODE], eps, signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    assert where(first) == {"ep-20": [(0,)], "ep-23": [(1,), (2,)], "ep-28": [(3,)]}
    owned, pods = applied(first)
    # ep-20 now serves phi: its Deployment keeps its name, and its template changes.
    changed = observed(first, eps)
    changed[0] = {**changed[0], "spec": {**changed[0]["spec"], "model": PHI}}
    changed[0]["metadata"] = {**changed[0]["metadata"], "generation": 4}
    rolled = decide(Observation([NODE], changed, owned, signals(), pods=pods), SETTINGS, REGISTRY, CATALOG, NOW + 60)
    assert where(rolled)["ep-20"] == [(0,)]
    rewritten, new_pods = applied(rolled, ready=False)
    [deployment] = [o for o in rewritten if o["metadata"]["name"].startswith("ep-20") and o["kind"] == "Deployment"]
    owned = [o for o in owned if o["metadata"]["name"] != deployment["metadata"]["name"]] + [deployment]
    # Its new pod is bound and loads; its old pod (the template before) serves until it does.
    [new] = [p for p in new_pods if p["metadata"]["name"].startswith("ep-20")]
    pods = [*pods, {**new, "metadata": {**new["metadata"], "name": "ep-20-new-0"}}]
    later = decide(
        Observation([NODE], observed(rolled, changed), owned, signals(), pods=pods),
        SETTINGS, REGISTRY, CATALOG, NOW + 120,
    )  # fmt: skip
    assert where(later) == {"ep-20": [(0,)], "ep-23": [(1,), (2,)], "ep-28": [(3,)]}
    assert [(d.name, d.waiting) for d in later.endpoints] == [("ep-20", 0), ("ep-23", 0), ("ep-28", 0)]


def test_another_endpoints_pods_of_a_template_before_take_no_room_from_a_ready_replica() -> None:
    # One time-sliced A10G: ep-b (phi int4, 15738 MiB) and ep-c's first replica (phi at 1024 tokens, 6522 MiB)
    # on GPU 0, ep-a's three replicas (mistral int4 at 1024 tokens, 7215 MiB each) on GPU 1, ep-c's second on 2.
    eps = [
        endpoint("ep-a", lo=3, hi=3, model=MISTRAL, qualityFloor=0.95, contextTokens=1024),
        endpoint("ep-b", hi=1, model=PHI, qualityFloor=0.95),
        endpoint("ep-c", lo=2, hi=2, model=PHI, qualityFloor=0.95, contextTokens=1024),
    ]
    first = decide(Observation([NODE], eps, signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    assert where(first) == {"ep-a": [(1,), (1,), (1,)], "ep-b": [(0,)], "ep-c": [(0,), (2,)]}
    owned, pods = applied(first)
    # ep-a's context is raised (21551 MiB a replica): a new shape, planned on GPU 3 and a node that joined, in a
    # Deployment of its own (made before the old one breaks: `workloads.named`).
    joined = gpu_node("a10g-ts-1", CATALOG.get("A10G"), 4, replicas=4)
    changed = observed(first, eps)
    changed[0] = {**changed[0], "spec": {k: v for k, v in changed[0]["spec"].items() if k != "contextTokens"}}
    changed[0]["metadata"] = {**changed[0]["metadata"], "generation": 4}
    nodes = [NODE, joined]
    rolled = decide(Observation(nodes, changed, owned, signals(), pods=pods), SETTINGS, REGISTRY, CATALOG, NOW + 60)
    rewritten, new_pods = applied(rolled, ready=False)
    [deployment] = [o for o in rewritten if o["metadata"]["name"].startswith("ep-a") and o["kind"] == "Deployment"]
    assert deployment["metadata"]["name"] != "ep-a-int4-a10g"
    owned = [*owned, deployment]
    # The new pod is bound on GPU 3 and loads; the three old pods serve on GPU 1 until the new ones are Ready.
    [new, *_] = [p for p in new_pods if p["metadata"]["name"].startswith("ep-a")]
    pods.append(new)
    later = decide(
        Observation(nodes, observed(rolled, changed), owned, signals(), pods=pods),
        SETTINGS,
        REGISTRY,
        CATALOG,
        NOW + 120,
    )
    # Read as replicas of 21551 MiB on the lowest GPUs with room, the old pods (then of a template rolled in place)
    # took GPU 0 and pushed ep-c's Ready replica off its node.
    held = {ep: gpus for ep, gpus in on_nodes(later).items() if ep != "ep-a"}
    assert held == {"ep-b": [("a10g-ts-0", (0,))], "ep-c": [("a10g-ts-0", (0,)), ("a10g-ts-0", (2,))]}
    assert [(d.name, d.waiting) for d in later.endpoints if d.name != "ep-a"] == [("ep-b", 0), ("ep-c", 0)]


def test_pods_of_the_template_before_still_count_as_the_replicas_their_workload_lacks() -> None:
    # Both GPUs of the class serve the endpoint; its pods run a template rendered before (a flag since added).
    two = gpu_node("h100-0", CATALOG.get("H100-80GB"), 2)
    eps = [endpoint("chat", lo=2, hi=2)]
    first = decide(Observation([two], eps, signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW)
    owned, pods = applied(first)
    for pod in pods:
        pod["spec"]["containers"] = [{**c, "args": [*c["args"], "--since-removed"]} for c in pod["spec"]["containers"]]
    later = decide(
        Observation([two], observed(first, eps), owned, signals(), pods=pods), SETTINGS, REGISTRY, CATALOG, NOW + 60
    )
    assert [(d.placed, d.waiting, d.phase) for d in later.endpoints] == [(2, 0, "Ready")]
    assert where(later) == where(first) == {"chat": [(0,), (1,)]}


def test_a_pod_runs_its_template_whatever_a_webhook_adds_beside_it() -> None:
    template = {"spec": {"containers": [vllm(MISTRAL)]}}
    sidecar = {"name": "proxy", "image": "envoy", "args": ["--port", "15001"]}
    assert Template.of(template).made({"spec": {"containers": [vllm(MISTRAL), sidecar]}})
    assert Template.of(template).made({"spec": {"containers": [vllm(MISTRAL, **{"nvidia.com/gpucores": "100"})]}})
    assert not Template.of(template).made({"spec": {"containers": [vllm(PHI)]}})
    assert not Template.of(template).made({"spec": {"containers": [vllm(MISTRAL, gpus="2")]}})


def vllm(model: str, gpus: str = "1", **added: str) -> dict[str, Any]:
    limits = {"nvidia.com/gpu": gpus, "cpu": "4", **added}
    args = [model, "--served-model-name", model]
    return {"name": "vllm", "command": ["vllm", "serve"], "args": args, "resources": {"limits": limits}}
