"""What the demo plays on the Kubernetes stand-in, which runs no controllers: scheduler, kubelet, node
autoscaler, the GPUs' load and vLLM's numbers. Simulated, and labelled so: the controller and the API
it drives are the real processes.

Every `step(now, demand)`:

- Deployment controller: each Deployment's pods (`<name>-<template hash>-<i>`, `spec.replicas` of them),
  a changed template rolled as its strategy says (`localplay.rollout`);
- scheduler: each pod goes on the first ready node with the GPUs it requests free; a replica preempts
  warm-pool placeholders (the pool's PriorityClass is the lowest), and a placeholder takes only a
  wholly free node;
- kubelet: a placed replica is ready `load_s` later; each Deployment's `status.readyReplicas` says
  how many are, and each pod is a Pod object (bound and Running, or Pending and Unschedulable), both
  of which the controller reads;
- node autoscaler: pods that fit nowhere order nodes, which join `node_delay_s` later, labelled as
  GPU Feature Discovery labels them; a node that holds no pod for `idle_release_s` is given back;
- GPUs: every node has a sim-backend exporter (in this process, so that each GPU's load can be set,
  attributed to the pods on it as the kubelet would); a replica's GPUs are as busy as its share of
  its model's demand against what one replica serves, and past that their VRAM fills with KV cache
  (saturation, which pages);
- vLLM: the stand-in serves each ready replica's pod with its share of its model's demand.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from autoscaler.kubetime import rfc3339
from exporter.attribution import DeviceAssignment, PodRef
from exporter.backends.sim import SimBackend
from exporter.collector import Collector, CollectorSettings
from exporter.fleet import DEFAULT_FLEET
from exporter.server import ExporterServer
from localplay.kube_standin import KubeCluster
from localplay.localstack import free_port
from localplay.rollout import Running, pod_names
from localplay.vllm_standin import Server, VllmStandIn
from scheduler.catalog import Catalog
from scheduler.registry import Registry, Variant

DEPLOYMENTS = "apps/v1/deployments"
NODES = "v1/nodes"
PODS = "v1/pods"
GPU = "nvidia.com/gpu"
PRODUCT = "NVIDIA-H100-80GB-HBM3"
"""The GPU Feature Discovery product label of the nodes the demo's node autoscaler adds (8 x H100)."""
GPUS_PER_NODE = 8
WARM_POOL_PRIORITY_CLASS = "egs-warm-pool"
REQUEST_NAME = "egs.io/request-name"
EXAMPLE_MODELS = Path(__file__).resolve().parent.parent / "examples" / "models.yaml"


@dataclass
class Pod:
    name: str
    namespace: str
    deployment: str
    gpus: int
    placeholder: bool
    template: dict[str, Any] = field(default_factory=dict, repr=False)
    """The Deployment's pod template, which the Pod object is written from."""
    created: float = 0.0
    node: str = ""
    first_gpu: int = 0
    placed_at: float = 0.0


@dataclass
class OrderedNode:
    """A node the node autoscaler ordered: it joins at `ready_at`, then has an exporter."""

    name: str
    ready_at: float
    empty_since: float
    exporter: NodeExporter | None = None


@dataclass(frozen=True)
class PlaySettings:
    node_delay_s: float
    """Seconds from a node's order to its joining (the provisioning the ETAs promise)."""
    load_s: float
    """Seconds a placed replica takes to load its model and be ready."""
    idle_release_s: float
    """Seconds a node holds no pod before the node autoscaler gives it back."""
    throughput_rps: Mapping[str, float]
    """Requests per second one replica of each model serves (the controller's configuration too)."""


class NodeExporter:
    """One simulated 8 x H100 node's exporter (sim backend) on 127.0.0.1, its GPUs' load set from outside."""

    def __init__(self, name: str) -> None:
        self.backend = SimBackend(replace(DEFAULT_FLEET.nodes[0], name=name))
        self.uuids = [gpu.uuid for gpu in self.backend.open().gpus]
        self._pods: list[DeviceAssignment] = []
        self.collector = Collector(self.backend, name, CollectorSettings(interval_s=1.0), pods=lambda: self._pods)
        threading.Thread(target=self.collector.run, name=f"collect-{name}", daemon=True).start()
        self.server = ExporterServer(("127.0.0.1", free_port()), lambda: self.collector.last, max_age_s=10)
        self.server.serve_in_thread()
        for gpu in range(len(self.uuids)):
            self.backend.set_load(gpu, util=0.0, vram=0.0, mem_bw=0.0)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def attribute(self, pods: list[DeviceAssignment]) -> None:
        self._pods = pods

    def close(self) -> None:
        self.collector.stop()
        self.server.shutdown()
        self.server.server_close()


def gpu_node(name: str) -> dict[str, Any]:
    """A ready GPU node as the kubelet and GPU Feature Discovery write it (labels, taint, allocatable)."""
    return {
        "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": PRODUCT, "nvidia.com/gpu.count": "8"}},
        "spec": {"taints": [{"key": GPU, "value": "present", "effect": "NoSchedule"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {GPU: str(GPUS_PER_NODE)}},
    }


SATURATING_LOAD = 1.125
"""Demand over what a replica serves at which its GPUs' VRAM passes 95% (`replica_load`)."""


def registry_with_loads(path: Path, load_of: Callable[[Variant], float], catalog: Catalog) -> Path:
    """examples/models.yaml written to `path` with each variant's load time `load_of` it (as parsed): the
    registry a controller is given for the play's kubelet, whose loads take what the play makes them."""
    raw = yaml.safe_load(EXAMPLE_MODELS.read_text())
    parsed = Registry.load(EXAMPLE_MODELS, catalog)
    for model in raw["models"]:
        for variant, loaded in zip(model["variants"], parsed.get(model["name"]).variants, strict=True):
            variant["load_seconds"] = load_of(loaded)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def pod_status(node: str, ready: bool, since: float | None = None) -> dict[str, Any]:
    """A pod's status as the kubelet (bound) or kube-scheduler (no node fits) writes it; `since`: when Ready last
    flipped, its `lastTransitionTime` (the controller's `consolidation.last_changes` reads it)."""
    if not node:
        unschedulable = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
        return {"phase": "Pending", "conditions": [unschedulable]}
    scheduled = {"type": "PodScheduled", "status": "True"}
    ready_condition = {"type": "Ready", "status": str(ready)}
    if since is not None:
        ready_condition["lastTransitionTime"] = rfc3339(since)
    return {"phase": "Running", "conditions": [scheduled, ready_condition]}


def replica_load(share_rps: float, throughput_rps: float) -> tuple[float, float]:
    """(compute utilisation, VRAM used ratio) of a replica's GPU serving `share_rps`: weights and a
    KV cache that grows with the load, past 95% once the load passes `SATURATING_LOAD`."""
    load = share_rps / throughput_rps if throughput_rps > 0 else 0.0
    return min(1.0, 0.08 + 0.85 * load), min(0.985, 0.5 + 0.45 / SATURATING_LOAD * load)


@dataclass
class ClusterPlay:
    """The simulated cluster parts around the kube stand-in (module docstring); `step()` advances them."""

    kube: KubeCluster
    vllm: VllmStandIn
    settings: PlaySettings
    targets_file: Path
    """Prometheus' file_sd targets: the nodes' exporters, rewritten as nodes join and leave."""
    models: dict[str, str] = field(default_factory=dict)
    """Endpoint (namespace/name) -> model, as the demo requested them."""
    nodes: dict[str, OrderedNode] = field(default_factory=dict)
    pods: dict[str, Pod] = field(default_factory=dict)
    ordered: int = 0
    _names: int = 0
    _written: dict[str, tuple[str, bool]] = field(default_factory=dict)
    """Pod objects written: namespace/name -> (node, ready) as last written."""

    def step(self, now: float, demand: Mapping[str, float]) -> None:
        self._join(now)
        wanted = self._wanted(now)
        for key in [k for k in self.pods if k not in wanted]:
            del self.pods[key]
        for key, pod in wanted.items():
            self.pods.setdefault(key, pod)
        self._schedule(now)
        self._order(now)
        self._release(now)
        self._report_ready(now)
        self._write_pods(now)
        self._load(now, demand)

    # -- scheduler and kubelet --------------------------------------------------------------------

    def _wanted(self, now: float) -> dict[str, Pod]:
        """Each Deployment's pods as its ReplicaSets hold them, rolled as its strategy says (`rollout`)."""
        pods = {}
        by_deployment: dict[tuple[str, str], dict[str, Pod]] = {}
        for p in self.pods.values():
            by_deployment.setdefault((p.namespace, p.deployment), {})[p.name] = p
        for d in self.kube.all(DEPLOYMENTS):
            meta, spec = d["metadata"], d.get("spec") or {}
            template = (spec.get("template") or {}).get("spec") or {}
            gpus = sum(int((c.get("resources") or {}).get("requests", {}).get(GPU, 0)) for c in template["containers"])
            if gpus == 0:
                continue
            placeholder = template.get("priorityClassName") == WARM_POOL_PRIORITY_CLASS
            namespace, deployment = meta["namespace"], meta["name"]
            mine = by_deployment.get((namespace, deployment), {})
            running = [
                Running(p.name, bool(p.node), self._ready(p, now), p.placed_at, p.created) for p in mine.values()
            ]
            for name in pod_names(d, running):
                made = Pod(name, namespace, deployment, gpus, placeholder, spec["template"], now)
                pods[f"{namespace}/{name}"] = mine.get(name) or made
        return pods

    def _ready(self, pod: Pod, now: float) -> bool:
        """Whether the pod is Ready: bound, and its model loaded."""
        return bool(pod.node) and now - pod.placed_at >= self.settings.load_s

    def _write_pods(self, now: float) -> None:
        """The Pod objects as the scheduler and the kubelet leave them: bound and Running, or Pending and
        Unschedulable; the controller reads them (stuck replicas, which pod serves which endpoint)."""
        for key in [k for k in self._written if k not in self.pods]:
            namespace, name = key.split("/", 1)
            self.kube.delete(PODS, namespace, name)
            del self._written[key]
        for key, pod in self.pods.items():
            ready = self._ready(pod, now)
            state = (pod.node, ready)
            if self._written.get(key) == state:
                continue
            status = pod_status(pod.node, ready)
            if key in self._written:
                self.kube.patch(PODS, pod.namespace, pod.name, {"spec": {"nodeName": pod.node}, "status": status})
            else:
                labels = pod.template["metadata"].get("labels", {})
                meta = {"name": pod.name, "namespace": pod.namespace, "labels": labels}
                spec = {**pod.template["spec"], "nodeName": pod.node}
                obj = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}
                self.kube.put(PODS, obj)
            self._written[key] = state

    def _ready_nodes(self, now: float) -> list[str]:
        return sorted(n for n, node in self.nodes.items() if node.ready_at <= now)

    def _free(self, node: str, with_placeholders: bool = False) -> list[int]:
        """GPU indices on `node` that no pod holds (or only a placeholder, if `with_placeholders`)."""
        used: set[int] = set()
        for p in self.pods.values():
            if p.node == node and not (with_placeholders and p.placeholder):
                used.update(range(p.first_gpu, p.first_gpu + p.gpus))
        return [g for g in range(GPUS_PER_NODE) if g not in used]

    def _schedule(self, now: float) -> None:
        pending = sorted((p for p in self.pods.values() if not p.node), key=lambda p: (p.placeholder, p.name))
        for pod in pending:
            nodes = self._ready_nodes(now)
            if not self._bind(pod, nodes, now, preempt=False) and not pod.placeholder:
                self._bind(pod, nodes, now, preempt=True)

    def _bind(self, pod: Pod, nodes: list[str], now: float, preempt: bool) -> bool:
        """Bind `pod` on the first node with room for it; with `preempt`, room once the node's warm-pool
        placeholders go back to pending (kube-scheduler preempts only for a pod that fits nowhere as it is)."""
        for node in nodes:
            run = _contiguous(self._free(node, with_placeholders=preempt), pod.gpus)
            if run is None or (pod.placeholder and len(self._free(node)) < GPUS_PER_NODE):
                continue
            for victim in self.pods.values():
                if preempt and victim.node == node and victim.placeholder:
                    victim.node = ""
            pod.node, pod.first_gpu, pod.placed_at = node, run, now
            self.nodes[node].empty_since = now
            return True
        return False

    def _report_ready(self, now: float) -> None:
        for d in self.kube.all(DEPLOYMENTS):
            meta = d["metadata"]
            mine = [p for p in self.pods.values() if p.namespace == meta["namespace"] and p.deployment == meta["name"]]
            ready = sum(self._ready(p, now) for p in mine)
            status = {"replicas": len(mine), "readyReplicas": ready}
            if {k: (d.get("status") or {}).get(k) for k in status} != status:
                self.kube.patch(DEPLOYMENTS, meta["namespace"], meta["name"], {"status": status})

    # -- node autoscaler --------------------------------------------------------------------------

    def _order(self, now: float) -> None:
        pending = [p for p in self.pods.values() if not p.node]
        needed, room = 0, 0
        for pod in sorted(pending, key=lambda p: -p.gpus):
            size = GPUS_PER_NODE if pod.placeholder else pod.gpus
            if size > room:
                needed, room = needed + 1, GPUS_PER_NODE
            room -= size
        coming = sum(1 for node in self.nodes.values() if node.ready_at > now)
        for _ in range(needed - coming):
            self._names += 1
            name = f"gpu-h100-{self._names}"
            self.nodes[name] = OrderedNode(name, now + self.settings.node_delay_s, now + self.settings.node_delay_s)
            self.ordered += 1

    def _join(self, now: float) -> None:
        for node in self.nodes.values():
            if node.ready_at <= now and node.exporter is None:
                node.exporter = NodeExporter(node.name)
                self.kube.put(NODES, gpu_node(node.name))
                self._write_targets()

    def _release(self, now: float) -> None:
        if any(not p.node for p in self.pods.values()):
            return  # the autoscaler removes nothing while a pod waits
        for name in self._ready_nodes(now):
            node = self.nodes[name]
            if any(p.node == name for p in self.pods.values()):
                node.empty_since = now
            elif now - node.empty_since >= self.settings.idle_release_s:
                self.kube.delete(NODES, None, name)
                if node.exporter is not None:
                    node.exporter.close()
                del self.nodes[name]
                self._write_targets()

    def _write_targets(self) -> None:
        exporters = [n.exporter.address for n in self.nodes.values() if n.exporter is not None]
        tmp = self.targets_file.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump([{"targets": exporters, "labels": {}}]))
        tmp.replace(self.targets_file)  # Prometheus reads the file whole or not at all

    # -- GPUs and vLLM ----------------------------------------------------------------------------

    def serving(self, now: float) -> dict[str, list[Pod]]:
        """The ready replica pods of each model."""
        out: dict[str, list[Pod]] = {}
        for p in self.pods.values():
            model = self._model(p)
            if model and self._ready(p, now):
                out.setdefault(model, []).append(p)
        return out

    def _model(self, pod: Pod) -> str:
        for d in self.kube.all(DEPLOYMENTS):
            meta = d["metadata"]
            if meta["name"] == pod.deployment and meta["namespace"] == pod.namespace:
                request = (meta.get("annotations") or {}).get(REQUEST_NAME, "")
                return self.models.get(f"{pod.namespace}/{request}", "")
        return ""

    def _load(self, now: float, demand: Mapping[str, float]) -> None:
        servers: list[Server] = []
        loads: dict[tuple[str, int], tuple[float, float]] = {}
        attributed: dict[str, list[DeviceAssignment]] = {n: [] for n in self.nodes}
        for model, pods in self.serving(now).items():
            throughput = self.settings.throughput_rps.get(model, 1.0)
            share = demand.get(model, 0.0) / len(pods)
            util, vram = replica_load(share, throughput)
            for p in pods:
                waiting = max(0, round((share - throughput) * 2))
                servers.append(Server(model, p.namespace, p.name, share, waiting, min(16, round(share)), vram))
                for g in range(p.first_gpu, p.first_gpu + p.gpus):
                    loads[(p.node, g)] = (util, vram)
        for p in self.pods.values():
            node = self.nodes.get(p.node)
            if node is not None and node.exporter is not None:
                for g in range(p.first_gpu, p.first_gpu + p.gpus):
                    ref = PodRef(p.namespace, p.name, "placeholder" if p.placeholder else "vllm")
                    attributed[p.node].append(DeviceAssignment(GPU, node.exporter.uuids[g], ref))
        for name, node in self.nodes.items():
            if node.exporter is None:
                continue
            node.exporter.attribute(attributed[name])
            for g in range(GPUS_PER_NODE):
                util, vram = loads.get((name, g), (0.0, 0.0))
                node.exporter.backend.set_load(g, util=util, vram=vram, mem_bw=0.6 * util)
        self.vllm.update(servers)

    def close(self) -> None:
        for node in self.nodes.values():
            if node.exporter is not None:
                node.exporter.close()


def _contiguous(free: list[int], n: int) -> int | None:
    """The first GPU of `n` free GPUs in a row (a replica's GPUs share a baseboard's links), or None."""
    for start in free:
        if all(g in free for g in range(start, start + n)):
            return start
    return None
