"""How fast the controller decides, how little it writes, and how fast the endpoint API answers.

Three measurements in one run, on seeded synthetic inputs (`--seed`):

1. **decide**: `autoscaler.decide.decide` for `--endpoints` InferenceEndpoints (models drawn from
   examples/models.yaml, demand drawn per endpoint and carried by its serving pod's series) on a mixed
   fleet of `--gpus` GPUs (H100, A100, L40S, L4 nodes, as GPU Feature Discovery labels them; every
   20th node half held by another workload's pod), timed for two loops, the best of `--repeat` runs each:
   the first (no workload yet) and the serving one (the first decision applied: every replica ready, its
   pod bound), the loop a controller runs every time but its first, to which the target applies (<= 1 s
   for 1,000 endpoints on 10,000 GPUs);
2. **second reconcile**: the real controller against kmock (localplay/kube_standin.py, over HTTP through
   the official client) with `--cluster-endpoints` endpoints: the writes of a second loop with nothing
   changed (target 0), against the baseline of a controller that applies everything it intends every
   loop (its first loop's writes);
3. **API load**: the real `egs api` process (uvicorn) on 127.0.0.1 over kmock, `--requests` requests
   (90% GET of an endpoint, 10% POST of a new one) from `--clients` threads; latency p50/p99 and
   errors (any 5xx or transport error; target p99 <= 100 ms, no errors). Run twice: as configured
   (POSTs answered from the capacity view, `autoscaler.admission`), and the baseline
   `--capacity-ttl 0`, which runs the decide step over the whole cluster for every POST.

Progress on stderr; the last line of stdout is one JSON object:

    python benchmarks/reconcile.py [--endpoints 1000] [--gpus 10000] [--seed 1] [--consolidation] [--drift]
                                   [--decide-only]

`--consolidation` times the serving loop's decide with consolidation on as well (`serving.on`); `--drift` times
loops of a template rollout that waits for room (`drift`: every endpoint's pod template changed, as after an EGS
upgrade, on the serving cluster made full, with no GPU class to provision), against the same cluster's loop with
nothing drifted, and counts the step's passes each loop; `--decide-only` stops after the decide figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from kubernetes.client import ApiClient
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # localplay/kube_standin.py: the Kubernetes API stand-in the tests and the demo use

import autoscaler.decide as decide_step  # noqa: E402
from autoscaler.adapters.kubernetes import Cluster  # noqa: E402
from autoscaler.controller import Controller, owned_kinds  # noqa: E402
from autoscaler.decide import ClassSettings, ConsolidationSettings, Decision, Observation, Settings, decide  # noqa: E402
from autoscaler.decide.state import WORKLOAD_KINDS  # noqa: E402
from autoscaler.decide.status import CONSOLIDATING  # noqa: E402
from autoscaler.decide.workloads import TEMPLATE  # noqa: E402
from autoscaler.pods import ours  # noqa: E402
from autoscaler.signals import ModelSignals, PodSignals, Snapshot  # noqa: E402
from scheduler.catalog import Catalog  # noqa: E402
from scheduler.inventory import held_by  # noqa: E402
from scheduler.registry import Registry  # noqa: E402
from scheduler.synthetic import gpu_node  # noqa: E402

if TYPE_CHECKING:
    from localplay.kube_standin import KubeCluster

FLEET = (("H100-80GB", 8, 0.35), ("A100-80GB", 8, 0.25), ("L40S", 4, 0.2), ("L4", 4, 0.2))
"""(class, GPUs per node, share of the fleet's GPUs)."""
ENDPOINTS = "egs.dev/v1alpha1/inferenceendpoints"
DECIDE_TARGET_S = 1.0
"""The serving loop's decide, 1,000 endpoints on 10,000 GPUs."""
DRIFT_LOOPS = 8
"""Loops of `--drift`: at the default pace (10% of the endpoints' templates at once) a loop's turns find every
endpoint of 1,000 with no room by its fifth; the last loop's figures are the ones a rollout waiting for room costs."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fleet(catalog: Catalog, gpus: int) -> list[dict[str, Any]]:
    nodes = []
    for name, per_node, share in FLEET:
        for i in range(round(gpus * share / per_node)):
            nodes.append(gpu_node(f"{name.lower()}-{i}", catalog.get(name), per_node))
    return nodes


def endpoints(registry: Registry, n: int, rng: random.Random) -> list[dict[str, Any]]:
    models = [m.name for m in registry if m.architecture.parameters_b <= 80]
    out = []
    for i in range(n):
        hi = rng.randint(2, 8)
        spec = {"model": rng.choice(models), "qualityFloor": rng.choice([0.95, 0.99, 1.0])}
        spec["replicas"] = {"min": 1, "max": hi}
        meta = {"name": f"ep-{i}", "namespace": f"team-{i % 20}", "uid": f"uid-{i}", "generation": 1}
        out.append({"apiVersion": "egs.dev/v1alpha1", "kind": "InferenceEndpoint", "metadata": meta, "spec": spec})
    return out


def signals(registry: Registry, rng: random.Random, now: float) -> dict[str, ModelSignals]:
    return {
        m.name: ModelSignals(m.name, rng.uniform(0.5, 40.0), rng.uniform(0, 10), 8.0, rng.uniform(0.1, 0.9), now - 5)
        for m in registry
    }


def traffic(
    eps: list[dict[str, Any]], nodes: list[dict[str, Any]], rng: random.Random, now: float
) -> tuple[dict[str, ModelSignals], list[dict[str, Any]], dict[tuple[str, str], PodSignals]]:
    """Demand drawn per endpoint (0.5-40 req/s), carried by one serving pod each, and the model's demand
    their sum, as the recording rules would give them; every 20th node half held by another workload."""
    pods: list[dict[str, Any]] = []
    per_pod: dict[tuple[str, str], PodSignals] = {}
    by_model: dict[str, float] = {}
    labels = {"app.kubernetes.io/managed-by": "egs", "app.kubernetes.io/component": "server"}
    for ep in eps:
        meta, model = ep["metadata"], ep["spec"]["model"]
        name, demand = f"{meta['name']}-0", rng.uniform(0.5, 40.0)
        pod_meta = {"name": name, "namespace": meta["namespace"], "labels": {**labels, "egs.io/request": meta["name"]}}
        pods.append({"metadata": pod_meta, "spec": {"containers": []}, "status": {"phase": "Running"}})
        per_pod[(meta["namespace"], name)] = PodSignals(demand_rps=demand, waiting=rng.uniform(0, 2))
        by_model[model] = by_model.get(model, 0.0) + demand
    for node in nodes[::20]:
        half = int(node["status"]["allocatable"].get("nvidia.com/gpu", 0)) // 2
        container = {"name": "c", "resources": {"limits": {"nvidia.com/gpu": str(half)}}}
        meta = {"name": f"train-{node['metadata']['name']}", "namespace": "ml"}
        spec = {"nodeName": node["metadata"]["name"], "containers": [container]}
        pods.append({"metadata": meta, "spec": spec, "status": {"phase": "Running"}})
    signals = {m: ModelSignals(m, d, None, None, rng.uniform(0.1, 0.9), now - 5) for m, d in by_model.items()}
    return signals, pods, per_pod


def settings() -> Settings:
    classes = {name: ClassSettings(gpus_per_node=per_node, static_nodes=1) for name, per_node, _ in FLEET}
    return Settings(classes=classes, default_throughput_rps=4.0)


class Steady:
    """Metrics that do not change between loops: demand as drawn (`signals`), servers not saturated (a saturated
    server rightly adds a replica each loop until it is not, which is a change), sampled at the loop's time:
    every loop holds the same targets, and a loop with nothing changed writes nothing."""

    def __init__(self, registry: Registry, rng: random.Random) -> None:
        self.drawn = signals(registry, rng, 0.0)

    def snapshot(self, at: float, history_s: float, step_s: float, live: bool = True) -> Snapshot:
        return Snapshot(
            {m: ModelSignals(m, s.demand_rps, 0.0, s.running, min(s.kv_cache_usage or 0, 0.7), at - 5)
             for m, s in self.drawn.items()},
            {}, {},
        )  # fmt: skip


def fill(kube: KubeCluster, catalog: Catalog, registry: Registry, n: int, rng: random.Random) -> None:
    """The stand-in with `n` endpoints, as a client creates them (the server gives the uid), and a fleet of 32
    GPUs for each."""
    for node in fleet(catalog, 32 * n):
        kube.put("v1/nodes", node)
    for ep in endpoints(registry, n, rng):
        del ep["metadata"]["uid"]
        kube.put(ENDPOINTS, ep)


def replica(api: ApiClient | Path, name: str, metrics: Steady, catalog: Catalog, registry: Registry) -> Controller:
    """A controller replica `name` talking to the stand-in through `api` (a client, or a kubeconfig in a process
    of its own), with the settings of the fleet."""
    kinds = owned_kinds(settings())
    cluster = Cluster.connect(api, owned_kinds=kinds) if isinstance(api, Path) else Cluster(api, owned_kinds=kinds)
    return Controller(cluster, metrics, settings(), registry, catalog, name, exposition=CollectorRegistry())


def measure_decide(args: argparse.Namespace, catalog: Catalog, registry: Registry) -> dict[str, Any]:
    rng = random.Random(args.seed)
    now = time.time()
    nodes = fleet(catalog, args.gpus)
    eps = endpoints(registry, args.endpoints, rng)
    model_signals, pods, per_pod = traffic(eps, nodes, rng, now)
    obs = Observation(nodes, eps, (), model_signals, pods=pods, pod_signals=per_pod)
    gpus = sum(int(n["status"]["allocatable"].get("nvidia.com/gpu", 0)) for n in nodes)
    times = []
    decision = None
    config = settings()  # built outside the timed decides, as the serving loop's are
    for i in range(args.repeat):
        started = time.perf_counter()
        decision = decide(obs, config, registry, catalog, now)
        times.append(time.perf_counter() - started)
        log(f"decide {i + 1}/{args.repeat}: {times[-1]:.3f} s")
    assert decision is not None
    replicas = sum(d.replicas for d in decision.endpoints)
    placed = sum(d.placed for d in decision.endpoints)
    log(f"{len(decision.endpoints)} endpoints, {replicas} replicas ({placed} on nodes now), {gpus} GPUs")
    figures: dict[str, Any] = {"gpus": gpus, "first_decide_seconds": round(min(times), 3)}
    figures |= {"replicas": replicas, "placed_now": placed}
    serving_obs = serving(decision, obs)
    figures["serving"] = measure_serving(args, serving_obs, registry, catalog, now)
    if args.drift:
        figures["drift"] = measure_drift(args, serving_obs, registry, catalog, now)
    return figures


def serving(decision: Decision, obs: Observation) -> Observation:
    """The cluster once `decision` is applied and serves: its endpoints' workloads with every replica ready, a
    pod bound to each replica's planned node (its first worker's), the statuses written (the warm pools'
    objects left out; EGS's pods of `obs` replaced). The first loop runs nothing, so this is where consolidation has
    replicas to move."""
    owned: list[dict[str, Any]] = []
    pods = [p for p in obs.pods if p["spec"].get("nodeName") and not ours(p)]  # the other workloads' pods
    namespace = settings().namespace
    for obj in decision.objects:
        if obj["metadata"].get("namespace") == namespace or obj["kind"] == "PriorityClass":
            continue
        owned.append(obj)
        if obj["kind"] not in WORKLOAD_KINDS:
            continue
        obj["status"] = {"readyReplicas": obj["spec"]["replicas"]}
        spec = obj["spec"]
        template = spec.get("template") or spec["leaderWorkerTemplate"]["leaderTemplate"]
        meta = {"namespace": obj["metadata"]["namespace"], "labels": template["metadata"]["labels"]}
        for i, replica in enumerate(json.loads(obj["metadata"]["annotations"]["egs.io/placement"])):
            pods.append({
                "metadata": {**meta, "name": f"{obj['metadata']['name']}-{i}"},
                "spec": {"nodeName": replica["workers"][0][0], "containers": template["spec"]["containers"]},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            })  # fmt: skip
    eps = [{**ep, "status": status} if (status := decision.statuses.get(key(ep))) else ep for ep in obs.endpoints]
    return Observation(obs.nodes, eps, owned, obs.signals, pods=pods)


def key(ep: Mapping[str, Any]) -> tuple[str, str]:
    return ep["metadata"]["namespace"], ep["metadata"]["name"]


def measure_serving(
    args: argparse.Namespace, obs: Observation, registry: Registry, catalog: Catalog, now: float
) -> dict[str, Any]:
    """decide on the cluster serving, consolidation off (the default) and with `--consolidation` on (its default
    budget, a 20% least saving), the best of `--repeat` runs each (wall and process CPU seconds: the CPU's read
    apart from a loaded machine's waits), the moves it begins, and whether the best meets the target."""
    figures: dict[str, Any] = {}
    modes = [("off", ConsolidationSettings())]
    modes += [("on", ConsolidationSettings(enabled=True))] if args.consolidation else []
    for name, consolidation in modes:
        config = replace(settings(), consolidation=consolidation)
        times, cpu = timed(lambda: decide(obs, config, registry, catalog, now), args.repeat)  # noqa: B023
        log(f"decide serving, consolidation {name}: {min(times):.3f} s ({min(cpu):.3f} s CPU), best of {args.repeat}")
        decision = decide(obs, config, registry, catalog, now)
        moves = sum(1 for e in decision.events if e.reason == CONSOLIDATING)
        figures[name] = {"decide_seconds": round(min(times), 3), "cpu_seconds": round(min(cpu), 3), "moves": moves}
        figures[name]["target_met"] = min(times) <= DECIDE_TARGET_S
    return figures


def full(obs: Observation, decision: Decision) -> Observation:
    """The cluster serving (`obs`, which `decision` was decided on) with every GPU its replicas leave free held by
    another workload's pod."""
    free = decision.inventory.allocated(a for p in decision.placed.placements for a in held_by(p))
    pods = list(obs.pods)
    for node in free:
        if idle := sum(1 for g in node.gpus if g.holders == 0):
            container = {"name": "c", "resources": {"limits": {"nvidia.com/gpu": str(idle)}}}
            meta = {"name": f"fill-{node.node}", "namespace": "ml"}
            spec = {"nodeName": node.node, "containers": [container]}
            pods.append({"metadata": meta, "spec": spec, "status": {"phase": "Running"}})
    return replace(obs, pods=pods)


def upgraded(obs: Observation) -> Observation:
    """`obs` with every workload recording a pod template other than EGS renders (as an older EGS wrote them)."""
    owned = []
    for obj in obs.owned:
        meta = obj["metadata"]
        if obj["kind"] in WORKLOAD_KINDS:
            obj = {**obj, "metadata": {**meta, "annotations": {**meta["annotations"], TEMPLATE: "older"}}}
        owned.append(obj)
    return replace(obs, owned=owned)


def written(obs: Observation, decision: Decision) -> Observation:
    """`obs` with the statuses `decision` wrote, and what the controller remembers of it (`Decision.no_room`)."""
    eps = [{**ep, "status": status} if (status := decision.statuses.get(key(ep))) else ep for ep in obs.endpoints]
    return replace(obs, endpoints=eps, no_room=decision.no_room)


def measure_drift(
    args: argparse.Namespace, obs: Observation, registry: Registry, catalog: Catalog, now: float
) -> dict[str, Any]:
    """A template rollout that waits for room: the serving cluster made full (`full`), no GPU class to provision,
    every template drifted (`upgraded`); `DRIFT_LOOPS` loops, each fed what the one before wrote and left in the
    controller's memory (`written`), the step's passes counted; a loop more timed (best of `--repeat`) against the
    full cluster's loop with nothing drifted (`ratio`, of the CPU seconds)."""
    config = replace(settings(), classes={})
    decision = decide(obs, config, registry, catalog, now)
    while sum(d.replicas for d in decision.endpoints) != sum(1 for p in obs.pods if ours(p)):
        obs = serving(decision, obs)  # until every replica it plans runs: none is placed anew
        decision = decide(obs, config, registry, catalog, now)
    steady = full(obs, decision)
    times, cpu = timed(lambda: decide(steady, config, registry, catalog, now), args.repeat)
    log(f"decide on the full cluster, nothing drifted: {min(times):.3f} s ({min(cpu):.3f} s CPU)")
    passes: list[int] = []
    real = decide_step._decided

    def counted(*given: Any) -> Any:
        passes[-1] += 1
        return real(*given)

    loop, at = upgraded(steady), now
    decide_step._decided = counted  # type: ignore[assignment]  # counts the passes
    try:
        for i in range(DRIFT_LOOPS):
            passes.append(0)
            at += 30
            decision = decide(loop, config, registry, catalog, at)
            log(f"drifted loop {i + 1}: {passes[-1]} passes")
            loop = written(loop, decision)
    finally:
        decide_step._decided = real
    last = written(loop, decision)
    drift_times, drift_cpu = timed(lambda: decide(last, config, registry, catalog, at + 30), args.repeat)
    waiting = sum(1 for d in decision.endpoints if d.not_applied and d.not_applied[0] == "TemplateChangeWaitsForRoom")
    log(f"drifted, a loop more: {min(drift_times):.3f} s ({min(drift_cpu):.3f} s CPU), {waiting} wait for room")
    return {
        "steady_decide_seconds": round(min(times), 3),
        "steady_cpu_seconds": round(min(cpu), 3),
        "decide_seconds": round(min(drift_times), 3),
        "cpu_seconds": round(min(drift_cpu), 3),
        "ratio": round(min(drift_cpu) / min(cpu), 2),
        "passes": passes,
        "waiting_for_room": waiting,
    }


def timed(run: Callable[[], object], repeat: int) -> tuple[list[float], list[float]]:
    """Wall and process CPU seconds of `repeat` runs of `run`."""
    times, cpu = [], []
    for _ in range(repeat):
        started, started_cpu = time.perf_counter(), time.process_time()
        run()
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return times, cpu


def measure_reconcile(args: argparse.Namespace, catalog: Catalog, registry: Registry) -> dict[str, Any]:
    from localplay.kube_standin import KubeCluster

    rng = random.Random(args.seed)
    kube = KubeCluster().start()
    try:
        fill(kube, catalog, registry, args.cluster_endpoints, rng)
        ctl = replica(kube.api_client(), "bench", Steady(registry, rng), catalog, registry)
        ctl.elector.step()
        first = ctl.reconcile()
        second = ctl.reconcile()
        log(f"reconcile: first {first.writes} writes, second {second.writes} ({second.errors or 'no errors'})")
        return {"first_writes": first.writes, "second_writes": second.writes, "errors": first.errors + second.errors}
    finally:
        kube.stop()


def measure_api(args: argparse.Namespace, catalog: Catalog, registry: Registry, ttl: float | None) -> dict[str, Any]:
    import subprocess
    import tempfile

    import requests
    import yaml

    from localplay.kube_standin import KubeCluster
    from localplay.localstack import free_port, wait_http

    kube = KubeCluster().start()
    kube.emulator.tokens["t"] = ("bench", ())
    for verb in ("create", "get", "list", "delete"):
        kube.emulator.grants.add(("bench", verb, "*"))
    for node in fleet(catalog, 64):
        kube.put("v1/nodes", node)
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="egs-bench-api-"))
    config = workdir / "egs.yaml"
    classes = {name: {"gpus_per_node": per_node, "static_nodes": 1} for name, per_node, _ in FLEET}
    config.write_text(yaml.safe_dump({"models": str(REPO / "examples" / "models.yaml"), "gpu_classes": classes}))
    kubeconfig = kube.kubeconfig(workdir / "kubeconfig")
    # The real `egs api` process, as users run it: its own interpreter, not this one's GIL.
    command = ["api", "--kubeconfig", str(kubeconfig), "--config", str(config), "--listen", f"127.0.0.1:{port}"]
    command += ["--capacity-ttl", str(ttl)] if ttl is not None else []
    server = subprocess.Popen([sys.executable, "-m", "egs.cli", *command], stderr=(workdir / "api.log").open("wb"))
    base = f"http://127.0.0.1:{port}/v1/namespaces/bench/endpoints"
    try:
        wait_http(f"http://127.0.0.1:{port}/openapi.json", 30, proc=server)
        headers = {"Authorization": "Bearer t"}
        session = requests.Session()
        body: dict[str, Any] = {
            "model": "llama-3.1-8b-instruct",
            "qualityFloor": 0.99,
            "replicas": {"min": 1, "max": 2},
        }
        session.post(base, json={"name": "seed", **body}, headers=headers, timeout=10)
        lock = threading.Lock()
        latencies: dict[str, list[float]] = {"get": [], "post": []}
        errors = 0

        def one(i: int) -> None:
            nonlocal errors
            started = time.perf_counter()
            try:
                if i % 10 == 0:
                    r = requests.post(base, json={"name": f"load-{i}", **body}, headers=headers, timeout=10)
                else:
                    r = requests.get(f"{base}/seed", headers=headers, timeout=10)
                failed = r.status_code >= 500
            except requests.RequestException:
                failed = True
            with lock:
                latencies["post" if i % 10 == 0 else "get"].append(time.perf_counter() - started)
                errors += failed

        with ThreadPoolExecutor(args.clients) as pool:
            list(pool.map(one, range(args.requests)))
        ms = np.array(latencies["get"] + latencies["post"]) * 1000
        result: dict[str, Any] = {
            "requests": len(ms),
            "errors": errors,
            "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1),
        }
        for kind, values in latencies.items():
            result[f"{kind}_p99_ms"] = round(float(np.percentile(np.array(values) * 1000, 99)), 1)
        log(f"api (capacity TTL {'default' if ttl is None else ttl}): {result}")
        return result
    finally:
        server.terminate()
        server.wait(10)
        kube.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=1000, help="endpoints decided for (default %(default)s)")
    parser.add_argument("--gpus", type=int, default=10_000, help="GPUs of the fleet decided on (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="decide runs, the best counts (default %(default)s)")
    parser.add_argument(
        "--cluster-endpoints", type=int, default=40, help="endpoints of the controller's run (default %(default)s)"
    )
    parser.add_argument("--requests", type=int, default=500, help="requests to the API (default %(default)s)")
    parser.add_argument("--clients", type=int, default=4, help="threads sending them (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="draws models and demand (default %(default)s)")
    parser.add_argument(
        "--consolidation", action="store_true", help="the serving loop's decide timed with consolidation on as well"
    )
    parser.add_argument(
        "--drift", action="store_true", help="loops of a template rollout waiting for room on a full cluster as well"
    )
    parser.add_argument("--decide-only", action="store_true", help="the decide step's figures alone")
    args = parser.parse_args()
    catalog = Catalog.load()
    registry = Registry.load(REPO / "examples" / "models.yaml", catalog)
    decided = measure_decide(args, catalog, registry)
    if args.decide_only:
        print(json.dumps({"endpoints": args.endpoints, **decided, "seed": args.seed}))
        return 0
    reconciled = measure_reconcile(args, catalog, registry)
    baseline = measure_api(args, catalog, registry, ttl=0)
    api = measure_api(args, catalog, registry, ttl=None)
    print(
        json.dumps(
            {
                "endpoints": args.endpoints,
                "gpus": decided["gpus"],
                "first_decide_seconds": decided["first_decide_seconds"],
                "serving_decide_seconds": decided["serving"]["off"]["decide_seconds"],
                "serving_decide_target_met": decided["serving"]["off"]["target_met"],
                "second_reconcile_writes": reconciled["second_writes"],
                "api": api,
                "api_baseline_decide_every_post": baseline,
                "replicas": decided["replicas"],
                "replicas_placed_now": decided["placed_now"],
                "reconcile": {
                    "endpoints": args.cluster_endpoints,
                    "first_writes": reconciled["first_writes"],
                    "baseline_apply_everything_writes": reconciled["first_writes"],
                    "errors": reconciled["errors"],
                },
                "serving": decided["serving"],
                **({"drift": decided["drift"]} if "drift" in decided else {}),
                "seed": args.seed,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
