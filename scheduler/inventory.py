"""The GPU inventory: which GPUs each node has, how much of them is free, and whether it takes new work.

Part of the scheduler's pure core: it reads Kubernetes Node objects given as plain dicts (the shape
`kubectl get nodes -o yaml` prints; the Kubernetes adapter or `load_nodes` supplies them) and the
allocations of the replicas already running, and never calls Kubernetes itself. The placement
engine and `egs plan` query it in sentences:

    inventory.schedulable().of_class("H100-80GB").fitting(vram_mib, gpus=4).cheapest()

What is read from a node (labels of NVIDIA GPU Feature Discovery and the AMD node labeller):

- the GPU class, from the catalogue (`Catalog.for_node_labels`), cross-checked against
  `nvidia.com/gpu.compute.major|minor`; GPU memory from `nvidia.com/gpu.memory` where labelled;
- whole GPUs from allocatable `nvidia.com/gpu` divided by `nvidia.com/gpu.replicas` (time-slicing
  multiplies the resource), or `amd.com/gpu`; the physical count from `nvidia.com/gpu.count`;
- MIG instances from allocatable `nvidia.com/mig-<profile>` (strategy `mixed`), or from
  `nvidia.com/gpu` with a `-MIG-<profile>` product (strategy `single`);
- the NVLink/xGMI domain: GPUs of one node share one when their class has peer links (split in
  `link_domain_size` groups where the catalogue says so); `nvidia.com/gpu.clique` names a domain
  that spans nodes;
- schedulability: a node takes new replicas only when its Ready condition is True and it is not
  cordoned (`spec.unschedulable`). Its allocations count either way. Taints are kept for the
  placement engine to match against tolerations.

Malformed input (a node or allocation the schema rejects, an allocation on an unknown node or one
that overfills a GPU) raises `InventoryError` naming the path of the bad field. A well-formed GPU node
that cannot be used (a class the catalogue lacks, labels that contradict it) is not an error: it is
listed in `Inventory.skipped` with the reason, and the rest of the fleet is still planned. Nodes
without GPU labels or resources are CPU nodes and are left out.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from common.errors import InputError
from scheduler._schema import check, field_path, read_yaml
from scheduler.catalog import Catalog, GpuModel, MigProfile, cc_tuple

SHARING_MECHANISMS = ("exclusive", "mig", "timeslice", "kai", "hami")
"""exclusive: whole GPUs; mig: MIG instances; timeslice: device-plugin replicas; kai: KAI Scheduler
gpu-memory requests; hami: HAMi `nvidia.com/gpumem`."""

_GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
_GPU_LABEL_PREFIXES = ("nvidia.com/gpu.", "amd.com/gpu.", "beta.amd.com/gpu.")
_MIG_RESOURCE = "nvidia.com/mig-"


class InventoryError(InputError):
    """Nodes or allocations that cannot be read; the message names the bad field."""


@dataclass(frozen=True)
class SharingPolicy:
    """How several replicas share one GPU, chosen per GPU class."""

    by_class: Mapping[str, str] = field(default_factory=dict)
    """GPU class name -> one of SHARING_MECHANISMS. Classes not named use `default`."""
    default: str = "exclusive"
    """Mechanism of every class not in `by_class`; exclusive (whole GPUs) unless set."""

    def __post_init__(self) -> None:
        for name, mechanism in {"default": self.default, **self.by_class}.items():
            if mechanism not in SHARING_MECHANISMS:
                known = ", ".join(SHARING_MECHANISMS)
                raise ValueError(f"sharing for {name} must be one of {known}, not {mechanism!r}")

    def for_class(self, name: str, labelled: str | None = None) -> str:
        """The class's mechanism: as configured, else what the node's labels say it runs (the
        device plugin's time-slicing replicas, a MIG layout), else the default."""
        return self.by_class.get(name, labelled or self.default)


@dataclass(frozen=True)
class Taint:
    """A node taint, kept for the placement engine to match against a replica's tolerations."""

    key: str
    effect: str
    value: str = ""


class GpuRoom(Protocol):
    """What the room rule of a sharing mechanism reads of a GPU: this inventory's `Gpu`, or the
    placement's mutable copy of one while a plan is built."""

    @property
    def vram_mib(self) -> int: ...

    @property
    def free_mib(self) -> int: ...

    @property
    def holders(self) -> int: ...


@dataclass(frozen=True)
class Gpu:
    """One whole GPU of a node (not split by MIG)."""

    index: int
    vram_mib: int
    domain: str
    """The peer-link domain it shares with others (`node/nvlink0`, a clique id), or `node/pcie`."""
    used_mib: int = 0
    holders: int = 0
    """Replicas on it."""
    whole: bool = False
    """Held by one replica under exclusive sharing."""

    @property
    def free_mib(self) -> int:
        return self.vram_mib - self.used_mib


@dataclass(frozen=True)
class MigSlots:
    """The MIG instances of one profile on a node."""

    profile: MigProfile
    count: int
    used: int = 0

    @property
    def free(self) -> int:
        return self.count - self.used


@dataclass(frozen=True)
class NodeGpus:
    """The GPUs of one node, what they hold, and whether the node takes new replicas."""

    node: str
    model: GpuModel
    gpus: tuple[Gpu, ...]
    """Whole GPUs, indexed as allocations name them."""
    physical_gpus: int
    mig: tuple[MigSlots, ...] = ()
    sharing: str = "exclusive"
    timeslice_replicas: int = 1
    """Pods one GPU admits under time-slicing (`nvidia.com/gpu.replicas`)."""
    ready: bool = True
    cordoned: bool = False
    taints: tuple[Taint, ...] = ()
    clique: str | None = None

    @property
    def schedulable(self) -> bool:
        return self.ready and not self.cordoned

    @property
    def price_per_hour(self) -> float:
        """USD per GPU-hour of this node's class."""
        return self.model.price_per_hour

    def available_mib(self, gpu: GpuRoom) -> int:
        """VRAM a new replica may take on `gpu` under this node's sharing mechanism: exclusive
        sharing (and MIG nodes' unsplit GPUs) hand out idle GPUs only; time-slicing also stops at
        the device plugin's replicas."""
        if self.sharing in ("exclusive", "mig"):
            return gpu.vram_mib if gpu.holders == 0 else 0
        if self.sharing == "timeslice" and gpu.holders >= self.timeslice_replicas:
            return 0
        return gpu.free_mib

    def fitting_gpus(self, vram_mib: int) -> tuple[Gpu, ...]:
        return tuple(g for g in self.gpus if self.available_mib(g) >= vram_mib)

    def fitting_mig(self, vram_mib: int) -> tuple[MigSlots, ...]:
        """Profiles with a free instance of at least `vram_mib`, smallest first."""
        fitting = (s for s in self.mig if s.free and s.profile.memory_mib >= vram_mib)
        return tuple(sorted(fitting, key=lambda s: s.profile.memory_mib))

    def fits(self, vram_mib: int, gpus: int = 1) -> bool:
        """Whether one replica of `gpus` GPUs with `vram_mib` on each fits now: on GPUs of one
        domain, or on one MIG instance for a single-GPU replica."""
        if gpus == 1 and self.fitting_mig(vram_mib):
            return True
        per_domain: dict[str, int] = {}
        for gpu in self.fitting_gpus(vram_mib):
            per_domain[gpu.domain] = per_domain.get(gpu.domain, 0) + 1
        return any(n >= gpus for n in per_domain.values())

    @property
    def idle_gpus(self) -> tuple[Gpu, ...]:
        return tuple(g for g in self.gpus if g.holders == 0)

    @property
    def largest_free_mib(self) -> int:
        """The most VRAM one new single-GPU replica could get here."""
        room = [self.available_mib(g) for g in self.gpus] + [s.profile.memory_mib for s in self.mig if s.free]
        return max(room, default=0)


@dataclass(frozen=True)
class SkippedNode:
    """A GPU node the inventory cannot use, and why."""

    node: str
    reason: str


@dataclass(frozen=True)
class Inventory:
    """The GPU nodes of a cluster; every query returns a narrower inventory or one node."""

    nodes: tuple[NodeGpus, ...]
    skipped: tuple[SkippedNode, ...] = ()

    def __iter__(self) -> Iterator[NodeGpus]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, name: str) -> NodeGpus:
        for node in self.nodes:
            if node.node == name:
                return node
        raise KeyError(f"no GPU node {name!r} in the inventory")

    def where(self, keep: Callable[[NodeGpus], bool]) -> Inventory:
        return replace(self, nodes=tuple(n for n in self.nodes if keep(n)))

    def schedulable(self) -> Inventory:
        """Nodes that take new replicas: Ready and not cordoned."""
        return self.where(lambda n: n.schedulable)

    def of_class(self, name: str) -> Inventory:
        return self.where(lambda n: n.model.name == name)

    def free_gpus(self, count: int = 1) -> Inventory:
        """Nodes with at least `count` GPUs that hold nothing."""
        return self.where(lambda n: len(n.idle_gpus) >= count)

    def fitting(self, vram_mib: int, gpus: int = 1) -> Inventory:
        """Nodes where a replica of `gpus` GPUs needing `vram_mib` on each fits now."""
        return self.where(lambda n: n.fits(vram_mib, gpus))

    def cheapest(self) -> NodeGpus | None:
        """The node of the lowest price per GPU-hour (ties: by name), or None when empty."""
        return min(self.nodes, key=lambda n: (n.price_per_hour, n.node), default=None)

    def largest_free(self) -> NodeGpus | None:
        """The node with the most room for one single-GPU replica, for "nearest fit" messages."""
        return max(self.nodes, key=lambda n: (n.largest_free_mib, -n.price_per_hour, n.node), default=None)


@dataclass(frozen=True)
class Allocation:
    """What one running replica holds: whole GPUs (by index) or MIG instances of one profile."""

    node: str
    gpus: tuple[int, ...] = ()
    vram_mib: int = 0
    """Per GPU; ignored under exclusive sharing, where the replica holds the whole GPU."""
    mig: str | None = None
    count: int = 1
    sharing: str = "exclusive"
    owner: str = ""


def load_nodes(path: str | Path) -> list[dict[str, Any]]:
    """The nodes of a YAML file holding a NodeList (`items:`) or a plain list of Nodes."""
    raw = read_yaml(path, InventoryError)
    nodes = raw.get("items") if isinstance(raw, dict) else raw
    if not isinstance(nodes, list):
        raise InventoryError("a NodeList (items:) or a list of Nodes is required", source=path)
    return nodes


def parse_allocations(raw: Any) -> tuple[Allocation, ...]:
    """Allocations from plain records (see `scheduler/data/allocations.schema.json`)."""
    check(raw, "allocations.schema.json", InventoryError, "allocations", at=("allocations",))
    return tuple(
        Allocation(
            node=r["node"],
            gpus=tuple(r.get("gpus", ())),
            vram_mib=r.get("vram_mib", 0),
            mig=r["mig"].removeprefix(_MIG_RESOURCE) if "mig" in r else None,
            count=r.get("count", 1),
            sharing=r.get("sharing", "exclusive"),
            owner=r.get("owner", ""),
        )
        for r in raw
    )


def build_inventory(
    nodes: list[dict[str, Any]],
    catalog: Catalog,
    allocations: Iterable[Allocation] = (),
    sharing: SharingPolicy | None = None,
) -> Inventory:
    """The inventory of `nodes` (Node dicts) with `allocations` subtracted."""
    policy = sharing or SharingPolicy()
    for name, mechanism in policy.by_class.items():
        if name not in catalog:
            raise InventoryError(f"sharing.by_class.{name}: no GPU class {name!r} in the catalogue")
        if mechanism == "mig" and not catalog.get(name).mig_profiles:
            raise InventoryError(f"sharing.by_class.{name}: {name} has no MIG profiles")
    check(nodes, "nodes.schema.json", InventoryError, "nodes", at=("items",))
    names = [n["metadata"]["name"] for n in nodes]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise InventoryError(f"items[{i}].metadata.name: duplicate node name {name!r}")
    read: list[NodeGpus] = []
    skipped: list[SkippedNode] = []
    for raw in nodes:
        result = _node(raw, catalog, policy)
        if isinstance(result, NodeGpus):
            read.append(result)
        elif result is not None:
            skipped.append(result)
    by_name = {n.node: n for n in read}
    for i, allocation in enumerate(allocations):
        where = field_path("allocations", i)
        if allocation.node not in by_name:
            raise InventoryError(f"{where}.node: no usable GPU node {allocation.node!r}")
        by_name[allocation.node] = _allocate(by_name[allocation.node], allocation, where)
    return Inventory(nodes=tuple(by_name[n.node] for n in read), skipped=tuple(skipped))


def _node(raw: dict[str, Any], catalog: Catalog, policy: SharingPolicy) -> NodeGpus | SkippedNode | None:
    name = raw["metadata"]["name"]
    labels: dict[str, str] = raw["metadata"].get("labels") or {}
    spec, status = raw.get("spec") or {}, raw.get("status") or {}
    quantities = status.get("allocatable") or status.get("capacity") or {}
    resources = {k: int(v) for k, v in quantities.items() if _is_gpu(k)}
    if not resources and not any(k.startswith(_GPU_LABEL_PREFIXES) for k in labels):
        return None
    model = catalog.for_node_labels(labels)
    if model is None:
        named = {k: v for k, v in labels.items() if "product" in k or "device-id" in k}
        return SkippedNode(name, f"its GPU labels name no single class of the catalogue ({named or 'none'})")
    mismatch = _contradiction(model, labels)
    if mismatch:
        return SkippedNode(name, mismatch)
    replicas = max(int(labels.get("nvidia.com/gpu.replicas", "1")), 1)
    single = _single_mig_profile(labels)
    counts = {single: resources.get("nvidia.com/gpu", 0)} if single else _mig_counts(resources)
    unknown = sorted(p for p in counts if model.mig_profile(p) is None)
    if unknown:
        return SkippedNode(name, f"{model.name} has no MIG profile {unknown[0]} in the catalogue")
    mig = tuple(MigSlots(profile, counts[p]) for p in counts if (profile := model.mig_profile(p)))
    if single:
        whole, physical = 0, math.ceil(mig[0].count / mig[0].profile.max_instances)
    else:
        whole = sum(v for k, v in resources.items() if k in _GPU_RESOURCES) // replicas
        physical = int(labels.get("nvidia.com/gpu.count", whole))
    clique = labels.get("nvidia.com/gpu.clique")
    memory = int(labels["nvidia.com/gpu.memory"]) if "nvidia.com/gpu.memory" in labels and not single else 0
    return NodeGpus(
        node=name,
        model=model,
        gpus=tuple(Gpu(i, memory or model.vram_mib, _domain(name, model, clique, i)) for i in range(whole)),
        physical_gpus=max(physical, whole),
        mig=mig,
        sharing=policy.for_class(model.name, "mig" if mig and not whole else "timeslice" if replicas > 1 else None),
        timeslice_replicas=replicas,
        ready=any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", ())),
        cordoned=spec.get("unschedulable", False),
        taints=tuple(Taint(t["key"], t["effect"], t.get("value", "")) for t in spec.get("taints", ())),
        clique=clique,
    )


def _is_gpu(resource: str) -> bool:
    return resource in _GPU_RESOURCES or resource.startswith(_MIG_RESOURCE)


def _contradiction(model: GpuModel, labels: Mapping[str, str]) -> str:
    """Why the labels contradict the catalogue's class, or "" when they do not."""
    major, minor = labels.get("nvidia.com/gpu.compute.major"), labels.get("nvidia.com/gpu.compute.minor")
    if major is None or minor is None or model.compute_capability is None:
        return ""
    if (int(major), int(minor)) != cc_tuple(model.compute_capability):
        catalogued = f"the catalogue's {model.name} has {model.compute_capability}"
        return f"labels say compute capability {major}.{minor}; {catalogued}"
    return ""


def _single_mig_profile(labels: Mapping[str, str]) -> str | None:
    """The profile of a `single`-strategy MIG node, whose product reads `<GPU>-MIG-<profile>`."""
    product = labels.get("nvidia.com/gpu.product", "").removesuffix("-SHARED")
    if labels.get("nvidia.com/mig.strategy") != "single" or "-MIG-" not in product:
        return None
    return product.rsplit("-MIG-", 1)[1]


def _mig_counts(resources: Mapping[str, int]) -> dict[str, int]:
    """MIG instances per profile of a `mixed`-strategy node (allocatable `nvidia.com/mig-<profile>`)."""
    return {k.removeprefix(_MIG_RESOURCE): v for k, v in sorted(resources.items()) if k.startswith(_MIG_RESOURCE) and v}


def _domain(node: str, model: GpuModel, clique: str | None, index: int) -> str:
    if not model.peer_links:
        return f"{node}/pcie"
    if clique:
        return clique
    return f"{node}/{model.interconnect}{index // model.link_domain_size if model.link_domain_size else 0}"


def _allocate(node: NodeGpus, allocation: Allocation, where: str) -> NodeGpus:
    """`node` with `allocation` taken from it; an allocation that cannot be there raises."""
    if allocation.mig is not None:
        slots = list(node.mig)
        i = next((k for k, s in enumerate(slots) if s.profile.name == allocation.mig), None)
        if i is None:
            raise InventoryError(f"{where}.mig: node {node.node} has no {allocation.mig} instances")
        if slots[i].used + allocation.count > slots[i].count:
            raise InventoryError(f"{where}.count: node {node.node} has {slots[i].free} free {allocation.mig} instances")
        slots[i] = replace(slots[i], used=slots[i].used + allocation.count)
        return replace(node, mig=tuple(slots))
    gpus = list(node.gpus)
    for index in allocation.gpus:
        if index >= len(gpus):
            raise InventoryError(f"{where}.gpus: node {node.node} has no GPU {index} (it has {len(gpus)})")
        gpu = gpus[index]
        whole = allocation.sharing == "exclusive"
        if gpu.whole or (whole and gpu.holders):
            raise InventoryError(f"{where}.gpus: GPU {index} of node {node.node} cannot be both held whole and shared")
        used = gpu.vram_mib if whole else gpu.used_mib + allocation.vram_mib
        if used > gpu.vram_mib:
            raise InventoryError(
                f"{where}.vram_mib: GPU {index} of node {node.node} would hold {used} of its {gpu.vram_mib} MiB"
            )
        gpus[index] = replace(gpu, used_mib=used, holders=gpu.holders + 1, whole=whole)
    return replace(node, gpus=tuple(gpus))
