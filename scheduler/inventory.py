"""The GPU inventory: which GPUs each node has, how much of them is free, and whether it takes new work.

Part of the scheduler's pure core: it reads Kubernetes Node objects given as plain dicts (the shape
`kubectl get nodes -o yaml` prints; the Kubernetes adapter or `load_nodes` supplies them) and the
allocations of the replicas already running, and never calls Kubernetes itself. The placement
engines copy its schedulable nodes into `scheduler.fleet.FleetState` and ask each node's
`available_mib` how much a GPU may still take.

What is read from a node (labels of NVIDIA GPU Feature Discovery and the AMD node labeller):

- the GPU class, from the catalogue (`Catalog.for_node_labels`), cross-checked against
  `nvidia.com/gpu.compute.major|minor`; GPU memory from `nvidia.com/gpu.memory` where labelled;
- whole GPUs from allocatable `nvidia.com/gpu` divided by `nvidia.com/gpu.replicas` (time-slicing
  multiplies the resource), or `amd.com/gpu`; the physical count from `nvidia.com/gpu.count` (else the
  devices HAMi registers), which the whole GPUs never exceed: HAMi's device plugin advertises each GPU
  `deviceSplitCount` times (10 by default) with no time-slicing label. `amd.com/gpu` is read as advertised:
  AMD's device plugin advertises one per device it exposes (a GPU, or a partition: below) and shares none,
  and no AMD label counts GPUs apart from those devices (the labeller's count labels count the same ones);
- MIG instances from allocatable `nvidia.com/mig-<profile>` (strategy `mixed`), or from
  `nvidia.com/gpu` with a `-MIG-<profile>` product (strategy `single`);
- AMD partitions (MI300X/MI325X compute SPX/DPX/QPX/CPX x memory NPS1/NPS4): AMD's device plugin
  advertises each partition as one `amd.com/gpu` (naming strategy `single`, the mode in the
  labeller's `amd.com/compute-memory-partition`, e.g. `cpx_nps4`) or as `amd.com/<mode>` (strategy
  `mixed`). They become instances like MIG ones, of the GPU's memory divided by its partitions;
  `amd.com/gpu.vram` (whole GiB, per device) lowers that where the labeller reports less;
- the NVLink/xGMI domain: GPUs of one node share one when their class has peer links (split in
  `link_domain_size` groups where the catalogue says so); `nvidia.com/gpu.clique` names a domain
  that spans nodes;
- the PCIe domain of a class without peer links: the GPUs that share a PCIe root complex or NUMA
  node, which a tensor-parallel replica keeps to. Neither GPU Feature Discovery nor the AMD
  labeller says which GPU hangs off which root (NFD's `feature.node.kubernetes.io/memory-numa`
  says only that there are several NUMA nodes), so the operator may say it with
  `egs.io/gpu-pcie-domains=<n>`: the GPUs split into n equal domains in index order (the device
  plugin's order, which is PCI bus order). Without it the node is taken as ONE domain (most 4- and
  8-GPU PCIe servers hang all GPUs off PCIe switches under one root), and plans say so
  (`NodeGpus.pcie_domains` None);
- RDMA: whether the node's network carries a replica split over nodes (pipeline parallel), from
  `RDMA_LABELS` (NFD rule labels, an NVIDIA/Mellanox NIC found by NFD, or EGS's own);
- which device is which GPU: HAMi's device plugin registers each GPU's UUID with its index on the node
  (`HAMI_REGISTER`, JSON), what a pod's device annotations name (`autoscaler.pods`); a value that
  cannot be read leaves the node without them (`NodeGpus.devices` empty), not skipped. No label maps
  the UUIDs KAI Scheduler names: `autoscaler.pods.with_devices` adds them from the GPU exporter's series;
- schedulability: a node takes new replicas only when its Ready condition is True and it is not
  cordoned (`spec.unschedulable`). Its allocations count either way. Taints are kept for the
  placement engines to match against tolerations (`scheduler.fleet.untolerated`).

Malformed input (a node or allocation the schema rejects, an allocation on an unknown node or one
that overfills a GPU) raises `InventoryError` naming the path of the bad field. A well-formed GPU node
that cannot be used (a class the catalogue lacks, labels that contradict it) is not an error: it is
listed in `Inventory.skipped` with the reason, and the rest of the fleet is still planned. Nodes
without GPU labels or resources are CPU nodes and are left out.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from common import quantity
from common.errors import InputError
from common.limits import MAX_GPUS_PER_NODE
from common.schema import by_json_text, field_path, read_yaml
from scheduler._schema import check
from scheduler.catalog import Catalog, GpuModel, MigProfile, cc_tuple
from scheduler.plan import SHARING_MECHANISMS as SHARING_MECHANISMS
from scheduler.plan import Placement

_GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu")
_GPU_LABEL_PREFIXES = ("nvidia.com/gpu.", "amd.com/gpu.", "beta.amd.com/gpu.")
_MIG_RESOURCE = "nvidia.com/mig-"
AMD_PARTITION_LABEL = "amd.com/compute-memory-partition"
MAX_SHARES_PER_GPU = 64
"""Time-slicing replicas of one GPU; MIG (7) and AMD CPX partitions (8) split it less."""
MAX_DEVICES_PER_NODE = MAX_GPUS_PER_NODE * MAX_SHARES_PER_GPU
"""What one GPU resource (`nvidia.com/gpu`, `nvidia.com/mig-*`, `amd.com/gpu`) may count on a node."""
LABEL_BOUNDS = {
    "nvidia.com/gpu.count": (MAX_GPUS_PER_NODE, "GPUs"),
    "nvidia.com/gpu.replicas": (MAX_SHARES_PER_GPU, "time-slicing replicas per GPU"),
    "nvidia.com/gpu.memory": (1 << 20, "MiB of memory per GPU"),  # 1 TiB, 3.5x a B300's 288 GB
}
COMPUTE_PARTITIONS = {"spx": 1, "dpx": 2, "qpx": 4}
"""Partitions per GPU of each AMD compute mode; `cpx` is one per XCD (`GpuModel.xcds`)."""
MEMORY_PARTITIONS = {"nps1": 1, "nps2": 2, "nps4": 4}
PCIE_DOMAINS_LABEL = "egs.io/gpu-pcie-domains"
"""How many PCIe roots (or NUMA nodes) a node's GPUs are split over, in index order; unset: one."""
RDMA_LABELS = (
    "egs.io/rdma",
    "feature.node.kubernetes.io/rdma.available",
    "feature.node.kubernetes.io/rdma.capable",
    "feature.node.kubernetes.io/pci-15b3.present",
)
"""Labels (value `true`) saying a node's network does RDMA (InfiniBand or RoCE): EGS's own, the
NodeFeatureRule names NFD's `rdma` feature source publishes, and an NVIDIA/Mellanox (PCI vendor
15b3) NIC that NFD found. Only such nodes take a replica split over nodes."""
PARTITIONED_MODES = tuple(
    f"{c}_{m}" for c in (*COMPUTE_PARTITIONS, "cpx") for m in MEMORY_PARTITIONS if (c, m) != ("spx", "nps1")
)
"""The AMD compute x memory modes that split a GPU (all but spx_nps1), as the labeller writes them."""
HAMI_REGISTER = "hami.io/node-nvidia-register"
"""The node annotation HAMi's NVIDIA device plugin writes: a JSON list of its devices (`id`: the UUID,
`index`: NVML's, omitted when 0), Project-HAMi/HAMi pkg/device/devices.go `MarshalNodeDevices`."""
_AMD_MODE = re.compile(r"^(spx|dpx|qpx|cpx)_(nps[124])$")
_AMD_VRAM = re.compile(r"^(\d+)G$")


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


def unrenderable_sharing(by_class: Mapping[str, str], catalog: Catalog) -> str | None:
    """The first class configured to share AMD GPUs other than whole (AMD's are split by partitions,
    which the node says): placement could plan it, but no manifest can ask for it (`scheduler.manifests`),
    so `egs plan` and the controller refuse it when they read it, not for every replica placed there."""
    for name, mechanism in by_class.items():
        if name in catalog and catalog.get(name).vendor == "amd" and mechanism != "exclusive":
            return name
    return None


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
    """The domain it does tensor parallelism in with others: its peer links' (`node/nvlink0`, a
    clique id) or its PCIe root's (`node/pcie0`)."""
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
    """The MIG instances (or AMD partitions) of one profile on a node."""

    profile: MigProfile
    count: int
    used: int = 0
    resource: str = ""
    """The extended resource one instance is requested as (`nvidia.com/mig-1g.10gb`, `amd.com/gpu`)."""

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
    rdma: bool = False
    """Whether its network does RDMA (`RDMA_LABELS`), or it shares an NVLink clique with others:
    what a replica over several nodes needs."""
    pcie_domains: int | None = None
    """PCIe roots its GPUs are split over as labelled (`PCIE_DOMAINS_LABEL`); None: not labelled,
    taken as one."""
    devices: tuple[tuple[str, int], ...] = ()
    """(device id, GPU index) of the devices the node or its pods name: the UUIDs HAMi registers
    (`HAMI_REGISTER`), and those `autoscaler.pods.with_devices` adds; what a pod's device
    annotations are read against."""

    def with_gpus(self, gpus: tuple[Gpu, ...]) -> NodeGpus:
        """This node with `gpus`, as `dataclasses.replace` makes it (no field is computed) in a fifth of its time."""
        node = object.__new__(NodeGpus)
        node.__dict__.update(self.__dict__)
        node.__dict__["gpus"] = gpus
        return node

    def device(self, device_id: str) -> int | None:
        """The index of the GPU `device_id` names, None when nothing says."""
        return next((i for d, i in self.devices if d == device_id), None)

    @property
    def schedulable(self) -> bool:
        return self.ready and not self.cordoned

    def available_mib(self, gpu: GpuRoom) -> int:
        """VRAM a new replica may take on `gpu` under this node's sharing mechanism: exclusive
        sharing (and MIG nodes' unsplit GPUs) hand out idle GPUs only; time-slicing also stops at
        the device plugin's replicas."""
        if self.sharing in ("exclusive", "mig", "partition"):
            return gpu.vram_mib if gpu.holders == 0 else 0
        if self.sharing == "timeslice" and gpu.holders >= self.timeslice_replicas:
            return 0
        return gpu.free_mib


@dataclass(frozen=True)
class SkippedNode:
    """A GPU node the inventory cannot use, and why."""

    node: str
    reason: str
    ready: bool = True
    """Whether it says Ready (or its status cannot be read): a replica there stays only while it does."""


MEMO_HELD = 8_192
"""Entries `Inventory.memo` holds at most: four for each node of a 2,000-node fleet. A decide step's inventories add
a few dozen to the 1,750 nodes of reconcile.py's fleet (1.11 a node at most, consolidation on); the API's capacity,
allocated again at each POST until its next rebuild, adds the nodes each answer takes GPUs of (1,700 on its first,
one a POST after), and the memo keeps every node it replaced alive until it is emptied."""


@dataclass(frozen=True)
class Inventory:
    """The GPU nodes of a cluster; `where` and `schedulable` return a narrower inventory."""

    nodes: tuple[NodeGpus, ...]
    skipped: tuple[SkippedNode, ...] = ()
    memo: dict[int, tuple[NodeGpus, object]] = field(default_factory=dict, compare=False, repr=False)
    """What the placement engines work out of one node before they place anything (`scheduler.fleet`), by the
    node's id, each kept with its node (an id names one object only while it lives): shared by the inventories
    made from this one (`where`, `allocated`), whose nodes are mostly this one's, so that a decide step's ten
    scheduler calls do not each read 1,750 nodes again. Emptied past `MEMO_HELD` entries (`allocated`)."""

    def __iter__(self) -> Iterator[NodeGpus]:
        return iter(self.nodes)

    @property
    def standing(self) -> frozenset[str]:
        """The nodes skipped for a label that cannot be read but Ready: not gone, so the replicas bound and
        the GPUs promised there stand, while nothing new is placed there."""
        return frozenset(s.node for s in self.skipped if s.ready)

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

    def digest(self, apart: Collection[str] = ()) -> int:
        """A digest of what a placement over this inventory finds: each node as it stands (what its GPUs hold,
        whether it takes replicas), and the nodes set `apart` (where the caller places nothing). Equal while
        nothing that decides a fit changed: what a search found on it holds as long (consolidation's blocked move,
        a template rollout that waits for room). A hash, so kept in memory only, never written."""
        return hash((self.nodes, frozenset(apart)))

    def allocated(self, allocations: Iterable[Allocation]) -> Inventory:
        """This inventory with `allocations` taken as well (`InventoryError` where one cannot be). One on a
        skipped node takes nothing: that node's GPUs are not counted, so there is nothing to take them from
        (a replica still runs there: the node did not go, its labels cannot be read)."""
        by_name = {n.node: n for n in self.nodes}
        skipped = {s.node for s in self.skipped}
        for i, allocation in enumerate(allocations):
            if allocation.node in skipped:
                continue
            if allocation.node not in by_name:
                raise InventoryError(f"{field_path('allocations', i)}.node: no usable GPU node {allocation.node!r}")
            try:
                by_name[allocation.node] = _allocate(by_name[allocation.node], allocation)
            except InventoryError as e:  # the path formatted only here: most allocations are taken
                raise InventoryError(field_path("allocations", i) + e.message) from None
        if len(self.memo) > MEMO_HELD:
            self.memo.clear()
        return Inventory(tuple(by_name[n.node] for n in self.nodes), self.skipped, self.memo)


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


def held_by(placement: Placement) -> tuple[Allocation, ...]:
    """What a placed replica holds on each of its nodes, as the allocations of a running one."""
    return tuple(
        Allocation(w.node, mig=w.mig_profile, owner=placement.request)
        if w.mig_profile
        else Allocation(w.node, w.gpus, placement.vram_mib_per_gpu, sharing=placement.sharing, owner=placement.request)
        for w in placement.workers
    )


def build_inventory(
    nodes: list[dict[str, Any]],
    catalog: Catalog,
    allocations: Iterable[Allocation] = (),
    sharing: SharingPolicy | None = None,
    strict: bool = True,
) -> Inventory:
    """The inventory of `nodes` (Node dicts) with `allocations` subtracted.

    `strict` (a file a user gives `egs plan`): a node the schema rejects raises `InventoryError`.
    Otherwise (the controller, reading a live cluster) such a node is skipped with the error as its
    reason and the rest of the fleet is read: one Node labelled `nvidia.com/gpu.replicas: "two"`
    must not stop every endpoint's placement."""
    policy = sharing or SharingPolicy()
    for name, mechanism in policy.by_class.items():
        if name not in catalog:
            raise InventoryError(f"sharing.by_class.{name}: no GPU class {name!r} in the catalogue")
        if mechanism == "mig" and not catalog.get(name).mig_profiles:
            raise InventoryError(f"sharing.by_class.{name}: {name} has no MIG profiles")

    if not isinstance(nodes, list):
        check(nodes, "nodes.schema.json", InventoryError, "nodes", at=("items",))
    read: list[NodeGpus] = []
    skipped: list[SkippedNode] = []
    seen: set[str] = set()
    for i, raw in enumerate(nodes):
        reading = _reading(raw)
        try:
            if reading.refusal is not None:
                raise InventoryError(reading.refusal)
            name = raw["metadata"]["name"]
            if name in seen:
                raise InventoryError(f"items[0].metadata.name: duplicate node name {name!r}")
        except InventoryError as e:
            if strict:
                raise InventoryError(_renumbered(e.message, i)) from e
            skipped.append(SkippedNode(_node_name(raw, i), e.message.removeprefix("items[0]."), reading.ready))
            continue
        seen.add(name)
        result = reading.node(raw, catalog, policy)
        if isinstance(result, NodeGpus):
            read.append(result)
        elif result is not None:
            skipped.append(result)
    return Inventory(nodes=tuple(read), skipped=tuple(skipped)).allocated(allocations)


def _says_ready(raw: Any) -> bool:
    """Whether a Node's Ready condition is True; a status that cannot be read is taken as Ready (a node
    skipped for it keeps its replicas, as one skipped for a label does: nothing says it went)."""
    try:
        conditions = (raw.get("status") or {}).get("conditions") or ()
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    except AttributeError:
        return True


@dataclass
class _Reading:
    """What one Node's JSON text says, remembered by that text (`_reading`): the checks' answers, and the node as
    last read with a catalogue and sharing policy, read again only with another. A Node seldom changes: at 1,750
    nodes the schema check was 0.45 s of a 1 s decide step, and reading them 0.06-0.07 s of a serving loop's."""

    refusal: str | None
    """Why no node is read from it (checked as `items[0]`): the first field the node schema rejects, or else a
    count no node can have (`_refuse_impossible_counts`)."""
    ready: bool
    read: tuple[Catalog, SharingPolicy, NodeGpus | SkippedNode | None] | None = None

    def node(self, raw: dict[str, Any], catalog: Catalog, policy: SharingPolicy) -> NodeGpus | SkippedNode | None:
        """`_node` of `raw` (this reading's text), a skipped one with its readiness."""
        last = self.read
        if last is not None and last[0] is catalog and last[1] == policy:
            return last[2]
        result = _node(raw, catalog, policy)
        if isinstance(result, SkippedNode):
            result = replace(result, ready=self.ready)
        self.read = (catalog, policy, result)
        return result


@by_json_text(held=8_192)
def _reading(raw: Any) -> _Reading:
    """What `raw` says (`_Reading`), remembered by its JSON text (the 8,192 Nodes read last). A reading holds
    its node as read (about 2.3 kB for 8 GPUs), and a Node's text changes at each status report of its kubelet:
    at 65,536 a 1,750-node fleet filled the memory in about three hours (150 MB) with readings of texts gone.
    8,192 keeps every Node of a fleet up to that size between loops, in at most about 19 MB."""
    refusal: str | None = None
    try:
        check([raw], "nodes.schema.json", InventoryError, "nodes", at=("items",))
        _refuse_impossible_counts(raw, 0)
    except InventoryError as e:
        refusal = e.message
    return _Reading(refusal, _says_ready(raw))


def _renumbered(message: str, i: int) -> str:
    """A message about `items[0]` (a node checked alone) as one about `items[i]`."""
    return message.replace("items[0]", f"items[{i}]", 1)


def _node_name(raw: Any, i: int) -> str:
    meta = raw.get("metadata") if isinstance(raw, dict) else None
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) and name else f"items[{i}]"


def _refuse_impossible_counts(raw: dict[str, Any], i: int) -> None:
    """Refuse a label or GPU resource no node can have (`nvidia.com/gpu.count: 100000000`): the
    inventory makes one object per GPU, so an absurd count is memory and time before it is a plan."""
    name = raw["metadata"]["name"]
    labels = raw["metadata"].get("labels") or {}
    for label, (most, what) in LABEL_BOUNDS.items():
        if label in labels and int(labels[label]) > most:
            where = field_path("items", i, "metadata", "labels", label)
            raise InventoryError(f"{where}: node {name!r} says {labels[label]} {what}; a node has at most {most}")
    status = raw.get("status") or {}
    for key in ("allocatable", "capacity"):
        for resource, amount in (status.get(key) or {}).items():
            where = field_path("items", i, "status", key, resource)
            if _is_gpu(resource) and _devices(amount, where) > MAX_DEVICES_PER_NODE:
                raise InventoryError(
                    f"{where}: node {name!r} says {amount} devices; a node has at most {MAX_DEVICES_PER_NODE}"
                )


def _node(raw: dict[str, Any], catalog: Catalog, policy: SharingPolicy) -> NodeGpus | SkippedNode | None:
    name = raw["metadata"]["name"]
    labels: dict[str, str] = raw["metadata"].get("labels") or {}
    spec, status = raw.get("spec") or {}, raw.get("status") or {}
    quantities = status.get("allocatable") or status.get("capacity") or {}
    resources = {k: quantity.count(v) for k, v in quantities.items() if _is_gpu(k)}
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
    registered = _registered(raw["metadata"].get("annotations") or {})
    if model.vendor == "amd":
        amd = _amd_gpus(model, labels, resources)
        if isinstance(amd, str):
            return SkippedNode(name, amd)
        whole, physical, mig, memory = amd
        labelled = "partition" if mig else None
    else:
        single = _single_mig_profile(labels)
        counts = {single: resources.get("nvidia.com/gpu", 0)} if single else _mig_counts(resources)
        unknown = sorted(p for p in counts if model.mig_profile(p) is None)
        if unknown:
            return SkippedNode(name, f"{model.name} has no MIG profile {unknown[0]} in the catalogue")
        resource = "nvidia.com/gpu" if single else _MIG_RESOURCE + "{}"
        profiles = {p: profile for p in counts if (profile := model.mig_profile(p))}
        mig = tuple(MigSlots(profile, counts[p], resource=resource.format(p)) for p, profile in profiles.items())
        if single:
            whole, physical = 0, math.ceil(mig[0].count / mig[0].profile.max_instances)
        else:
            # HAMi's device plugin advertises each GPU `deviceSplitCount` times (10 by default) with no time-slicing
            # label, and a node may say more than it has (`1e3`): it never has more whole GPUs than physical ones.
            advertised = sum(v for k, v in resources.items() if k in _GPU_RESOURCES) // replicas
            physical = int(labels.get("nvidia.com/gpu.count", len(_within(registered, advertised)) or advertised))
            whole = min(advertised, physical)
        memory = int(labels["nvidia.com/gpu.memory"]) if "nvidia.com/gpu.memory" in labels and not single else 0
        labelled = "mig" if mig and not whole else "timeslice" if replicas > 1 else None
    clique = labels.get("nvidia.com/gpu.clique")
    pcie_domains = _pcie_domains(labels, whole)
    if isinstance(pcie_domains, str):
        return SkippedNode(name, pcie_domains)
    domain = _domain(name, model, clique, whole, pcie_domains or 1)
    return NodeGpus(
        node=name,
        model=model,
        gpus=tuple(Gpu(i, memory or model.vram_mib, domain(i)) for i in range(whole)),
        physical_gpus=physical,
        mig=mig,
        # A partitioned GPU is split in hardware, whatever sharing is configured for the class.
        sharing="partition" if labelled == "partition" else policy.for_class(model.name, labelled),
        timeslice_replicas=replicas,
        ready=_says_ready(raw),
        cordoned=spec.get("unschedulable", False),
        taints=tuple(Taint(t["key"], t["effect"], t.get("value", "")) for t in spec.get("taints", ())),
        clique=clique,
        rdma=bool(clique) or any(labels.get(label, "").lower() == "true" for label in RDMA_LABELS),
        pcie_domains=pcie_domains,
        devices=_within(registered, whole),
    )


def _registered(annotations: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    """(UUID, index) of the GPUs HAMi's device plugin registers on the node; none when the annotation is
    absent or cannot be read (HAMi's older `:`-separated form has no index), or names an index twice: the pods'
    shares are then placed as inferred, and a wrong index would be worse than none."""
    try:
        listed = json.loads(str(annotations.get(HAMI_REGISTER) or "[]"))
        found = [(str(d["id"]), int(d.get("index", 0))) for d in listed]
    except (ValueError, TypeError, KeyError, AttributeError):
        return ()
    indexes = [i for _, i in found]
    if len(set(indexes)) != len(indexes) or not all(i >= 0 for i in indexes):
        return ()
    return tuple(found)


def _within(registered: tuple[tuple[str, int], ...], gpus: int) -> tuple[tuple[str, int], ...]:
    """The registered GPUs where every index is one of the node's `gpus`, else none (as `_registered`)."""
    return registered if all(i < gpus for _, i in registered) else ()


def _devices(value: Any, where: str) -> int:
    try:
        return quantity.count(value)
    except ValueError as e:
        raise InventoryError(f"{where}: {e}; a GPU resource counts whole devices") from e


def _pcie_domains(labels: Mapping[str, str], gpus: int) -> int | str | None:
    """The node's labelled PCIe domains (None when not labelled), or why the label cannot be used."""
    value = labels.get(PCIE_DOMAINS_LABEL)
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1 or (gpus and gpus % int(value)):
        return f"{PCIE_DOMAINS_LABEL}={value} is not a number of equal GPU groups (the node has {gpus} GPUs)"
    return int(value)


def _is_gpu(resource: str) -> bool:
    return resource in _GPU_RESOURCES or resource.startswith(_MIG_RESOURCE) or _is_amd_mode(resource)


def _amd_gpus(
    model: GpuModel, labels: Mapping[str, str], resources: Mapping[str, int]
) -> tuple[int, int, tuple[MigSlots, ...], int] | str:
    """(whole GPUs, physical GPUs, partitions, VRAM per whole GPU) of an AMD node, or why it cannot
    be used. Partitions come from `amd.com/<mode>` resources (naming strategy `mixed`), or from
    `amd.com/gpu` on a node the labeller marks partitioned (strategy `single`). Under `mixed`
    naming even whole GPUs are advertised by mode (`amd.com/spx_nps1`): they become one-per-GPU
    instances, requested by that name."""
    by_mode = {k.removeprefix("amd.com/"): v for k, v in resources.items() if _is_amd_mode(k) and v}
    whole = resources.get("amd.com/gpu", 0)
    mode = labels.get(AMD_PARTITION_LABEL, "spx_nps1").lower()
    if whole and mode != "spx_nps1":
        by_mode[mode] = by_mode.get(mode, 0) + whole
        whole = 0
    vram = _amd_vram_mib(labels)
    slots: list[MigSlots] = []
    physical = 0
    for name, count in sorted(by_mode.items()):
        parts = partitions_per_gpu(model, name)
        if isinstance(parts, str):
            return parts
        memory = model.vram_mib // parts
        profile = MigProfile(name, min(memory, vram or memory), parts, kind="partition")
        resource = "amd.com/gpu" if name == mode and resources.get("amd.com/gpu") else f"amd.com/{name}"
        slots.append(MigSlots(profile, count, resource=resource))
        physical += math.ceil(count / parts)
    return whole, physical + whole, tuple(slots), min(vram, model.vram_mib) if vram and not slots else 0


def partitions_per_gpu(model: GpuModel, mode: str) -> int | str:
    """How many partitions one GPU of `model` makes in AMD compute x memory `mode` (`cpx_nps4`), each
    with its share of the VRAM; or why `model` cannot be split so."""
    match = _AMD_MODE.match(mode)
    if match is None:
        return f"{AMD_PARTITION_LABEL}={mode} is not a compute x memory mode such as cpx_nps4"
    parts = COMPUTE_PARTITIONS.get(match[1]) or model.xcds or 0
    if not model.xcds or model.xcds < 2 or parts > model.xcds:
        return f"{model.name} cannot be partitioned {mode} (the catalogue gives it no compute dies to split)"
    if parts % MEMORY_PARTITIONS[match[2]]:
        return f"{mode}: {match[2].upper()} needs a multiple of {MEMORY_PARTITIONS[match[2]]} compute partitions"
    return parts


def _is_amd_mode(resource: str) -> bool:
    return resource.startswith("amd.com/") and bool(_AMD_MODE.match(resource.removeprefix("amd.com/")))


def _amd_vram_mib(labels: Mapping[str, str]) -> int:
    """The smallest device memory the AMD labeller reports (`amd.com/gpu.vram=192G`, or count-style
    `beta.amd.com/gpu.vram.24G=64`), in MiB; 0 when it reports none. It rounds to whole GiB, so it
    is used only where it is below the catalogue's figure."""
    values = [v for k, v in labels.items() if k in ("amd.com/gpu.vram", "beta.amd.com/gpu.vram")]
    values += [k.rsplit(".", 1)[1] for k in labels if k.startswith(("amd.com/gpu.vram.", "beta.amd.com/gpu.vram."))]
    sizes = [int(m[1]) * 1024 for v in values if (m := _AMD_VRAM.match(v))]
    return min(sizes, default=0)


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


def _domain(node: str, model: GpuModel, clique: str | None, gpus: int, pcie_domains: int) -> Callable[[int], str]:
    """GPU index -> the domain it does tensor parallelism in: its NVLink/xGMI domain (or clique),
    or for a class without peer links its share of the node's `pcie_domains` PCIe roots."""

    def of(index: int) -> str:
        if not model.peer_links:
            return f"{node}/pcie{index * pcie_domains // gpus}"
        if clique:
            return clique
        return f"{node}/{model.interconnect}{index // model.link_domain_size if model.link_domain_size else 0}"

    return of


def _allocate(node: NodeGpus, allocation: Allocation) -> NodeGpus:
    """`node` with `allocation` taken from it; an allocation that cannot be there raises, its message the field's
    path within the allocation (`Inventory.allocated` puts the allocation's before it). Called for every replica a
    loop reads (3,872 at 1,000 endpoints): a GPU is made anew, not by `dataclasses.replace` (twice as long)."""
    if allocation.mig is not None:
        slots = list(node.mig)
        i = next((k for k, s in enumerate(slots) if s.profile.name == allocation.mig), None)
        if i is None:
            raise InventoryError(f".mig: node {node.node} has no {allocation.mig} instances")
        if slots[i].used + allocation.count > slots[i].count:
            raise InventoryError(f".count: node {node.node} has {slots[i].free} free {allocation.mig} instances")
        slots[i] = replace(slots[i], used=slots[i].used + allocation.count)
        return replace(node, mig=tuple(slots))
    gpus = list(node.gpus)
    for index in allocation.gpus:
        if index >= len(gpus):
            raise InventoryError(f".gpus: node {node.node} has no GPU {index} (it has {len(gpus)})")
        gpu = gpus[index]
        whole = allocation.sharing == "exclusive"
        if gpu.whole or (whole and gpu.holders):
            raise InventoryError(f".gpus: GPU {index} of node {node.node} cannot be both held whole and shared")
        used = gpu.vram_mib if whole else gpu.used_mib + allocation.vram_mib
        if used > gpu.vram_mib:
            raise InventoryError(
                f".vram_mib: GPU {index} of node {node.node} would hold {used} of its {gpu.vram_mib} MiB"
            )
        gpus[index] = Gpu(gpu.index, gpu.vram_mib, gpu.domain, used, gpu.holders + 1, whole)
    return node.with_gpus(tuple(gpus))
