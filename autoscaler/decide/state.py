"""Reconcile state: what the cluster holds now, read back each loop, that the controller keeps its word on.

Nothing here lives in memory between loops (DESIGN.md, "Reconcile state"): it is read from the objects
the controller observes, so a restart or a new leader decides as the old one would have.

- **Workloads** (`read_owned`): each Deployment or LeaderWorkerSet EGS owns, with the shape it was
  applied with (the `egs.io/` annotations `scheduler.manifests` records: variant, GPU class, sharing,
  tensor-parallel GPUs, VRAM, the GPUs planned per replica), and what its pod template runs (`Template`).
- **Incumbents** (`incumbents`): the replicas whose pod is bound to a node, as placements on that node
  in their workload's shape, as many as its replicas, the pods of its template as it is now first (a
  rolling update's old pod beside its new one holds what it asks beside them), every endpoint's before
  any pod of a template before (a replica of no shape recorded now, where its workload lacks one). A replica keeps its
  placement unless its endpoint's spec changed since it was placed (`status.observedGeneration` behind
  `metadata.generation`, or a shape the spec no longer admits), its node went (gone from the inventory,
  or not Ready), or consolidation moves it; the decide step places only the replicas beyond them, around
  them. A shared GPU's replica is on the GPU its scheduler recorded (`autoscaler.pods.placed_on`), else
  on the one planned. A Node skipped for a label that cannot be read has not gone: its replicas stay,
  and nothing new is placed there.
- **Promises** (`promise_of`, `keep`, `pinned`): what the endpoint was told, by the API's 201 or 202 or
  by the controller when it started to wait, recorded in `status.promise` with the variant and GPU
  class chosen; until the endpoint is Ready its replicas are placed in that variant and class, first,
  and the ETA shown is the one promised until it has passed (then revised, with the reason), or until
  its pods are bound and would have loaded sooner (moved to that, with an Event: never later that way).
- **GPUs found taken** (`Taken`, `still_taken`, `refused`): where a workload planned a replica and
  kube-scheduler found no room for its pod (Unschedulable: something EGS cannot see holds them, or the
  plan's reading of the node is not the device plugin's). Recorded on the waiting endpoint's workloads
  (`egs.io/taken`) and taken off the inventory before any replica is placed, so that neither the next
  loop, whose new pod kube-scheduler has not tried yet, nor a new endpoint puts a replica back there
  (while it remembers, the endpoint's untried pods count as stuck too). Forgotten when the evidence
  goes: the node went, a pod that was on the node then is gone, a pod is bound where they were, or the
  endpoint waits for nothing (its pods are bound).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from autoscaler.endpoint import Endpoint
from autoscaler.fields import as_list, as_text
from autoscaler.kubetime import deadline, parse_time, read_time, rfc3339
from autoscaler.pods import SERVING, endpoint_of, placed_on, requests, unschedulable
from common.errors import InputError
from scheduler.catalog import Catalog
from scheduler.inventory import Allocation, Inventory, InventoryError, NodeGpus, SkippedNode, held_by
from scheduler.plan import Placement, Request, Worker
from scheduler.registry import Registry

REQUEST_NAME = "egs.io/request-name"
TAKEN = "egs.io/taken"
"""The annotation on an endpoint's workloads recording the GPUs kube-scheduler found taken (`Taken`)."""
WORKLOAD_LABEL = "egs.io/workload"
"""The label `scheduler.manifests` puts on every pod of a workload: the workload's name."""
WORKLOAD_KINDS = ("Deployment", "LeaderWorkerSet")
MIG_SHARING = ("mig", "partition")
"""The sharing of replicas that hold a MIG instance or an AMD partition (`egs.io/mig-profile`)."""


@dataclass(frozen=True)
class Workload:
    """An endpoint's replicas as its workloads hold them now, summed."""

    replicas: int | None = None
    ready: int = 0


@dataclass(frozen=True)
class Recommendation:
    """A replica count the targets recommended, from `time` on (Unix time) until the next one."""

    time: float
    replicas: int


@dataclass(frozen=True)
class Shape:
    """The shape a workload was applied with, as `scheduler.manifests` records it on the object."""

    variant: str
    precision: str
    gpu_class: str
    sharing: str
    tp: int
    nodes: int
    vram_mib_per_gpu: int
    mig_profile: str | None = None
    planned: tuple[tuple[tuple[str, tuple[int, ...]], ...], ...] = ()
    """Per replica planned, its workers as (node, GPU indices)."""
    model: str = ""
    """The model it serves ("" when the workload does not say)."""


@dataclass(frozen=True)
class Taken:
    """GPUs kube-scheduler found taken though the plan counted them free, and the pods (`namespace/name`)
    bound on their node when it did: one of them going may free them."""

    allocation: Allocation
    pods: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        """The GPUs alone, as recorded (an exclusive GPU's VRAM is not)."""
        return json.dumps(self._gpus(), sort_keys=True)

    def as_record(self) -> dict[str, Any]:
        return {**self._gpus(), "pods": list(self.pods)}

    def _gpus(self) -> dict[str, Any]:
        a = self.allocation
        where: dict[str, Any] = {"mig": a.mig, "count": a.count} if a.mig else {"gpus": list(a.gpus)}
        if not a.mig and a.sharing != "exclusive":
            where |= {"sharing": a.sharing, "vramMiB": a.vram_mib}
        return {"node": a.node, **where}


def taken_annotation(taken: Sequence[Taken]) -> dict[str, str]:
    """The `egs.io/taken` annotation recording `taken` (none when nothing is), in a stable form: the
    same GPUs are the same text, and a quiet loop writes nothing."""
    records = sorted((t.as_record() for t in taken), key=lambda r: json.dumps(r, sort_keys=True))
    return {TAKEN: json.dumps(records, sort_keys=True, separators=(",", ":"))} if records else {}


@dataclass(frozen=True)
class Owned:
    """One workload EGS owns, read back from the cluster."""

    key: str
    """The endpoint's `namespace/name`."""
    api_version: str
    kind: str
    namespace: str
    name: str
    replicas: int
    ready: int
    shape: Shape | None = None
    """None when the workload does not say (written before shapes were recorded)."""
    taken: tuple[Taken, ...] = ()
    """The GPUs its endpoint's replicas were found unable to bind to (`egs.io/taken`)."""
    template: Template | None = None
    """What the pods of its current template run; None when it has none to read (every pod of it counts)."""

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return (self.api_version, self.kind, self.namespace, self.name)

    @property
    def workload(self) -> tuple[str, str]:
        """(namespace, name): what `workload_of` says of each of its pods."""
        return (self.namespace, self.name)


@dataclass(frozen=True)
class Template:
    """What a pod of a workload's template runs: each container's command and arguments, and the GPUs it asks."""

    containers: tuple[tuple[str, tuple[str, ...]], ...]
    gpus: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, pod: Mapping[str, Any]) -> Template:
        """What `pod` (or a pod template: the same `metadata` and `spec`) runs."""
        containers = tuple(
            (str(c.get("name")), tuple(str(a) for a in (*(c.get("command") or ()), *(c.get("args") or ()))))
            for c in (pod.get("spec") or {}).get("containers") or ()
            if isinstance(c, Mapping)
        )
        return cls(containers, tuple(sorted(requests(pod).items())))

    def made(self, pod: Mapping[str, Any]) -> bool:
        """Whether `pod` runs this template: a rolling update keeps pods of the template before (another
        model, precision or size) until the new ones serve, which are replicas of the shape recorded now only
        as far as the workload's count needs them. What an admission webhook adds beside the template's (a
        container, a GPU resource such as HAMi's default `nvidia.com/gpucores`) is not compared."""
        theirs = Template.of(pod)
        return set(self.containers) <= set(theirs.containers) and set(self.gpus) <= set(theirs.gpus)


def _template(obj: Mapping[str, Any]) -> Template | None:
    """The template of a workload's serving pods (a Deployment's, an LWS group's leader's); None without one."""
    spec = obj.get("spec") or {}
    template = spec.get("template") or (spec.get("leaderWorkerTemplate") or {}).get("leaderTemplate")
    return Template.of(template) if isinstance(template, Mapping) and template.get("spec") else None


def workload_of(pod: Mapping[str, Any]) -> tuple[str, str]:
    """(namespace, name) of the workload an EGS pod belongs to: its `egs.io/workload` label, which
    `scheduler.manifests` writes on every pod of a Deployment or LeaderWorkerSet (`Owned.workload`)."""
    meta = pod.get("metadata") or {}
    return str(meta.get("namespace", "default")), str((meta.get("labels") or {}).get(WORKLOAD_LABEL))


@dataclass(frozen=True)
class Incumbents:
    """The replicas that keep their placement, by endpoint, and the inventory with their GPUs taken."""

    placements: Mapping[str, tuple[Placement, ...]]
    inventory: Inventory
    pods: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    """(namespace, name) of the incumbents' pods (every other bound pod's GPUs are taken as it asks)."""


def read_owned(owned: Sequence[Mapping[str, Any]], catalog: Catalog) -> list[Owned]:
    """The workloads among the owned objects, with the endpoint each serves and its recorded shape; a
    shape whose GPU class is not in `catalog` (renamed since the workload was written, or an annotation
    edited) is not read: its replicas are placed again, and it goes once they serve."""
    found = []
    for obj in owned:
        if obj.get("kind") not in WORKLOAD_KINDS:
            continue
        meta = obj.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        name = annotations.get(REQUEST_NAME)
        if not name:
            continue
        namespace = str(meta.get("namespace", "default"))
        found.append(
            Owned(
                key=f"{namespace}/{name}",
                api_version=str(obj.get("apiVersion", "")),
                kind=str(obj["kind"]),
                namespace=namespace,
                name=str(meta.get("name", "")),
                replicas=_count((obj.get("spec") or {}).get("replicas")),
                ready=_count((obj.get("status") or {}).get("readyReplicas")),
                shape=shape if (shape := recorded_shape(annotations)) is None or shape.gpu_class in catalog else None,
                taken=_taken(annotations.get(TAKEN)),
                template=_template(obj),
            )
        )
    return found


def current(workloads: Iterable[Owned]) -> Workload:
    """The replicas and ready replicas of `workloads` together (no workload: replicas None)."""
    listed = list(workloads)
    if not listed:
        return Workload()
    return Workload(sum(w.replicas for w in listed), sum(w.ready for w in listed))


def admits(ep: Endpoint, shape: Shape | None, registry: Registry) -> bool:
    """Whether the endpoint's spec, as it is now, still admits a replica of `shape`: of its model (a replica
    of the model it served before is no replica of the new one, though the variant's name is the same)."""
    if shape is None or (ep.gpu_classes and shape.gpu_class not in ep.gpu_classes):
        return False
    if shape.model and shape.model != ep.model:
        return False
    try:
        return registry.get(ep.model).variant(shape.variant).quality >= ep.quality_floor
    except (InputError, KeyError):
        return False


def held_shape(ep: Endpoint, workloads: Iterable[Owned], registry: Registry) -> Shape | None:
    """The shape of the endpoint's workload that asks for the most replicas, where its spec still admits
    it: a replica whose node went is made again in its workload at once, pending in that shape."""
    admitted = [w for w in workloads if w.replicas > 0 and admits(ep, w.shape, registry)]
    return max(admitted, key=lambda w: (w.replicas, w.ready, w.name)).shape if admitted else None


def spec_changed(raw: Mapping[str, Any]) -> bool:
    """Whether the endpoint's spec changed since the controller last wrote its status."""
    meta = raw.get("metadata")
    observed = status_of(raw).get("observedGeneration")
    return observed is not None and isinstance(meta, Mapping) and observed != meta.get("generation")


def incumbents(
    endpoints: Sequence[Endpoint],
    changed: frozenset[str],
    owned: Sequence[Owned],
    pods: Sequence[Mapping[str, Any]],
    inventory: Inventory,
    registry: Registry,
    replaced: frozenset[tuple[str, str]] = frozenset(),
) -> Incumbents:
    """The replicas that keep their node, GPU class and variant: each bound, live pod of a workload whose
    shape its endpoint's spec still admits (endpoints in `changed` have none), on a node that is
    Ready (skipped or not: `_placement`), taking the GPUs its workload planned for it there (else the
    lowest that hold it); as many as its workload's replicas. Pods of their workload's template as it is now
    come first (`Template.made`), every endpoint's before any other's pod of a template before, then Ready
    ones; an endpoint's pods in order of their workload and name.
    A pod beyond them (a rolling update's old one beside its new one, a scale-down's) holds what it asks.
    The `replaced` workloads (namespace, name), which a consolidation move or a change of the spec's shape
    replaces, have none."""
    by_workload: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for pod in pods:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        labels = meta.get("labels") or {}
        bound = spec.get("nodeName") and (pod.get("status") or {}).get("phase") in ("Pending", "Running")
        if bound and not meta.get("deletionTimestamp") and labels.get("app.kubernetes.io/component") in SERVING:
            by_workload.setdefault(workload_of(pod), []).append(pod)
    workloads: dict[str, list[Owned]] = {}
    for w in owned:
        if w.workload not in replaced:
            workloads.setdefault(w.key, []).append(w)
    kept: dict[str, list[Placement]] = {}
    taken: set[tuple[str, str]] = set()
    skipped = inventory.standing
    candidates = [
        (w.template is not None and not w.template.made(pod), i, not _ready(pod), w.name, _name(pod), ep, w, pod)
        for i, ep in enumerate(endpoints)
        if ep.key not in changed
        for w in workloads.get(ep.key, ())
        if w.shape is not None and admits(ep, w.shape, registry)
        for pod in by_workload.get(w.workload, ())
    ]
    # Read first, a surplus pod of the template before (another model, or size) would take the GPUs planned for
    # the new one as a replica of the new shape, and push the pods read after it off theirs: every endpoint's
    # pods of its template as it is now come before any pod of a template before, which, where its workload
    # lacks replicas, takes what room is left (it is no replica of the new shape where it runs).
    replicas: Counter[tuple[str, str]] = Counter()
    nodes = {n.node: n for n in inventory}  # taken from as the replicas are read; the inventory made once, after
    for *_, ep, w, pod in sorted(candidates, key=lambda c: c[:5]):
        assert w.shape is not None
        if replicas[w.workload] >= w.replicas:
            continue
        mine = kept.setdefault(ep.key, [])
        read = _placement(ep, w.shape, pod, nodes, inventory.skipped, skipped, registry, len(mine))
        if read is None:
            continue
        placement, holding = read
        nodes |= holding
        mine.append(placement)
        replicas[w.workload] += 1
        taken.add((w.namespace, _name(pod)))
    placements = {ep.key: tuple(kept[ep.key]) for ep in endpoints if kept.get(ep.key)}
    inventory = replace(inventory, nodes=tuple(nodes[n.node] for n in inventory))
    return Incumbents(placements, inventory, frozenset(taken))


def _allocated(
    nodes: Mapping[str, NodeGpus], skipped: tuple[SkippedNode, ...], allocations: Sequence[Allocation]
) -> dict[str, NodeGpus]:
    """The nodes `allocations` fall on, with them taken: `Inventory.allocated` (the same checks and errors) on
    those nodes alone, so that reading each incumbent costs what it holds, not a copy of the fleet."""
    on = Inventory(tuple(nodes[n] for n in dict.fromkeys(a.node for a in allocations) if n in nodes), skipped)
    return {n.node: n for n in on.allocated(allocations)}


def _placement(
    ep: Endpoint,
    shape: Shape,
    pod: Mapping[str, Any],
    nodes: Mapping[str, NodeGpus],
    skips: tuple[SkippedNode, ...],
    skipped_nodes: Collection[str],
    registry: Registry,
    replica: int,
) -> tuple[Placement, dict[str, NodeGpus]] | None:
    """The pod's replica as a placement that fits `nodes` now (the inventory's, by name; `skips` the nodes it
    skipped), with the nodes it falls on as it leaves them (`_allocated`), or None (its node went, or is full).
    On a Ready Node the inventory skipped (`skipped_nodes`: a label it cannot read), the replica stays
    where its workload planned it, without a check: the Node is there and the pod runs on it, and moving
    the replica for a label would restart what its endpoint never asked to move."""
    node_name = str((pod.get("spec") or {}).get("nodeName"))
    node = nodes.get(node_name)
    skipped = node is None and node_name in skipped_nodes
    if not skipped and (node is None or not node.ready):
        return None
    quality = registry.get(ep.model).variant(shape.variant).quality

    def on(workers: tuple[Worker, ...]) -> Placement:
        return Placement(
            ep.name, replica, ep.model, shape.variant, shape.precision, quality, shape.gpu_class, shape.sharing,
            shape.tp, shape.vram_mib_per_gpu, workers, ep.namespace,
        )  # fmt: skip

    options: list[tuple[Worker, ...]] = []
    if shape.nodes > 1:
        options = [
            tuple(Worker(n, gpus) for n, gpus in planned)
            for planned in shape.planned
            if planned
            and planned[0][0] == node_name
            and (skipped or all(n in nodes and nodes[n].ready for n, _ in planned))
        ]
    elif shape.mig_profile:
        resource = next(iter(requests(pod)), "")
        options = [(Worker(node_name, (), shape.mig_profile, resource),)]
    else:
        # Where its scheduler recorded the pod's share first (KAI and HAMi binpack, whatever was planned).
        at = sorted(placed_on(node, pod) or ()) if node else []
        options = [(Worker(node_name, tuple(at)),)] if at and len(at) == shape.tp else []
        options += [(Worker(node_name, g),) for planned in shape.planned for n, g in planned[:1] if n == node_name]
        # No room of its shape there (a pod of the workload's template before a change of shape, on a partition
        # or MIG instance): it holds nothing of that shape, so it is no incumbent, and what it asks stays held.
        room = _room(node, shape) if node else ()
        options += [(Worker(node_name, room),)] if room or skipped else []
    if skipped:  # kept without a check; what it holds is taken all the same
        placement = on(options[0]) if options else None
        return (placement, _allocated(nodes, skips, held_by(placement))) if placement else None
    for workers in options:
        if _held_whole(nodes, workers):
            continue
        placement = on(workers)
        try:
            return placement, _allocated(nodes, skips, held_by(placement))
        except InventoryError:
            continue
    return None


def _held_whole(nodes: Mapping[str, NodeGpus], workers: Sequence[Worker]) -> bool:
    """Whether a GPU of `workers` is held whole already, which `Inventory.allocated` refuses: most often the
    GPUs planned for a workload's replica that another of its pods took first, skipped without the refusal."""
    for w in workers:
        gpus = nodes[w.node].gpus if w.node in nodes and w.mig_profile is None else ()
        if any(i < len(gpus) and gpus[i].whole for i in w.gpus):
            return True
    return False


def _room(node: NodeGpus, shape: Shape) -> tuple[int, ...]:
    """The lowest GPUs of `node` that hold a replica of `shape` (whole ones under exclusive sharing)."""
    if shape.sharing == "exclusive" or shape.tp > 1:
        free = [g.index for g in node.gpus if g.holders == 0]
    else:
        free = [g.index for g in node.gpus if not g.whole and g.free_mib >= shape.vram_mib_per_gpu]
    return tuple(free[: shape.tp]) if len(free) >= shape.tp else ()


def _name(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("name"))


def _ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def recorded_shape(annotations: Mapping[str, Any]) -> Shape | None:
    """The shape `scheduler.manifests` recorded in a workload's annotations; None where one cannot be read."""
    return _shape(tuple((k.removeprefix("egs.io/"), str(v)) for k, v in annotations.items() if k.startswith("egs.io/")))


@lru_cache(maxsize=8192)
def _shape(recorded: tuple[tuple[str, str], ...]) -> Shape | None:
    """`recorded_shape` of the `egs.io/` annotations (prefix removed), remembered: a loop reads each workload's
    shape three times (the workload, its rendering, its name), and loop after loop the text is the same."""
    a = dict(recorded)
    try:
        planned = tuple(
            tuple((str(n), tuple(int(g) for g in gpus)) for n, gpus in replica["workers"])
            for replica in json.loads(a.get("placement", "[]"))
        )
        return Shape(
            variant=a["variant"],
            precision=a["precision"],
            gpu_class=a["gpu-class"],
            sharing=a["sharing"],
            tp=int(a["tensor-parallel"]),
            nodes=int(a["nodes-per-replica"]),
            vram_mib_per_gpu=int(a["vram-mib-per-gpu"]),
            # Only MIG instances and AMD partitions have one; an annotation left from a shape the
            # workload had before (an apply that merged, not replaced, its annotations) is not read.
            mig_profile=a.get("mig-profile") if a["sharing"] in MIG_SHARING else None,
            planned=planned,
            model=a.get("model", ""),
        )
    except (KeyError, ValueError, TypeError, AttributeError):
        return None


def _taken(text: Any) -> tuple[Taken, ...]:
    """The `egs.io/taken` records; a record that cannot be read is left out (at worst its GPUs are
    tried again, and found taken again)."""
    try:
        records = json.loads(str(text)) if text else []
    except ValueError:
        return ()
    found = []
    for r in as_list(records):
        try:
            node, mig = str(r["node"]), r.get("mig")
            if mig:
                allocation = Allocation(node, mig=str(mig), count=int(r["count"]))
            else:
                gpus, sharing = tuple(int(g) for g in r["gpus"]), str(r.get("sharing", "exclusive"))
                allocation = Allocation(node, gpus, int(r.get("vramMiB", 0)), sharing=sharing)
            found.append(Taken(allocation, tuple(str(p) for p in r.get("pods") or ())))
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return tuple(found)


def still_taken(
    workloads: Mapping[str, Sequence[Owned]],
    inventory: Inventory,
    pods: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, tuple[Taken, ...]], Inventory]:
    """Per endpoint, the GPUs found taken whose evidence stands (those its workloads record, and those
    `refused` now), and `inventory` (the incumbents' and other pods' GPUs already off) with them taken
    too. Dropped: GPUs of a node that is gone or not Ready, of a node a pod then on it has left, and
    GPUs that no longer fit what is held there (a pod is bound on them: they were not taken after all)."""
    on_node = bound_pods(pods)
    ordered = {key: sorted(workloads[key], key=lambda w: w.name) for key in sorted(workloads)}
    refused_now = refused([w for mine in ordered.values() for w in mine], pods, on_node)
    nodes = {n.node for n in inventory}
    kept: dict[str, tuple[Taken, ...]] = {}
    for key, mine in ordered.items():
        recorded = next((w.taken for w in mine if w.taken and _waits(w, nodes)), ())
        known = {t.where for t in recorded}
        standing = []
        for t in (*recorded, *(t for t in refused_now.get(key, ()) if t.where not in known)):
            if t.allocation.node not in nodes:
                continue
            node = inventory.node(t.allocation.node)
            if not node.ready or not set(t.pods) <= on_node.get(node.node, set()):
                continue
            try:
                inventory = inventory.allocated([t.allocation])
            except InventoryError:
                continue
            standing.append(t)
        if standing:
            kept[key] = tuple(standing)
    return kept, inventory


def _waits(w: Owned, nodes: Collection[str]) -> bool:
    """Whether the workload plans a replica on a node that is not there (one being provisioned): a
    record on a workload that waits for nothing is one the apply that dropped it left behind."""
    return w.shape is not None and any(planned and planned[0][0] not in nodes for planned in w.shape.planned)


def refused(
    owned: Sequence[Owned], pods: Sequence[Mapping[str, Any]], on_node: Mapping[str, set[str]]
) -> dict[str, list[Taken]]:
    """Per endpoint, the GPUs kube-scheduler found no room on: of each workload with a pod it found no
    node for (Unschedulable: it tried every node, so none of the workload's planned replicas had room),
    the replicas it planned that no pod of it is bound to; `on_node` is `bound_pods(pods)`."""
    stuck: Counter[tuple[str, str]] = Counter()
    bound: dict[tuple[str, str], Counter[str]] = {}
    for pod in pods:
        workload = workload_of(pod)
        bound_to = (pod.get("spec") or {}).get("nodeName")
        if endpoint_of(pod) is None:
            continue
        if unschedulable(pod):
            stuck[workload] += 1
        elif bound_to:
            bound.setdefault(workload, Counter())[str(bound_to)] += 1
    found: dict[str, list[Taken]] = {}
    for w in owned:
        if w.shape is None or not stuck[w.workload]:
            continue
        running = Counter(bound.get(w.workload, Counter()))
        for planned in w.shape.planned:
            if planned and running[planned[0][0]] > 0:
                running[planned[0][0]] -= 1
                continue
            for node, gpus in planned:
                allocation = (
                    Allocation(node, mig=w.shape.mig_profile)
                    if w.shape.mig_profile
                    else Allocation(node, gpus, w.shape.vram_mib_per_gpu, sharing=w.shape.sharing)
                )
                found.setdefault(w.key, []).append(Taken(allocation, tuple(sorted(on_node.get(node, ())))))
    return found


def bound_pods(pods: Sequence[Mapping[str, Any]]) -> dict[str, set[str]]:
    """Node -> the pods (`namespace/name`) bound to it."""
    found: dict[str, set[str]] = {}
    for pod in pods:
        meta, node = pod.get("metadata") or {}, (pod.get("spec") or {}).get("nodeName")
        if node:
            found.setdefault(str(node), set()).add(f"{meta.get('namespace', 'default')}/{meta.get('name')}")
    return found


def _count(value: Any) -> int:
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def endpoint_key(obj: Mapping[str, Any]) -> str:
    """`namespace/name` of a raw object."""
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"


def created_at(obj: Mapping[str, Any]) -> float | None:
    """When the API server created the object (`metadata.creationTimestamp`, to the second); None where it
    does not say."""
    meta = obj.get("metadata")
    stamp = meta.get("creationTimestamp") if isinstance(meta, Mapping) else None
    return read_time(stamp)


def status_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """An endpoint's status as observed; {} when it has none, or one that is not an object (a
    malformed endpoint is reported on itself, and its status written anew)."""
    status = obj.get("status")
    if not isinstance(status, Mapping):
        return {}
    conditions = status.get("conditions")
    if conditions is None or (isinstance(conditions, list) and all(isinstance(c, Mapping) for c in conditions)):
        return status
    # Conditions another writer left unreadable are dropped (and written anew), not read as what they are not.
    readable = [c for c in as_list(conditions) if isinstance(c, Mapping)]
    return {**status, "conditions": readable}


def recommendations(status: Mapping[str, Any]) -> tuple[Recommendation, ...]:
    """The replica counts recommended within the stabilization window, as the status recorded them
    (an entry that cannot be read is left out: at worst the window restarts shorter)."""
    found = []
    for entry in as_list(status.get("recommendations")):
        try:
            found.append(Recommendation(parse_time(str(entry["time"])), int(entry["replicas"])))
        except (KeyError, TypeError, ValueError):
            continue
    return tuple(sorted(found, key=lambda r: r.time))


CREATED, ACCEPTED = "Created", "Accepted"
"""A promise's answer: 201 (warm capacity serves it now) or 202 (ready by `estimatedReadyTime`)."""
OVERDUE_STEP_S = 60.0
"""How far past now an overdue promise with nothing left waiting for a node is moved (the replicas are
placed and starting: the next loop sees them ready, or moves it again)."""


PROMISE_ANNOTATION = "egs.io/promise"
"""The API's answer, on the InferenceEndpoint from its creation (as `status.promise`): the status is
written only after the create, and a loop (the controller's, or the API's own capacity) that lists
the endpoint in between must not take it for one nobody answered."""


@dataclass(frozen=True)
class Promised:
    """One replica where the API placed it (a 201's, or a 202's placed warm): its variant and class (an
    endpoint's replicas may be answered in several), sharing, tensor-parallel GPUs, VRAM per GPU and workers."""

    variant: str
    gpu_class: str
    sharing: str
    tp: int
    vram_mib_per_gpu: int
    workers: tuple[Worker, ...]

    def as_status(self) -> dict[str, Any]:
        workers = [{"node": w.node, "gpus": list(w.gpus), "profile": w.mig_profile, "resource": w.resource}
                   for w in self.workers]  # fmt: skip
        return {"variant": self.variant, "gpuClass": self.gpu_class, "sharing": self.sharing, "tensorParallel": self.tp,
                "vramMiBPerGpu": self.vram_mib_per_gpu,
                "workers": [{k: v for k, v in w.items() if v not in (None, "")} for w in workers]}  # fmt: skip


@dataclass(frozen=True)
class Promise:
    """What the endpoint was told (by the API's answer, or by the controller when it started to wait):
    recorded in `status.promise`, kept until the endpoint is Ready, revised only with a reason."""

    answer: str
    """`Created` (201: serving now) or `Accepted` (202: ready by `eta`)."""
    eta: float | None = None
    variant: str | None = None
    gpu_class: str | None = None
    generation: int | None = None
    """The spec's generation it was made for: a new spec is a new request, and the promise no longer binds."""
    placements: tuple[Promised, ...] = ()
    """Where the replicas placed at once were (a 201's, a 202's placed warm: the GPUs the API took them
    from): the controller holds them as incumbents until the pods are bound."""

    def as_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"answer": self.answer}
        if self.eta is not None:
            out["estimatedReadyTime"] = deadline(self.eta)
        if self.variant and self.gpu_class:
            out |= {"variant": self.variant, "gpuClass": self.gpu_class}
        if self.generation is not None:
            out["observedGeneration"] = self.generation
        if self.placements:
            out["placements"] = [p.as_status() for p in self.placements]
        return out


@dataclass(frozen=True)
class Kept:
    """A promise after this loop: the one to record, the ETA the status shows, and why it was revised."""

    promise: Promise | None
    eta: float | None
    revised: tuple[str, str] | None = None
    """(reason, message) when the promise was broken this loop (PromiseKept False)."""
    sooner: tuple[str, str] | None = None
    """(reason, message) when it was moved earlier this loop (a new promise, kept to the same rules)."""


def promise_of(raw: Mapping[str, Any]) -> Promise | None:
    """The promise recorded on an endpoint that still binds (made for its spec as it is now): its
    `status.promise`, or before any status is written the API's answer annotated at its creation
    (`PROMISE_ANNOTATION`); an `estimatedReadyTime` of a Provisioning status written before promises
    were recorded counts as one."""
    status = status_of(raw)
    meta = raw.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    recorded = status.get("promise") if status else _annotated(meta)
    if isinstance(recorded, Mapping) and recorded.get("answer") in (CREATED, ACCEPTED):
        generation = recorded.get("observedGeneration")
        if isinstance(generation, int) and generation != meta.get("generation"):
            return None
        return Promise(
            str(recorded["answer"]),
            read_time(recorded.get("estimatedReadyTime")),
            as_text(recorded.get("variant")) or None,
            as_text(recorded.get("gpuClass")) or None,
            generation if isinstance(generation, int) else None,
            _promised(recorded.get("placements")),
        )
    eta = read_time(status.get("estimatedReadyTime"))
    if eta is not None and status.get("phase") == "Provisioning":
        return Promise(ACCEPTED, eta)
    return None


def keep(
    promise: Promise | None, made: Promise, phase: str, waiting: int, now: float, overdue_said: bool = False
) -> Kept:
    """The promise after a loop whose decision is `made` (its answer, ETA, shape) and `phase`.

    Ready fulfils it (nothing recorded). A 201 stays one while nothing waits for a node; when replicas
    wait, its capacity is gone: revised to the ETA. A 202's ETA stays while it is ahead, unless the new
    estimate is earlier because nothing waits any more and its pods load (`waiting.loaded_by`:
    `CapacityArrived`), which it is moved to; once passed, it is revised to the new estimate. An
    estimate while replicas wait is not evidence enough to move it: it assumes a queue order that
    kube-scheduler need not follow. Without a promise, an endpoint that starts to wait is promised the
    estimate.

    An overdue promise with no new estimate of its own (nothing waits for a node) is moved
    `OVERDUE_STEP_S` ahead once; when that passes too and the status already says so (`overdue_said`:
    its PromiseKept condition is False, Overdue), it stays as it is: moving it again each minute would
    be a status write and an Event per minute for an endpoint that does not get ready, with nothing new
    to say."""
    if phase == "Ready":
        return Kept(None, None)
    if promise is None:
        return Kept(made if made.answer == ACCEPTED else None, made.eta)
    if promise.eta is None:
        if not waiting:
            return Kept(promise, None)
        message = f"answered 201 but its capacity is gone: {waiting} replicas wait for a node"
        return Kept(made, made.eta, ("CapacityGone", _by(message, made.eta)))
    if promise.eta > now:
        if not waiting and made.eta is not None and now < made.eta and math.ceil(made.eta) < promise.eta:
            message = _by("its nodes came and its replicas load", made.eta)
            return Kept(replace(promise, eta=made.eta), made.eta, sooner=("CapacityArrived", message))
        return Kept(promise, promise.eta)
    # A load estimate (nothing waits) moves a promise that is ahead; an overdue one is moved as before.
    estimate = made.eta if waiting else None
    if overdue_said and (estimate is None or estimate <= now):
        return Kept(promise, promise.eta)
    eta = estimate if estimate is not None and estimate > now else now + OVERDUE_STEP_S
    message = f"not ready by {deadline(promise.eta)} as promised"
    return Kept(replace(made, answer=ACCEPTED, eta=eta), eta, ("Overdue", _by(message, eta)))


def _annotated(meta: Mapping[str, Any]) -> Any:
    annotations = meta.get("annotations")
    text = annotations.get(PROMISE_ANNOTATION) if isinstance(annotations, Mapping) else None
    try:
        return json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _promised(recorded: Any) -> tuple[Promised, ...]:
    """The placements of a recorded promise; none when any cannot be read (the promise then binds
    the variant and class only)."""
    try:
        return tuple(
            Promised(
                str(r["variant"]),
                str(r["gpuClass"]),
                str(r["sharing"]),
                int(r["tensorParallel"]),
                int(r["vramMiBPerGpu"]),
                _workers(r["workers"]),
            )
            for r in recorded or ()
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return ()


def _workers(recorded: Any) -> tuple[Worker, ...]:
    return tuple(
        Worker(
            str(w["node"]),
            tuple(int(g) for g in w.get("gpus") or ()),
            as_text(w.get("profile")) or None,
            str(w.get("resource") or ""),
        )
        for w in recorded
    )


def promised(placements: Sequence[Placement]) -> tuple[Promised, ...]:
    """Where `placements` put an endpoint's replicas, as a 201's or a 202's promise records it."""
    return tuple(Promised(p.variant, p.gpu_class, p.sharing, p.tp, p.vram_mib_per_gpu, p.workers) for p in placements)


def placed_afresh(promise: Promise, placements: Sequence[Placement]) -> Kept:
    """A 201 whose answered GPUs could not be held this loop (a pod bound there, its node went) and whose
    replicas were placed again, in the shape answered, on `placements`: the promise moves there, with a
    reason. The bound is that one loop: the workload written now prefers the new node for good (a changed
    preference is a changed pod template, which restarts pods), so a promise left on the old GPUs would
    pull the plan back to GPUs its pod no longer prefers once they come free."""
    before = ", ".join(sorted({_where(p.workers) for p in promise.placements}))
    now = ", ".join(sorted({_where(p.workers) for p in placements}))
    message = f"answered 201 on {before}, which could not be held: placed again on {now}, serving now as answered"
    return Kept(replace(promise, placements=promised(placements)), None, ("PlacementTaken", message))


def _where(workers: Sequence[Worker]) -> str:
    return " + ".join(f"{w.node} {w.mig_profile or list(w.gpus)}" for w in workers)


def _by(message: str, eta: float | None) -> str:
    return f"{message}; now expected by {deadline(eta)}" if eta is not None else message


def pinned(request: Request, promise: Promise | None) -> Request:
    """`request` held to the variant and GPU class `promise` names (unchanged without one)."""
    if promise is None or not promise.variant or not promise.gpu_class:
        return request
    return replace(request, variants=(promise.variant,), gpu_classes=(promise.gpu_class,))


def owed(promise: Promise, kept: Sequence[Placement], replicas: int) -> Promise | None:
    """A 201 with replicas beyond those `kept` for it: `promise` held to the shape of the first of its
    `replicas` promised that none kept holds (an endpoint may be answered in several shapes), so that a
    replica whose GPUs were taken is placed again as it was answered; None when every promised shape is held."""
    if len(kept) >= replicas:
        return None
    held = Counter((p.variant, p.gpu_class) for p in kept)
    for p in promise.placements[:replicas]:
        if held[(p.variant, p.gpu_class)] > 0:
            held[(p.variant, p.gpu_class)] -= 1
        else:
            return replace(promise, variant=p.variant, gpu_class=p.gpu_class)
    return None


@dataclass(frozen=True)
class Move:
    """An endpoint being moved to a cheaper shape, or off a shared GPU a waiting replica needs: since `at`,
    replacing the workloads `replacing`."""

    at: float
    namespace: str
    replacing: tuple[str, ...]
    saving: float = 0.0
    """USD per hour the move saves, as estimated when it began (0 when read back)."""
    nodes: tuple[str, ...] = ()
    """The nodes it takes replicas off: what it spends of the disruption budget (`maxNodesPerInterval`)."""
    for_: str = ""
    """The endpoint (`namespace/name`) whose waiting replica the move empties a GPU for (`consolidation.freeing`);
    empty for a move that saves."""

    def as_status(self) -> dict[str, Any]:
        status = {"at": rfc3339(self.at), "replacing": list(self.replacing), "nodes": list(self.nodes)}
        return status | ({"for": self.for_} if self.for_ else {})


MOVES_NOTE = "egs.io/moves-begun"
"""The Lease annotation in which the leader leaves the moves it began within the budget's interval (`moves_note`) to
the replica that leads next: a moved endpoint deleted since takes its status, the only other record, with it, and a
new leader would spend the nodes its move took replicas off a second time in the same interval."""
MOVES_NOTE_MAX_CHARS = 50_000
"""At most what the note holds (the newest moves first): a Lease's annotations are 256 KiB in all."""


def moves_note(moves: Sequence[tuple[str, Move]]) -> str:
    """`moves` (endpoint key, move) as the Lease's `MOVES_NOTE` carries them, each as its status records it."""
    kept: list[dict[str, Any]] = []
    for key, move in sorted(moves, key=lambda m: -m[1].at):
        entry = {"endpoint": key, **move.as_status(), "replacing": []}
        if len(json.dumps([*kept, entry], separators=(",", ":"))) > MOVES_NOTE_MAX_CHARS:
            break
        kept.append(entry)
    return json.dumps(kept, separators=(",", ":"))


def read_moves_note(text: str | None, now: float) -> tuple[tuple[str, Move], ...]:
    """The moves a `moves_note` holds, each read as `move_of` reads a status (one dated ahead as made now); none
    where the note cannot be read."""
    try:
        entries = json.loads(text or "[]")
    except ValueError:
        return ()
    found = []
    for entry in as_list(entries):
        key = as_text(entry.get("endpoint")) if isinstance(entry, Mapping) else ""
        namespace = key.partition("/")[0]
        if namespace and (
            move := move_of({"metadata": {"namespace": namespace}, "status": {"consolidation": entry}}, (), now)
        ):
            found.append((key, move))
    return tuple(found)


def move_of(raw: Mapping[str, Any], owned: Sequence[Owned], now: float) -> Move | None:
    """The move recorded on an endpoint's status, with the workloads it replaces that still exist, dated `now` at
    the latest: one dated ahead (a status edited, a leader's clock fast) counts one interval from when it is read,
    as every reader sees it, and the status then written carries `now`, not a date that stays ahead for years."""
    recorded = status_of(raw).get("consolidation")
    if not isinstance(recorded, Mapping):
        return None
    if (at := read_time(recorded.get("at"))) is None:
        return None
    names = {w.name for w in owned}
    replacing = tuple(str(n) for n in as_list(recorded.get("replacing")) if str(n) in names)
    meta = raw.get("metadata")
    namespace = str(meta.get("namespace", "default")) if isinstance(meta, Mapping) else "default"
    nodes = tuple(str(n) for n in as_list(recorded.get("nodes")))
    return Move(min(at, now), namespace, replacing, nodes=nodes, for_=as_text(recorded.get("for")))
