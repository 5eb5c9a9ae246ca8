"""Churn's scheduler, kubelet and node autoscaler, played on the Kubernetes stand-in (benchmarks/churn.py).

`Play` binds each Deployment's pods as kube-scheduler would (`_packed`, `_selects`, `_tolerates`), turns
them Ready as the kubelet would, orders nodes as a node autoscaler would and logs each step to `play.log`;
the cluster's resource kinds (`ENDPOINTS`, `NODES`, ...) and the run's `log` live here, under the figures
and the run that read them.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from autoscaler.decide.workloads import HOSTNAME, owning_endpoint
from autoscaler.kubetime import rfc3339
from autoscaler.pods import HAMI_DEVICES, KAI_GPU_GROUP, KAI_RESERVED, asks_for_gpu, holds, kai_share, placed_on
from autoscaler.pods import requests as asked_of
from benchmarks.churnkit.kinds import DEPLOYMENTS, NODES, PODS
from benchmarks.churnkit.scenario import DELAY_S, FLEETS, STARTUP_S, FleetKind, gpu_uuid, play_node
from localplay.demo_cluster import pod_status
from localplay.kube_standin import KubeCluster
from localplay.rollout import Running, pod_names
from scheduler.catalog import Catalog
from scheduler.inventory import Allocation, Inventory, NodeGpus, SharingPolicy, build_inventory
from scheduler.manifests import HAMI_GPU_MEMORY
from scheduler.plan import Toleration
from scheduler.registry import Registry

RESERVATIONS = "kai-resource-reservation"
"""KAI's namespace (and `app` label) of its reservation pods."""
NOT_READY_TAINTS = {"False": "node.kubernetes.io/not-ready", "Unknown": "node.kubernetes.io/unreachable"}
"""The NoExecute taint the node lifecycle controller puts on a node, by the status of its Ready condition."""
EVICTION_S = 300.0
"""How long a pod stays bound to a node that is not Ready before it is evicted, where it carries no
toleration of that node's taint: what the DefaultTolerationSeconds admission plugin (on by default)
gives every pod."""
NOT_READY_TAINT = {"key": NOT_READY_TAINTS["False"], "effect": "NoSchedule"}
GRACE_S = 30.0
"""A pod's `terminationGracePeriodSeconds` where its spec names none (the API server's default): a bound pod
deleted stays, Terminating, until its kubelet has stopped it, at most that long; the play keeps it that long."""


@dataclass
class Pod:
    namespace: str
    name: str
    deployment: str
    endpoint: str
    """namespace/name of the InferenceEndpoint it serves."""
    template: dict[str, Any]
    load_s: float
    gpu_class: str
    queued: tuple[float, int] = (0.0, 0)
    """(when it was first seen, its Deployment's resourceVersion then): kube-scheduler's queue is first in,
    first out, so a pod the controller wrote first is bound first."""
    node: str = ""
    bound_at: float = 0.0
    ready: bool = False
    ready_since: float = 0.0
    """When `ready` last flipped (its Ready condition's `lastTransitionTime`); 0 while it has not: since bound."""
    held: tuple[Allocation, ...] = ()
    """What the scheduler and device plugin gave it when it was bound: kept while it runs."""
    uid: str = ""
    """The uid of the InferenceEndpoint incarnation its Deployment was written for (its ownerReference)."""
    gone_at: float | None = None
    """When it went (evicted, or its grace period over): its GPUs were held until then (`early_cause`)."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def replica_set(self) -> tuple[str, str]:
        """Its ReplicaSet: its Deployment at its template's revision (the name less the pod's index)."""
        return self.namespace, self.name.rsplit("-", 1)[0]

    def obj(self) -> dict[str, Any]:
        meta = self.template.get("metadata") or {}
        return {
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                **{k: {**(meta.get(k) or {}), **v} for k, v in self.recorded().items() if k in meta or v},
            },
            "spec": {**self.template["spec"], **({"nodeName": self.node} if self.node else {})},
        }

    def recorded(self) -> dict[str, dict[str, str]]:
        """The labels and annotations its scheduler writes on a pod it gives a share of GPU memory, in their
        real form (`autoscaler.pods.placed_on` reads them): HAMi's devices (UUID, type, MiB, cores per
        device, one container), KAI's GPU group of each GPU (`runai-gpu-group/<group>` for several)."""
        hami = [a for a in self.held if a.sharing == "hami"]
        kai = [gpu_group(self.node, i) for a in self.held if a.sharing == "kai" for i in a.gpus]
        devices = "".join(f"{gpu_uuid(self.node, a.gpus[0])},NVIDIA,{a.vram_mib},0:" for a in hami)
        labels = {KAI_GPU_GROUP: kai[0]} if len(kai) == 1 else {f"{KAI_GPU_GROUP}/{g}": g for g in kai}
        return {"labels": labels, "annotations": dict.fromkeys(HAMI_DEVICES, devices + ";") if devices else {}}


def gpu_group(node: str, index: int) -> str:
    """KAI's GPU group of the shares on GPU `index` of `node` (KAI draws one per GPU it starts sharing)."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{node}.gpu{index}.group"))


def reservation_name(node: str, index: int) -> str:
    return f"gpu-reservation-{node}-{gpu_group(node, index)[:5]}"


def reservation_pod(node: str, index: int) -> dict[str, Any]:
    """KAI's reservation pod of a shared GPU: it asks for the whole GPU and names it by its UUID
    (NVIDIA/KAI-Scheduler pkg/binder/binding/resourcereservation, pkg/resourcereservation/patcher)."""
    group = gpu_group(node, index)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": reservation_name(node, index),
            "namespace": RESERVATIONS,
            "labels": {"app": RESERVATIONS, KAI_GPU_GROUP: group},
            "annotations": {KAI_RESERVED: gpu_uuid(node, index)},
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "resource-reservation", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
        },
        "status": pod_status(node, True),
    }


@dataclass
class Play:
    kube: KubeCluster
    catalog: Catalog
    registry: Registry
    rng: random.Random
    factor: float
    pods: dict[str, Pod] = field(default_factory=dict)
    coming: list[tuple[float, float, str, str]] = field(default_factory=list)
    """(Ready at, registers at, node name, class) of the nodes ordered: each registers NotReady and tainted
    `node.kubernetes.io/not-ready` `STARTUP_S` before it is Ready, within its provisioning delay."""
    ordered: int = 0
    seen: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Endpoint incarnation (uid) -> (when its first pod appeared, when its last pod was bound), for the log:
    a reposted endpoint's pods are not its first incarnation's."""
    joined: set[str] = field(default_factory=set)
    registered: set[str] = field(default_factory=set)
    startup_rng: random.Random = field(default_factory=lambda: random.Random(0))
    """Draws each order's `STARTUP_S`, apart from its delay (so that the delays are what they were)."""
    delay_s: tuple[float, float] = DELAY_S
    """An order's delay until its node is Ready (uncompressed), drawn uniformly (`Shape.provision_minutes`)."""
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    """Each node's labels as last read."""
    _written: dict[str, tuple[str, bool, float]] = field(default_factory=dict)
    """Each pod object as last written: its node, whether Ready, and when its grace period ends (0 while none)."""
    reserved: set[tuple[str, int]] = field(default_factory=set)
    """(node, GPU) of each KAI reservation pod written: one per GPU that KAI shares."""
    down: dict[str, float] = field(default_factory=dict)
    """Node -> when it went NotReady (its kubelet stopped posting): its pods are not Ready from then on, and
    evicted `EVICTION_S` later (the default toleration of `node.kubernetes.io/unreachable`)."""
    binds: list[tuple[float, Pod]] = field(default_factory=list)
    """(when, pod) of every pod bound: who took which GPUs before a late 202 (`overtaken`)."""
    orders: dict[str, tuple[float, float, tuple[tuple[str, tuple[float, int]], ...]]] = field(default_factory=dict)
    """Node ordered -> (when, its delay drawn (uncompressed), (endpoint incarnation's uid, place in kube-scheduler's
    queue) of each pod it was ordered for): what served a 202 early (`early_cause`)."""
    arrived: dict[str, float] = field(default_factory=dict)
    """Node nobody ordered that joined during the play (late nodes, the fleet's late share) -> when."""
    kind: FleetKind = field(default_factory=lambda: FLEETS["mixed"])
    """The fleet's kind: the classes its node autoscaler adds, and how each class shares its GPUs."""
    others: list[dict[str, Any]] = field(default_factory=list)
    """Pods of another team bound at the start (`--occupied`): their GPUs are held all along."""
    journal: TextIO | None = None
    """Where the play's events go (`play.log` in the run's folder): each order and its delay, each node
    registered and Ready, each pod created, bound and gone, so that a late promise can be traced after the
    run (who took the GPUs it was counted on) beside `api.log`'s capacity of each answer."""

    terminating: dict[str, tuple[Pod, float]] = field(default_factory=dict)
    """Pods deleted while bound -> (the pod, when its grace period ends, `GRACE_S`): listed until then with
    `deletionTimestamp` set, holding their GPUs (kube-scheduler counts a Terminating pod's), no longer their
    ReplicaSet's (it makes a replacement at once, under another name)."""

    def step(self, now: float) -> None:
        self._join(now)
        # Pod garbage collection and eviction: a pod bound to a Node that is gone, or NotReady for longer than
        # it tolerates, goes (its Deployment makes another).
        nodes = self.kube.all(NODES)
        present = {n["metadata"]["name"] for n in nodes}
        evicted = {n for n, since in self.down.items() if now - since >= EVICTION_S / self.factor}
        for key in [k for k, p in self.pods.items() if p.node and (p.node not in present or p.node in evicted)]:
            self._note(now, f"evicted {key} from {self.pods[key].node}")
            self.pods.pop(key).gone_at = now
        for key, (pod, until) in list(self.terminating.items()):
            if until <= now or pod.node not in present or pod.node in evicted:
                self._note(now, f"gone {key}")
                self.terminating.pop(key)[0].gone_at = now
        wanted = self._wanted(now)
        for key in [k for k in self.pods if k not in wanted]:
            self._delete(now, self.pods.pop(key))
        for key, pod in wanted.items():
            if key not in self.pods:
                self._note(now, f"created {key} ({pod.gpu_class})")
            self.pods.setdefault(key, pod)
            self.seen.setdefault(pod.uid, (now, 0.0))
        self._schedule(now, nodes)
        self._order(now)
        for pod in self.pods.values():
            ready = bool(pod.node) and pod.node not in self.down and now - pod.bound_at >= pod.load_s
            if ready != pod.ready:
                pod.ready, pod.ready_since = ready, now
        self._report(now)

    def _delete(self, now: float, pod: Pod) -> None:
        """A pod its ReplicaSet removed (scaled down, rolled, its Deployment gone): one not bound goes at once (the
        API server deletes a pod no kubelet runs), a bound one is Terminating for its grace period."""
        grace = float((pod.template.get("spec") or {}).get("terminationGracePeriodSeconds", GRACE_S)) / self.factor
        if not pod.node or grace <= 0:
            self._note(now, f"gone {pod.key}")
            pod.gone_at = now
            return
        self._note(now, f"terminating {pod.key} on {pod.node}, gone in {grace * self.factor:.0f} s")
        self.terminating[pod.key] = (pod, now + grace)

    def _wanted(self, now: float) -> dict[str, Pod]:
        """Each Deployment's pods as its ReplicaSets hold them, its changed template rolled as its strategy says
        (`localplay.rollout`): those kept and its template's new ones. Scaled down, a ReplicaSet removes the pods
        not bound first, then those not Ready, the latest bound first (kube-controller-manager's `ActivePods`
        order); new pods take the lowest free names."""
        pods = {}
        running: dict[tuple[str, str], dict[str, Pod]] = {}
        for p in self.pods.values():
            running.setdefault((p.namespace, p.deployment), {})[p.name] = p
        held: dict[tuple[str, str], set[str]] = {}  # the names Terminating pods still hold
        for p, _ in self.terminating.values():
            held.setdefault((p.namespace, p.deployment), set()).add(p.name)
        for d in self.kube.all(DEPLOYMENTS):
            meta, spec = d["metadata"], d.get("spec") or {}
            annotations = meta.get("annotations") or {}
            template = spec.get("template") or {}
            if "egs.io/request-name" not in annotations or not asks_for_gpu(template):
                continue
            variant = self.registry.get(annotations["egs.io/model"]).variant(annotations["egs.io/variant"])
            endpoint = f"{meta['namespace']}/{annotations['egs.io/request-name']}"
            mine = running.get((meta["namespace"], meta["name"]), {})
            ranked = [Running(p.name, bool(p.node), p.ready, p.bound_at, p.queued[0]) for p in mine.values()]
            for name in pod_names(d, ranked, held.get((meta["namespace"], meta["name"]), ())):
                pod = mine.get(name) or Pod(
                    meta["namespace"],
                    name,
                    meta["name"],
                    endpoint,
                    self._admitted(template),
                    variant.load_seconds,
                    annotations["egs.io/gpu-class"],
                    (now, int(meta.get("resourceVersion") or 0)),
                    uid=(owning_endpoint(d) or ("", ""))[1],
                )
                pods[pod.key] = pod
        return pods

    def _admitted(self, template: dict[str, Any]) -> dict[str, Any]:
        """A pod of `template` as the API server admits it: the DefaultTolerationSeconds admission plugin adds
        `EVICTION_S` (compressed, whole seconds) of toleration of a node not Ready, what its eviction counts."""
        spec = template.get("spec") or {}
        keys = {t.get("key") for t in spec.get("tolerations") or ()}
        seconds = math.floor(EVICTION_S / self.factor)
        added = [
            {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}
            for key in NOT_READY_TAINTS.values()
            if key not in keys
        ]
        return {**template, "spec": {**spec, "tolerations": [*(spec.get("tolerations") or ()), *added]}}

    def _inventory(self, nodes: list[dict[str, Any]]) -> Inventory:
        inventory = build_inventory(nodes, self.catalog, sharing=SharingPolicy(self.kind.sharing), strict=False)
        by_name = {n.node: n for n in inventory}
        for other in self.others:
            if (name := other["spec"]["nodeName"]) in by_name:
                node = by_name[name]
                by_name[name] = Inventory((node,)).allocated(holds(node, other, None)).nodes[0]
        bound = [*self.pods.values(), *(p for p, _ in self.terminating.values())]
        for pod in sorted((p for p in bound if p.node), key=lambda p: p.bound_at):
            if pod.node in by_name:
                by_name[pod.node] = Inventory((by_name[pod.node],)).allocated(pod.held).nodes[0]
        # As the kubelet labels every Node, with its hostname.
        self.labels = {
            n["metadata"]["name"]: {**(n["metadata"].get("labels") or {}), HOSTNAME: n["metadata"]["name"]}
            for n in nodes
        }
        return Inventory(tuple(by_name[n.node] for n in inventory))

    def _schedule(self, now: float, nodes: list[dict[str, Any]]) -> None:
        inventory = self._inventory(nodes)
        by_name = {n.node: n for n in inventory}
        siblings = Counter((p.replica_set, p.node) for p in self.pods.values() if p.node)
        for pod in sorted((p for p in self.pods.values() if not p.node), key=lambda p: (p.queued, p.name)):
            obj = pod.obj()
            fits = []
            for name, node in by_name.items():
                if not node.schedulable or not _selects(obj, self.labels.get(name, {})) or not _tolerates(obj, node):
                    continue
                if _refused(node, obj):
                    continue
                packed = _packed(node, obj)
                taken, left = packed if packed is not None else (holds(node, obj, placed_on(node, obj)), 0)
                if _units(taken) >= _asked_units(obj):
                    rank = (-_preferred(obj, self.labels.get(name, {})), siblings[(pod.replica_set, name)], left)
                    fits.append((rank, name, taken))
            if fits:
                # The nodes it prefers first; among those, the node with the fewest pods of its ReplicaSet, as
                # kube-scheduler's default topology spreading scores them (`SPREAD`); then the tightest fit (for
                # shared GPUs; the first node for any other pod): stable, so first among equals.
                _, name, taken = min(fits, key=lambda f: f[0])
                siblings[(pod.replica_set, name)] += 1
                pod.node, pod.bound_at, pod.held = name, now, tuple(taken)
                self._note(now, f"bound {pod.key} to {name} {[a.gpus for a in taken]}")
                self.binds.append((now, pod))
                self.seen[pod.uid] = (self.seen.get(pod.uid, (now, 0.0))[0], now)
                by_name[name] = Inventory((by_name[name],)).allocated(taken).nodes[0]

    def _order(self, now: float) -> None:
        """Nodes for the pods no node takes, of the classes the node autoscaler can add, packed by GPUs."""
        need: dict[str, int] = {}
        queue: dict[str, list[tuple[int, int, Pod]]] = {}  # per class: the GPUs each pod asks, first in first out
        for pod in sorted(self.pods.values(), key=lambda p: (p.queued, p.name)):
            if not pod.node and pod.gpu_class in self.kind.provisionable:
                start = need.get(pod.gpu_class, 0)
                need[pod.gpu_class] = start + max(1, _asked_units(pod.obj()))
                queue.setdefault(pod.gpu_class, []).append((start, need[pod.gpu_class], pod))
        for gpu_class, gpus in need.items():
            per_node = self.kind.provisionable[gpu_class]
            coming = sum(1 for t, _, _, c in self.coming if c == gpu_class and t > now)
            for i in range(coming, math.ceil(gpus / per_node)):
                self.ordered += 1
                delay = self.rng.uniform(*self.delay_s) / self.factor
                name = f"{gpu_class.lower()}-new-{self.ordered}"
                registers = now + delay - self.startup_rng.uniform(*STARTUP_S) / self.factor
                self.coming.append((now + delay, registers, name, gpu_class))
                # The pods whose GPUs it brings, behind those of the nodes coming.
                wanted = [p for start, end, p in queue[gpu_class] if start < (i + 1) * per_node and end > i * per_node]
                self.orders[name] = (now, delay * self.factor, tuple((p.uid, p.queued) for p in wanted))
                self._note(now, f"ordered {name}, Ready in {delay * self.factor:.0f} s ({gpus} {gpu_class} GPUs wait)")

    def _join(self, now: float) -> None:
        """Nodes ordered register NotReady, tainted as the node lifecycle controller taints them, and are
        Ready, untainted, when their delay is over (the node autoscaler counts them as coming until then)."""
        for t, registers, name, gpu_class in self.coming:
            if name not in self.registered and registers <= now < t:
                node = play_node(self.catalog, name, gpu_class, self.kind.provisionable[gpu_class], self.kind.sharing)
                node["status"]["conditions"] = [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"}]
                node["spec"]["taints"] = [*node["spec"].get("taints", []), NOT_READY_TAINT]
                self.kube.put(NODES, node)
                self.registered.add(name)
                self._note(now, f"registered {name}, NotReady")
            elif t <= now and name not in self.joined:
                self.joined.add(name)
                self._note(now, f"Ready {name}")
                node = play_node(self.catalog, name, gpu_class, self.kind.provisionable[gpu_class], self.kind.sharing)
                if name in self.registered:  # registered: Ready now, and the not-ready taint is taken off
                    ready = {"type": "Ready", "status": "True", "lastTransitionTime": rfc3339(now)}
                    changes = {"status": {"conditions": [ready]}, "spec": {"taints": node["spec"].get("taints", [])}}
                    self.kube.patch(NODES, None, name, changes)
                else:
                    self.kube.put(NODES, node)

    def overtaken(self, uid: str, posted: float) -> list[str]:
        """The pods bound in the class of the endpoint incarnation `uid`'s pods after its POST, at a step before
        its last bind, that were created after its first: first in, first out they would have been bound after
        it, so they took GPUs it was counted on (none: it waited for what it was counted on, a node or a pod's
        going). By uid, as `early_cause`: a reposted endpoint's earlier incarnation is another's pods."""
        mine = [(t, p) for t, p in self.binds if p.uid == uid and t >= posted]
        if not mine:
            return []
        first, last = min(p.queued for _, p in mine), max(t for t, _ in mine)
        classes = {p.gpu_class for _, p in mine}
        return [
            f"{p.key}@{p.node}"
            for t, p in self.binds
            if posted <= t < last and p.uid != uid and p.gpu_class in classes and p.queued > first
        ]

    def early_cause(self, uid: str, posted: float, ready: float) -> tuple[str, str, float | None]:
        """What served the last pod of the endpoint incarnation `uid` (a reposted endpoint's name is another's
        too) bound between its POST and its Ready, that pod's node and, where it was ordered, its delay drawn:
        the node its 202 was promised on, or capacity the answer knew of (an order in flight, a GPU free), or
        could not."""
        mine = [(t, p) for t, p in self.binds if p.uid == uid and posted <= t <= ready]
        if not mine:
            return "not bound", "", None
        pod = max(mine, key=lambda b: b[0])[1]
        delay = self.orders[pod.node][1] if pod.node in self.orders else None
        return self._served_by(uid, posted, pod), pod.node, delay

    def _served_by(self, uid: str, posted: float, pod: Pod) -> str:
        """The kind of capacity `pod` of the incarnation `uid` (POSTed at `posted`) was bound on (`early_cause`)."""
        if pod.node in self.orders:
            ordered, _, wanted = self.orders[pod.node]
            if ordered < posted:
                return "an order in flight at the answer"
            if any(u == uid for u, _ in wanted):
                return "its own order"
            if all(queued < pod.queued for _, queued in wanted):
                return "an order for pods queued ahead of it"
            return "an order for pods queued after it"
        if self.arrived.get(pod.node, 0.0) > posted:
            return "a node nobody ordered, joined later"
        taken = {g for a in pod.held for g in a.gpus}
        held = any(
            q.node == pod.node and q.bound_at <= posted and (q.gone_at is None or q.gone_at > posted)
            and taken & {g for a in q.held for g in a.gpus}
            for _, q in self.binds if q is not pod
        )  # fmt: skip
        return "a GPU freed after the answer" if held else "a GPU free at the answer"

    def _note(self, now: float, event: str) -> None:
        if self.journal is not None:
            stamp = time.strftime("%H:%M:%S", time.gmtime(now))
            self.journal.write(f"{stamp}.{int(now * 1000) % 1000:03d} {event}\n")

    def _report(self, now: float) -> None:
        """Pod objects and each Deployment's counts, as the kubelet and the Deployment controller write them."""
        for key in [k for k in self._written if k not in self.pods and k not in self.terminating]:
            namespace, name = key.split("/", 1)
            self.kube.delete(PODS, namespace, name)
            del self._written[key]
        for key, (pod, until) in self.terminating.items():
            if key in self._written and self._written[key][2] != until:
                grace = math.ceil(until - now)  # compressed, as the timestamp is
                deleted = {"deletionTimestamp": rfc3339(until), "deletionGracePeriodSeconds": grace}
                self.kube.patch(PODS, pod.namespace, pod.name, {"metadata": deleted})
                self._written[key] = (*self._written[key][:2], until)
        for key, pod in self.pods.items():
            state = (pod.node, pod.ready, 0.0)
            if self._written.get(key) == state:
                continue
            status = pod_status(pod.node, pod.ready, pod.ready_since or pod.bound_at)
            if key in self._written:
                bound = {"metadata": pod.recorded(), "spec": {"nodeName": pod.node}, "status": status}
                self.kube.patch(PODS, pod.namespace, pod.name, bound)
            else:
                self.kube.put(PODS, {"apiVersion": "v1", "kind": "Pod", **pod.obj(), "status": status})
            self._written[key] = state
        # KAI keeps a GPU's reservation pod until the last pod of its group is gone, a Terminating one included.
        holding = [*self.pods.values(), *(p for p, _ in self.terminating.values())]
        shared = {(p.node, i) for p in holding if p.node for a in p.held if a.sharing == "kai" for i in a.gpus}
        for node, index in shared - self.reserved:
            self.kube.put(PODS, reservation_pod(node, index))
        for node, index in self.reserved - shared:
            self.kube.delete(PODS, RESERVATIONS, reservation_name(node, index))
        self.reserved = shared
        for d in self.kube.all(DEPLOYMENTS):
            meta = d["metadata"]
            mine = [p for p in self.pods.values() if p.namespace == meta["namespace"] and p.deployment == meta["name"]]
            status = {"replicas": len(mine), "readyReplicas": sum(p.ready for p in mine)}
            if {k: (d.get("status") or {}).get(k) for k in status} != status:
                self.kube.patch(DEPLOYMENTS, meta["namespace"], meta["name"], {"status": status})


def _packed(node: NodeGpus, pod: Mapping[str, Any]) -> tuple[list[Allocation], int] | None:
    """Where a pod that asks for a share of GPU memory (KAI `gpu-memory` or `gpu-fraction`, HAMi
    `gpumem`) is put: binpacked, the GPUs with the least memory left that hold its share, as KAI
    Scheduler's default placement strategy does and HAMi does for the pods that ask for it (EGS's do:
    `hami.io/gpu-scheduler-policy`), with the memory it leaves free on them (the tightest node is
    chosen by it); None for any other pod (first fit)."""
    asked = asked_of(pod)
    share = kai_share(pod)
    sharing = "kai"
    if share is None and HAMI_GPU_MEMORY in asked and node.sharing != "timeslice":
        share, sharing = (max(1, asked.get("nvidia.com/gpu", 1)), asked[HAMI_GPU_MEMORY], 0.0), "hami"
    if share is None:
        return None
    devices, mib, fraction = share
    room = [(g.free_mib, g.index, mib or int(g.vram_mib * fraction)) for g in node.gpus if not g.whole]
    tightest = sorted((free, index, need) for free, index, need in room if 0 < need <= free)[:devices]
    taken = [Allocation(node.node, (index,), need, sharing=sharing, owner="foreign") for _, index, need in tightest]
    return taken, sum(free - need for free, _, need in tightest)


def _refused(node: NodeGpus, pod: Mapping[str, Any]) -> bool:
    """Whether the device plugin refuses `pod` on `node`: more than one `nvidia.com/gpu` of a time-sliced
    node, which NVIDIA's recommended `failRequestsGreaterThanOne: true` fails at admission (granted, its
    slices might be of one GPU)."""
    return node.timeslice_replicas > 1 and asked_of(pod).get("nvidia.com/gpu", 0) > 1


def _units(taken: list[Allocation]) -> int:
    return sum(a.count if a.mig else len(a.gpus) for a in taken)


def _asked_units(pod: Mapping[str, Any]) -> int:
    """Devices a pod asks for: GPUs, MIG instances or partitions, or KAI's devices."""
    asked = {k: v for k, v in asked_of(pod).items() if k != HAMI_GPU_MEMORY}
    kai = kai_share(pod)
    return sum(asked.values()) or (kai[0] if kai else 0)


def _selects(pod: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """The pod's node selector and required node affinity accept a node with `labels`."""
    spec = pod.get("spec") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not affinity:
        return True

    return any(all(_matches(e, labels) for e in t.get("matchExpressions") or ()) for t in affinity["nodeSelectorTerms"])


def _preferred(pod: Mapping[str, Any], labels: Mapping[str, str]) -> int:
    """The weight of the pod's preferred node affinity terms a node with `labels` matches (kube-scheduler's
    NodeAffinity score)."""
    affinity = ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
    terms = affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or ()
    return sum(t["weight"] for t in terms if all(_matches(e, labels) for e in t["preference"]["matchExpressions"]))


def _matches(e: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op, values = e["key"], e["operator"], e.get("values") or ()
    return {
        "In": key in labels and labels[key] in values,
        "NotIn": labels.get(key) not in values,
        "Exists": key in labels,
        "DoesNotExist": key not in labels,
    }[op]


def _tolerates(pod: Mapping[str, Any], node: NodeGpus) -> bool:
    fields = ("key", "operator", "value", "effect")
    tolerations = [
        Toleration(**{k: t[k] for k in fields if k in t}) for t in (pod.get("spec") or {}).get("tolerations") or ()
    ]
    return all(
        any(t.tolerates(taint) for t in tolerations)
        for taint in node.taints
        if taint.effect in ("NoSchedule", "NoExecute")
    )
