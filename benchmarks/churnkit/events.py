"""Churn's events, played on a run at the minutes the script drew (benchmarks/churn.py).

`scenario` plays a `Script` (benchmarks/churnkit/scenario.py) on a `Run`: bursts of POSTs, malformed
endpoints, unreadable labels, late nodes, class and model changes, deletions, lost and cordoned nodes,
the API server's and Prometheus' bad minutes, the controller's handover and kills.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import Any

from autoscaler.adapters.prometheus import DEMAND, KV_CACHE, WAITING
from autoscaler.kubetime import rfc3339
from benchmarks.churnkit.kinds import ENDPOINTS, NODES, PODS, answer_of, answered_nodes, log
from benchmarks.churnkit.run import DEMAND_RPS, Run
from benchmarks.churnkit.scenario import (
    API_TROUBLE,
    BAD_LABELS,
    MALFORMED,
    MORE_MALFORMED,
    OTHER_TEAM,
    Script,
    play_node,
)
from scheduler.catalog import Catalog
from scheduler.synthetic import gpu_node


def scenario(
    run: Run,
    bodies: list[tuple[str, dict[str, Any]]],
    catalog: Catalog,
    plan: Script,
    late_fleet: Mapping[str, dict[str, Any]],
) -> None:
    """Play `plan`; `late_fleet` holds the fleet's nodes that join late, by name."""
    events: list[tuple[float, str, Any]] = [
        *((m, "burst", ids) for m, ids in plan.bursts),
        *((m, "malformed", k) for m, k in plan.malformed + plan.more_malformed),
        *((m, "bad-node", (label, value)) for m, label, value in plan.bad_nodes),
        (plan.bad_samples, "bad-samples", True),
        (plan.bad_samples + 3, "bad-samples", False),
        *((m, "late-node", kind) for m, kind in plan.late_nodes),
        *((m, "fleet-node", name) for m, name in plan.late_fleet),
        (plan.class_changes[0], "class-change", plan.class_changes[1]),
        (plan.deleted[0], "delete", plan.deleted[1]),
        (plan.reposted[0], "repost", plan.reposted[1]),
        (plan.handover, "handover", None),
        (plan.lost_nodes[0], "lose-nodes", plan.lost_nodes[1]),
        (plan.replica_changes[0], "more-replicas", plan.replica_changes[1]),
        (plan.early_deletes[0], "early-delete", plan.early_deletes[1]),
        (plan.model_change, "model-change", None),
        (plan.api_trouble, "api-trouble", None),
        (plan.late_burst[0], "burst", plan.late_burst[1]),
        (plan.unreadable[0], "unreadable", True),
        (sum(plan.unreadable), "unreadable", False),
        *(((plan.prometheus_outage[0], "outage", True), (sum(plan.prometheus_outage), "outage", False))
          if plan.prometheus_outage[1] else ()),
        *(((plan.cordons[0], "cordon", plan.cordons[2]), (sum(plan.cordons[:2]), "cordon", 0))
          if plan.cordons[2] else ()),
        *(((plan.released, "release", None),) if plan.released else ()),
    ]  # fmt: skip
    namespaces = sorted({namespace for namespace, _ in bodies})
    kills: dict[float, list[float]] = {}
    for minute, share in plan.controller_kills:
        kills.setdefault(minute, []).append(share)
    run.tick()
    for i, (minute, what, arg) in enumerate(sorted(events, key=lambda e: (e[0], e[1]))):
        run.until(minute)
        if what == "burst":
            run.burst([(bodies[j], j in plan.twice) for j in arg], kills.pop(minute, []))
            answered = f"{run.tally.answers_201} x 201, {len(run.tally.promises)} x 202 so far"
            log(f"burst of {len(arg)} posted by minute {run.minutes():.1f}: {answered}")
        elif what == "malformed":
            meta = {"name": f"malformed-{arg}", "namespace": namespaces[i % len(namespaces)]}
            run.kube.put(ENDPOINTS, {"apiVersion": "egs.dev/v1alpha1", "kind": "InferenceEndpoint", "metadata": meta,
                                     "spec": (MALFORMED | MORE_MALFORMED)[arg]})  # fmt: skip
        elif what == "bad-node":
            bad = gpu_node(f"h100-badlabel-{i}", catalog.get("H100-80GB"), 8)
            bad["metadata"]["labels"][arg[0]] = arg[1]
            run.kube.put(NODES, bad)
        elif what == "bad-samples":
            models = sorted(run.prometheus.demand)
            broken = zip(((DEMAND, "+Inf"), (KV_CACHE, "NaN"), (WAITING, "many")), models, strict=False)
            run.prometheus.bad = {(query, model): raw for (query, raw), model in broken} if arg else {}
        elif what == "late-node":
            gpu_class, gpus, kw = run.play.kind.unordered[arg]
            run.kube.put(NODES, play_node(catalog, f"{arg}-late-{i}", gpu_class, gpus, run.play.kind.sharing, **kw))
            run.play.arrived[f"{arg}-late-{i}"] = time.time()
            log(f"minute {run.minutes():.1f}: {arg}-late-{i} joined")
        elif what == "fleet-node":
            run.kube.put(NODES, late_fleet[arg])
            run.play.arrived[arg] = time.time()
            log(f"minute {run.minutes():.1f}: {arg} joined")
        elif what == "class-change":
            change_class(run, bodies, arg)
        elif what == "handover":
            run.hand_over()
        elif what == "lose-nodes":
            lose_nodes(run, arg)
        elif what == "more-replicas":
            more_replicas(run, bodies, arg)
        elif what == "model-change":
            change_model(run, bodies)
        elif what == "api-trouble":
            for method, status, times, path in API_TROUBLE:
                run.kube.fail(method, status, times, path)
            log(f"minute {run.minutes():.1f}: the API server fails {len(API_TROUBLE)} kinds of request for a while")
        elif what == "unreadable":
            unreadable_label(run, arg)
        elif what == "cordon":
            cordon(run, arg)
        elif what == "release":
            for other in run.play.others:
                run.kube.delete(PODS, OTHER_TEAM, other["metadata"]["name"])
            run.play.others = []
            log(f"minute {run.minutes():.1f}: another team's pods ended, their GPUs free")
        elif what == "outage":
            run.prometheus.down = arg
            log(f"minute {run.minutes():.1f}: Prometheus " + ("unreachable" if arg else "answers again"))
        elif what == "early-delete":
            delete_waiting(run, bodies, [j for j in range(len(bodies)) if j not in plan.deleted[1]], arg)
        elif what == "delete":
            for j in arg:
                run.delete(bodies[j][0], bodies[j][1]["name"], bodies[j][1]["model"])
        else:
            run.burst([(bodies[j], False) for j in arg], kills.pop(minute, []))
            log(f"minute {run.minutes():.1f}: {len(plan.deleted[1])} deleted, {len(arg)} posted again")
    deadline = plan.last + run.args.settle
    while run.minutes() < deadline:
        run.until(run.minutes() + 1)
        statuses = [s for e in run.kube.all(ENDPOINTS) if isinstance(s := e.get("status"), dict)]
        if statuses and all(s.get("phase") in ("Ready", "Failed") for s in statuses):
            break
    log(f"settled at minute {run.minutes():.1f}")
    if run.args.linger:
        run.until(run.minutes() + run.args.linger)
        log(f"played on until minute {run.minutes():.1f}")


def _draw_ready(run: Run, bodies: list[tuple[str, dict[str, Any]]], count: int) -> list[str]:
    """`count` of the posted endpoints that are Ready and whose spec nobody changed yet, drawn."""
    posted = {f"{namespace}/{body['name']}" for namespace, body in bodies}
    ready = sorted(k for k in run.tally.ready_at if k in posted and k not in run.tally.changed)
    return run.script_rng.sample(ready, min(count, len(ready)))


def _change_spec(run: Run, key: str, spec: dict[str, Any]) -> None:
    """Patch the spec of endpoint `key` through the API server, as a user would; its replicas may move now."""
    from kubernetes import client

    namespace, name = key.split("/", 1)
    client.CustomObjectsApi(run.kube.api_client()).patch_namespaced_custom_object(
        "egs.dev", "v1alpha1", namespace, "inferenceendpoints", name, {"spec": spec}
    )
    run.tally.changed.add(key)


def change_class(run: Run, bodies: list[tuple[str, dict[str, Any]]], count: int) -> None:
    """The GPU class of `count` Ready endpoints, drawn, changed to another class that can be provisioned."""
    for key in _draw_ready(run, bodies, count):
        status = (run.kube.get(ENDPOINTS, *key.split("/", 1)) or {}).get("status") or {}
        other = run.script_rng.choice(sorted(c for c in run.play.kind.provisionable if c != status.get("gpuClass")))
        _change_spec(run, key, {"gpuClasses": [other]})
        log(f"minute {run.minutes():.1f}: {key} moved from {status.get('gpuClass')} to {other}")


def lose_nodes(run: Run, count: int) -> None:
    """`count` Ready nodes that serve replicas, drawn, are lost: deleted (spot capacity reclaimed, a node
    scaled in: their pods go at once) or, as often, NotReady for good (the kubelet stopped posting: their pods
    stop being Ready and are evicted `EVICTION_S` later). Their replicas there may move (no other replica of
    their endpoints), and an endpoint not Ready yet with a pod bound there, or a 201 answered there, may wait
    again (its capacity went: no promise broken)."""
    serving, on, there = _held_on(run)
    for node in run.script_rng.sample(sorted(serving), min(count, len(serving))):
        if run.script_rng.random() < 0.5:
            run.kube.delete(NODES, None, node)
            how = "went away"
        else:
            went = {"type": "Ready", "status": "Unknown", "lastTransitionTime": rfc3339(time.time())}
            run.kube.patch(NODES, None, node, {"status": {"conditions": [went]}})
            run.play.down[node] = time.time()
            how = "went NotReady"
        run.tally.lost_pods |= on[node]
        _capacity_gone(run, there[node])
        log(f"minute {run.minutes():.1f}: node {node} {how}, serving {sorted(serving[node])}")


def _held_on(run: Run) -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, set[str]]]:
    """Per node: the endpoints with a Ready pod there, the pods bound there, and the endpoints with a pod bound
    there or a 201 answered there."""
    serving: dict[str, set[str]] = {}
    on: dict[str, set[str]] = {}
    there: dict[str, set[str]] = {}
    for pod in run.play.pods.values():
        on.setdefault(pod.node, set()).add(pod.key)
        there.setdefault(pod.node, set()).add(pod.endpoint)
        if pod.ready:
            serving.setdefault(pod.node, set()).add(pod.endpoint)
    for e in run.kube.all(ENDPOINTS):
        key = f"{e['metadata']['namespace']}/{e['metadata']['name']}"
        if key in run.tally.answered_201:
            for answered in answered_nodes(answer_of(e)):
                there.setdefault(answered, set()).add(key)
    return serving, on, there


def _capacity_gone(run: Run, endpoints: set[str]) -> None:
    """`endpoints` had capacity on a node that went or was cordoned: one not Ready yet may wait again (a 201
    demoted, a 202 not held to a promise made on that capacity), no promise broken."""
    run.tally.lost_capacity |= endpoints
    for key in endpoints:
        run.tally.drop_waiting(key, time.time())


UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
"""The taint the node lifecycle controller puts on a cordoned node."""


def cordon(run: Run, count: int) -> None:
    """`count` Ready nodes that serve replicas, drawn, cordoned for maintenance (`kubectl cordon`, or a drain that
    waits on the endpoints' PodDisruptionBudgets: a budget of `replicas.min` lets no pod of an endpoint at its
    minimum go), or with `count` 0 the cordoned ones uncordoned. Nothing of them went: their replicas stay, and
    nothing new is bound there meanwhile; an endpoint with a pod there not Ready yet, or a 201 answered there,
    may wait again (its capacity is cordoned: no promise broken)."""
    if not count:
        for node, taints in run.cordoned.items():
            if run.kube.get(NODES, None, node):  # unless it was lost meanwhile (`lose_nodes`)
                run.kube.patch(NODES, None, node, {"spec": {"unschedulable": False, "taints": taints}})
                log(f"minute {run.minutes():.1f}: node {node} uncordoned")
        run.cordoned.clear()
        return
    serving, _, there = _held_on(run)
    rng = random.Random(f"churn-cordon-{run.args.seed}")
    up = sorted(serving.keys() - run.play.down.keys())  # a node gone NotReady (`lose_nodes`) is no one's to cordon
    for node in rng.sample(up, min(count, len(up))):
        taints = list(((run.kube.get(NODES, None, node) or {}).get("spec") or {}).get("taints") or ())
        run.cordoned[node] = taints
        cordoned = [*taints, {**UNSCHEDULABLE_TAINT, "timeAdded": rfc3339(time.time())}]
        run.kube.patch(NODES, None, node, {"spec": {"unschedulable": True, "taints": cordoned}})
        _capacity_gone(run, {key for key in there[node] if key not in run.tally.ready_at})
        log(f"minute {run.minutes():.1f}: node {node} cordoned, serving {sorted(serving[node])}")


def unreadable_label(run: Run, broken: bool) -> None:
    """A label of one NVIDIA node that serves Ready replicas, drawn, made unreadable (`BAD_LABELS`), or mended
    again: nothing of it went, so none of its replicas may move."""
    if not broken:
        for node, (label, value) in run.relabelled.items():
            if run.kube.get(NODES, None, node):  # unless it was lost meanwhile (`lose_nodes`)
                run.kube.patch(NODES, None, node, {"metadata": {"labels": {label: value}}})
                log(f"minute {run.minutes():.1f}: the labels of node {node} mended")
        run.relabelled.clear()
        return
    rng = random.Random(f"churn-unreadable-{run.args.seed}")
    serving = {p.node for p in run.play.pods.values() if p.ready}
    nvidia = sorted(n for n in serving if "nvidia.com/gpu.count" in run.play.labels.get(n, {}))
    for node in rng.sample(nvidia, min(1, len(nvidia))):
        label, value = rng.choice(BAD_LABELS)
        run.relabelled[node] = (label, run.play.labels[node].get(label))
        run.kube.patch(NODES, None, node, {"metadata": {"labels": {label: value}}})
        log(f"minute {run.minutes():.1f}: node {node} labelled {label}={value!r}, serving "
            f"{sorted({p.endpoint for p in run.play.pods.values() if p.node == node})}")  # fmt: skip


def delete_waiting(run: Run, bodies: list[tuple[str, dict[str, Any]]], among: list[int], count: int) -> None:
    """`count` endpoints of `among`, drawn of those posted and not Ready yet, deleted for good while they wait."""
    waiting = [
        j
        for j in among
        if f"{bodies[j][0]}/{bodies[j][1]['name']}" in run.tally.posted.keys() - run.tally.ready_at.keys()
    ]
    for j in run.script_rng.sample(waiting, min(count, len(waiting))):
        namespace, body = bodies[j]
        run.delete(namespace, body["name"], body["model"])
        log(f"minute {run.minutes():.1f}: {namespace}/{body['name']} deleted while it waits")


def change_model(run: Run, bodies: list[tuple[str, dict[str, Any]]]) -> None:
    """One Ready endpoint, drawn, made to serve another model (its demand moves with it)."""
    for key in _draw_ready(run, bodies, 1):
        was = ((run.kube.get(ENDPOINTS, *key.split("/", 1)) or {}).get("spec") or {}).get("model", "")
        model = run.script_rng.choice(sorted(m for m in run.prometheus.demand if m != was))
        _change_spec(run, key, {"model": model})
        run.prometheus.demand[was] = max(0.0, run.prometheus.demand[was] - DEMAND_RPS)
        run.prometheus.demand[model] += DEMAND_RPS
        log(f"minute {run.minutes():.1f}: {key} now serves {model} (was {was})")


def more_replicas(run: Run, bodies: list[tuple[str, dict[str, Any]]], count: int) -> None:
    """The minimum replicas of `count` Ready endpoints, drawn, raised by one (the maximum with it if need be)."""
    for key in _draw_ready(run, bodies, count):
        spec = (run.kube.get(ENDPOINTS, *key.split("/", 1)) or {}).get("spec") or {}
        low, high = int(spec["replicas"]["min"]) + 1, int(spec["replicas"]["max"])
        _change_spec(run, key, {"replicas": {"min": low, "max": max(low, high)}})
        log(f"minute {run.minutes():.1f}: {key} wants at least {low} replicas")
