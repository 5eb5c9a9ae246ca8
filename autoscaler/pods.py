"""The GPU pods of the cluster as the decide step reads them: who holds GPUs, who waits for them.

Part of the autoscaler's pure core. The Kubernetes adapter lists every Pending or Running pod that
asks for a GPU resource (`Cluster.gpu_pods`), as plain dicts; this module reads them three ways:

- `without_foreign_pods(inventory, pods)`: the inventory with the GPUs of pods EGS does not own taken
  off, so that placement does not plan onto them. A pod bound to a node (`spec.nodeName`) holds what
  it requests: whole GPUs (`nvidia.com/gpu`, `amd.com/gpu`), a time-slicing replica of one (a share
  of its VRAM), HAMi `nvidia.com/gpumem` on each of its GPUs, MIG instances (`nvidia.com/mig-<profile>`,
  or `nvidia.com/gpu` on a `single`-strategy node) or AMD partitions (`amd.com/<mode>`, or
  `amd.com/gpu` on a partitioned node), and KAI Scheduler's `gpu-memory` (MiB on each of
  `gpu-fraction-num-devices` GPUs) or `gpu-fraction` annotations, which ask for no resource at all.
  A share of GPU memory is where its scheduler recorded it (`placed_on`): HAMi's device annotation
  (`HAMI_DEVICES`, UUIDs the node registers, `scheduler.inventory.HAMI_REGISTER`), KAI's GPU group
  (`KAI_GPU_GROUP`, the GPU its reservation pod holds: `KAI_RESERVED`; that pod itself holds nothing
  more); `with_devices` maps what the node does not register, once per step, to NVML's index as the GPU
  exporter's series label it (`Observation.gpu_indexes`), else to an index of EGS's own. Both schedulers binpack
  such shares, so inferring their GPU put them where they are not. Where nothing is recorded (a pod
  not bound yet, another scheduler, an annotation that cannot be read: `Devices.unreadable`, which
  the decide step's caller reports) the lowest free GPUs are taken, which keeps the count right (not
  the NVLink domain). A pod asking more than is free takes what is free: the listing may be a moment
  old. Quantities are read in every form the API server writes (`common.quantity`: `40k`, `1Ki`).
  With `placed` (the pods whose replicas are already placed: the incumbents), EGS's other pods count
  too: a replaced workload's pods hold their GPUs until they are gone; a warm pool's placeholders never
  do (`placeholder`: any replica preempts them, so their node is idle and placed on);
- `stuck_replicas(pods, known)`: per endpoint (namespace, DNS label), its replicas whose pod
  kube-scheduler found no node for (`PodScheduled` False, `Unschedulable`): they wait for capacity like
  a replica the plan could not place; for the `known` endpoints (whose replicas were found stuck
  before, `decide.state.Taken`), every unbound pod: a new pod of theirs is not tried yet, and trying
  it where the old one found no room would rewrite the workload every loop;
- `foreign_waiting(pods, catalog)`: per GPU class, the GPUs each unschedulable pod EGS does not own
  waits for (the class from its node selector or node affinity on the GPU product label; a pod that
  names no class is not counted): the node autoscaler serves them too, so they queue ahead of EGS's
  waiting replicas and grow the class's need.

`endpoint_of(pod)` says which endpoint an EGS server pod serves, for per-endpoint demand.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, NamedTuple

from common import quantity
from scheduler.catalog import Catalog, GpuModel
from scheduler.inventory import Allocation, Inventory, NodeGpus
from scheduler.manifests import HAMI_GPU_MEMORY, KAI_GPU_MEMORY, KAI_NUM_DEVICES

MANAGED_BY = ("app.kubernetes.io/managed-by", "egs")
WARM_POOL = "egs.io/warm-pool"
"""The GPU class of a warm pool: an annotation on its objects, a label on its placeholder pods."""
REQUEST_LABEL = "egs.io/request"
"""The endpoint's DNS label on every pod of its workload (`scheduler.manifests`)."""
SERVING = ("server", "leader")
"""`app.kubernetes.io/component` of the pods that serve one replica each (a Deployment's pod, an
LWS group's leader)."""
PRODUCT_LABELS = ("nvidia.com/gpu.product", "amd.com/gpu.product-name")
KAI_GPU_FRACTION = "gpu-fraction"
"""KAI Scheduler's other way to share a GPU: a fraction of one (`"0.5"`), on each requested device."""
GPU_RESOURCE_PREFIXES = ("nvidia.com/", "amd.com/")
HAMI_DEVICES = ("hami.io/vgpu-devices-allocated", "hami.io/vgpu-devices-to-allocate")
"""Where HAMi's scheduler records the NVIDIA devices it gave a pod (both written at once; the device
plugin empties the second once it has allocated them): per container, `;`-terminated, each device
`UUID,Type,MiB,cores:` (Project-HAMi/HAMi pkg/device/devices.go `EncodeContainerDevices`,
`EncodePodSingleDevice`; the keys in pkg/device/nvidia/device.go)."""
KAI_GPU_GROUP = "runai-gpu-group"
"""KAI Scheduler's label naming the GPU group of a shared pod (`runai-gpu-group/<group>`, one per device,
on a pod of several) and of the reservation pod that holds that GPU (NVIDIA/KAI-Scheduler
pkg/common/constants/constants.go `GPUGroup`, set in pkg/binder/binding/resourcereservation)."""
KAI_RESERVED = "run.ai/reserve_for_gpu_index"
"""On KAI's reservation pod: the GPU it holds for its group, the UUID NVML gives it inside that pod
(pkg/resourcereservation/patcher/pod_patcher.go); an index where a scheduler wrote one."""


def ours(pod: Mapping[str, Any]) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(MANAGED_BY[0]) == MANAGED_BY[1])


def placeholder(pod: Mapping[str, Any]) -> bool:
    """A warm pool's balloon pod: it holds its node only until a replica preempts it (PriorityClass -10)."""
    return ours(pod) and WARM_POOL in ((pod.get("metadata") or {}).get("labels") or {})


def endpoint_of(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """(namespace, endpoint DNS label) of an EGS serving pod; None for any other pod."""
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    if not ours(pod) or REQUEST_LABEL not in labels or labels.get("app.kubernetes.io/component") not in SERVING:
        return None
    return str(meta.get("namespace", "default")), str(labels[REQUEST_LABEL])


def requests(pod: Mapping[str, Any]) -> dict[str, int]:
    """The GPU resources the pod's containers ask for, summed (limits where requests are absent)."""
    total: dict[str, int] = {}
    for container in (pod.get("spec") or {}).get("containers") or ():
        resources = container.get("resources") or {}
        asked = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        for name, amount in asked.items():
            if name.startswith(GPU_RESOURCE_PREFIXES):
                try:
                    total[name] = total.get(name, 0) + quantity.count(amount)
                except ValueError:
                    continue  # not a count (a GPU resource is never fractional): not read
    return total


def kai_share(pod: Mapping[str, Any]) -> tuple[int, int, float] | None:
    """(devices, MiB on each, or else the fraction of each GPU) of a pod that KAI Scheduler shares GPUs
    for by annotation; None for any other pod."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    try:
        devices = max(1, quantity.count(annotations.get(KAI_NUM_DEVICES, 1)))
        if KAI_GPU_MEMORY in annotations:
            mib = quantity.count(annotations[KAI_GPU_MEMORY])
            return (devices, mib, 0.0) if mib > 0 else None
        if KAI_GPU_FRACTION in annotations:
            fraction = float(quantity.parse(annotations[KAI_GPU_FRACTION]))
            return (devices, 0, fraction) if 0 < fraction <= 1 else None
    except ValueError:
        return None  # not a number: KAI's admission refuses such a pod, so it holds nothing
    return None


def asks_for_gpu(pod: Mapping[str, Any]) -> bool:
    """Whether the pod asks for GPUs: a GPU resource, or KAI Scheduler's annotations."""
    return bool(requests(pod)) or kai_share(pod) is not None


def unschedulable(pod: Mapping[str, Any]) -> bool:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if spec.get("nodeName") or status.get("phase") != "Pending":
        return False
    return any(
        c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable"
        for c in status.get("conditions") or ()
    )


def without_foreign_pods(
    inventory: Inventory, pods: Iterable[Mapping[str, Any]], placed: Collection[tuple[str, str]] | None = None
) -> Inventory:
    return inventory.allocated(pod_allocations(inventory, pods, placed))


def pod_allocations(
    inventory: Inventory, pods: Iterable[Mapping[str, Any]], placed: Collection[tuple[str, str]] | None = None
) -> list[Allocation]:
    """What `without_foreign_pods` takes off `inventory`, pod by pod: allocations that fit beside what
    `inventory` already holds (the decide step's incumbents, on the GPUs they hold), so that they can
    be taken off an inventory without those too."""
    by_name = {n.node: n for n in inventory}
    bound: list[tuple[str, Mapping[str, Any], dict[int, int] | None]] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        node_name = str((pod.get("spec") or {}).get("nodeName"))
        phase = (pod.get("status") or {}).get("phase")
        if placed is None:
            skipped = ours(pod)
        else:  # a warm node is free to place on: the replica's pod preempts the placeholder
            skipped = placeholder(pod) or (meta.get("namespace", "default"), meta.get("name")) in placed
        if not skipped and node_name in by_name and phase in ("Pending", "Running"):
            bound.append((node_name, pod, placed_on(by_name[node_name], pod)))
    taken: list[Allocation] = []
    # Pods whose GPUs are recorded first: one whose GPUs are inferred must not take their room.
    for node_name, pod, at in sorted(bound, key=lambda b: b[2] is None):
        for allocation in holds(by_name[node_name], pod, at):
            by_name[node_name] = Inventory((by_name[node_name],)).allocated([allocation]).nodes[0]
            taken.append(allocation)
    return taken


def _hami_value(annotations: Mapping[str, Any]) -> str | None:
    return next((str(annotations[k]) for k in HAMI_DEVICES if annotations.get(k)), None)


def _kai_groups(labels: Mapping[str, Any]) -> list[str]:
    """The GPU groups KAI labelled a pod with: `runai-gpu-group`, or one `runai-gpu-group/<group>` a device."""
    return sorted({str(v) for k, v in labels.items() if k == KAI_GPU_GROUP or k.startswith(KAI_GPU_GROUP + "/")})


def stuck_replicas(
    pods: Iterable[Mapping[str, Any]], known: Collection[tuple[str, str]] = ()
) -> dict[tuple[str, str], int]:
    stuck: dict[tuple[str, str], int] = {}
    for pod in pods:
        serves = endpoint_of(pod)
        if serves is not None and (unschedulable(pod) or (serves in known and unbound(pod))):
            stuck[serves] = stuck.get(serves, 0) + 1
    return stuck


def unbound(pod: Mapping[str, Any]) -> bool:
    """Pending on no node, and not going away."""
    spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, pod.get("metadata") or {}
    pending = status.get("phase", "Pending") == "Pending"
    return pending and not spec.get("nodeName") and not meta.get("deletionTimestamp")


def foreign_waiting(pods: Iterable[Mapping[str, Any]], catalog: Catalog) -> dict[str, tuple[int, ...]]:
    waiting: dict[str, list[int]] = {}
    for pod in pods:
        wants = None if ours(pod) or not unschedulable(pod) else waiting_for(pod, catalog)
        if wants is not None:
            waiting.setdefault(wants[0], []).append(wants[1])
    return {name: tuple(gpus) for name, gpus in waiting.items()}


def waiting_for(pod: Mapping[str, Any], catalog: Catalog) -> tuple[str, int] | None:
    """(GPU class, GPUs) a pod needs of a node, None when it selects no one class."""
    gpu = selected_class(pod, catalog)
    if gpu is None:
        return None
    asked, kai = requests(pod), kai_share(pod)
    whole = asked.get("nvidia.com/gpu", 0) + asked.get("amd.com/gpu", 0)
    return gpu.name, max(1, whole, kai[0] if kai else 0)


def selected_class(pod: Mapping[str, Any], catalog: Catalog) -> GpuModel | None:
    """The GPU class a pod requires of its node, by the product label of its node selector or its
    required node affinity (an `In` whose values all name one class: EGS's own pods list the product
    and its time-sliced `-SHARED` form); None when it names none or several."""
    spec = pod.get("spec") or {}
    found = [{k: str(v)} for k, v in (spec.get("nodeSelector") or {}).items() if k in PRODUCT_LABELS]
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in affinity.get("nodeSelectorTerms") or ():
        for e in term.get("matchExpressions") or ():
            if e.get("key") in PRODUCT_LABELS and e.get("operator") == "In":
                found += [{e["key"]: str(v)} for v in e.get("values") or ()]
    classes = {catalog.for_node_labels(labels) for labels in found}
    return classes.pop() if len(classes) == 1 else None


def holds(node: NodeGpus, pod: Mapping[str, Any], at: dict[int, int] | None) -> list[Allocation]:
    """What `pod` holds on `node`, within what is free there (all it asks for, when it fits there: the
    churn benchmark's scheduler binds a pod where this covers its request); `at`: its `placed_on(node,
    pod)`, which the caller reads once (None: nothing recorded, its GPUs are inferred)."""
    if kai_reservation(pod):
        return []
    asked = requests(pod)
    out: list[Allocation] = []
    for resource, n in asked.items():
        slot = next((s for s in node.mig if s.resource == resource), None)
        if slot is not None:
            if min(n, slot.free) > 0:
                out.append(Allocation(node.node, mig=slot.profile.name, count=min(n, slot.free), owner="foreign"))
        elif resource in ("nvidia.com/gpu", "amd.com/gpu"):
            out += _whole_or_shared(node, n, asked.get(HAMI_GPU_MEMORY, 0), at)
    kai = kai_share(pod)
    if kai is not None and not out:
        out += _memory(node, *kai, sharing="kai", at=at)
    return out


def kai_reservation(pod: Mapping[str, Any]) -> bool:
    """Whether `pod` is KAI Scheduler's reservation pod for a shared GPU: it asks for the whole GPU, so
    that no other pod gets it, while the shares of its group are what the GPU holds."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return KAI_GPU_GROUP in labels and kai_share(pod) is None and "nvidia.com/gpu" in requests(pod)


def placed_on(node: NodeGpus, pod: Mapping[str, Any]) -> dict[int, int] | None:
    """GPU index -> MiB held there (0: as the pod asks) where the pod's scheduler recorded its share on
    `node`; None where nothing is recorded, or it names a device the node does not map."""
    meta = pod.get("metadata") or {}
    annotations, labels = meta.get("annotations") or {}, meta.get("labels") or {}
    value = _hami_value(annotations)
    if value is not None:
        devices = _hami_devices(value)
        if devices is None:
            return None  # `Devices.unreadable` says so
    else:
        devices = [(group, 0) for group in _kai_groups(labels)]
    at: dict[int, int] = {}
    for device, mib in devices:
        index = node.device(device)
        if index is None or index >= len(node.gpus):
            return None
        at[index] = at.get(index, 0) + mib
    return at or None


def _hami_devices(value: str) -> list[tuple[str, int]] | None:
    """(UUID, MiB) of each device of HAMi's annotation, as HAMi's `DecodePodDevices` reads it (an entry
    without a comma is none); None when it cannot be read so."""
    out: list[tuple[str, int]] = []
    for container in value.split(";"):
        for entry in container.split(":"):
            if "," not in entry:
                continue
            fields = entry.split(",")
            if len(fields) < 4 or not fields[0] or not fields[2].isdigit() or not fields[3].lstrip("-").isdigit():
                return None
            out.append((fields[0], int(fields[2])))
    return out


class Devices(NamedTuple):
    """The inventory with the devices bound pods name mapped to its GPUs (`with_devices`), and what could
    not be mapped: plain data, which the decide step's caller reports once (`Decision.notices`)."""

    inventory: Inventory
    numbered_here: tuple[str, ...]
    """Nodes with a GPU UUID that no series maps to NVML's index: numbered by EGS."""
    unreadable: tuple[tuple[str, str], ...]
    """(namespace/name, value) of the pods whose HAMi device annotation cannot be read: their GPUs are
    inferred."""


def with_devices(
    inventory: Inventory, pods: Iterable[Mapping[str, Any]], indexes: Mapping[str, Mapping[str, int]] | None = None
) -> Devices:
    """`inventory` with the devices that bound pods name mapped to GPUs of their node, once per step so
    that the controller and the API read every pod against one map, the nodes where a UUID was numbered
    by EGS, and the pods whose HAMi annotation this reading found unreadable. Each KAI GPU group is mapped
    to the GPU its reservation pod holds; each UUID the node does not register (KAI's nodes register none)
    to NVML's index as the GPU exporter labels it (`indexes`: node -> UUID -> index, from the series that
    carry `Hostname`, `UUID` and `gpu`); where no series says, to the lowest GPU that nothing else is, the
    UUID whose oldest pod is oldest first: an index of EGS's own, which keeps the shares of one GPU
    together but moves as GPUs stop being shared, so that a share counted on it may be read on another
    GPU than its scheduler gave it."""
    named: dict[str, dict[str, str]] = {}
    groups: dict[str, dict[str, str]] = {}
    unreadable: list[tuple[str, str]] = []
    for pod in pods:
        meta, node = pod.get("metadata") or {}, str((pod.get("spec") or {}).get("nodeName") or "")
        created = str(meta.get("creationTimestamp") or "")
        annotations, labels = meta.get("annotations") or {}, meta.get("labels") or {}
        ids: list[str] = []
        if kai_reservation(pod) and annotations.get(KAI_RESERVED):
            groups.setdefault(node, {})[str(labels[KAI_GPU_GROUP])] = str(annotations[KAI_RESERVED])
            ids.append(str(annotations[KAI_RESERVED]))
        value = _hami_value(annotations) or ""
        devices = _hami_devices(value)
        if devices is None:
            unreadable.append((f"{meta.get('namespace', 'default')}/{meta.get('name')}", value))
        ids += [device for device, _ in devices or ()]
        for device in ids:
            seen = named.setdefault(node, {})
            seen[device] = min(seen.get(device, created), created)
    nodes, guessed = [], []
    for n in inventory:
        table = dict(n.devices)
        table |= {d: i for d, i in _exported(n, (indexes or {}).get(n.node, {})).items() if d not in table}
        unmapped = sorted(
            (created, device)
            for device, created in named.get(n.node, {}).items()
            if device not in table and _index(device) is None
        )
        free = [g.index for g in n.gpus if g.index not in table.values()]
        table |= {device: index for (_, device), index in zip(unmapped, free, strict=False)}
        if unmapped:
            guessed.append(n.node)
        for group, device in groups.get(n.node, {}).items():
            index = _index(device)
            index = table.get(device) if index is None else index
            if index is not None and 0 <= index < len(n.gpus):
                table[group] = index
        nodes.append(replace(n, devices=tuple(table.items())) if table else n)
    return Devices(replace(inventory, nodes=tuple(nodes)), tuple(guessed), tuple(unreadable))


def merged_indexes(
    kept: Mapping[str, Mapping[str, int]], read: Mapping[str, Mapping[str, int]], nodes: Iterable[Mapping[str, Any]]
) -> dict[str, dict[str, int]]:
    """The GPU index map after a read (node -> UUID -> NVML index), merged UUID by UUID: a read that lacks
    some of a node's series keeps their last index, unless the read gives that index to another UUID (the
    GPU was replaced). A node neither read nor listed (`nodes`, the Node objects) is dropped: an exporter
    whose `Hostname` changed with its restart leaves no map behind."""
    listed = {str((n.get("metadata") or {}).get("name")) for n in nodes}
    merged: dict[str, dict[str, int]] = {}
    for node in set(read) | (set(kept) & listed):
        fresh = dict(read.get(node, {}))
        taken = set(fresh.values())
        last = {uuid: i for uuid, i in kept.get(node, {}).items() if uuid not in fresh and i not in taken}
        merged[node] = last | fresh
    return merged


GPU_INDEXES_NOTE = "egs.io/gpu-indexes"
"""The Lease annotation in which the leader leaves the index maps of KAI's nodes (`carried`) to the replica
that leads next: one that starts while Prometheus is down has no other, and numbered KAI's shares by EGS's
rule, off the GPUs the API (which had the map) answered beside them, so that a 201 found no room."""
CARRIED_MAX_CHARS = 100_000
"""At most what the note holds (about 2,000 GPUs): a Lease's annotations are 256 KiB in all, and a renewal
refused for its size would cost the leadership. Past it nothing is carried: numbered by EGS, as before."""


def carried(indexes: Mapping[str, Mapping[str, int]], inventory: Inventory) -> str:
    """The index maps of `inventory`'s KAI nodes (whose shares are read by UUID: `with_devices`), as the
    Lease's `GPU_INDEXES_NOTE` carries them; "" past `CARRIED_MAX_CHARS`."""
    kept = {n.node: dict(indexes[n.node]) for n in inventory if n.sharing == "kai" and indexes.get(n.node)}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    return text if len(text) <= CARRIED_MAX_CHARS else ""


def read_carried(text: str | None) -> dict[str, dict[str, int]]:
    """The index maps a `carried` note holds; {} where it holds none that can be read."""
    try:
        raw = json.loads(text or "{}")
        return {str(node): {str(d): int(i) for d, i in m.items()} for node, m in raw.items()}
    except (ValueError, TypeError, AttributeError):
        return {}


def _exported(node: NodeGpus, indexes: Mapping[str, int]) -> dict[str, int]:
    """The UUID -> index pairs the exporter gives for `node` that name one of its GPUs each: an index
    out of range, or given to two UUIDs (a GPU replaced while its old series stands), says nothing."""
    held = Counter(indexes.values())
    return {d: i for d, i in indexes.items() if 0 <= i < len(node.gpus) and held[i] == 1}


def _index(device: str) -> int | None:
    """The GPU index a device value is, where it is a number (KAI writes -1 while it knows none)."""
    try:
        return int(device)
    except ValueError:
        return None


def _whole_or_shared(node: NodeGpus, n: int, hami_mib: int, at: Mapping[int, int] | None) -> list[Allocation]:
    if node.sharing == "timeslice":
        # `n` replicas of the device plugin, each an even share of one GPU's VRAM (none of a GPU held whole), on a
        # GPU whose VRAM the replicas there left free first, and within what is free: a replica may hold more of
        # a GPU than its share, and a quarter of its GPU beside it failed the controller's loop (churn seed 306).
        room = {g.index: node.timeslice_replicas - g.holders for g in node.gpus if not g.whole}
        free = {g.index: g.free_mib for g in node.gpus}
        share = {g.index: g.vram_mib // node.timeslice_replicas for g in node.gpus}
        out = []
        for _ in range(n):
            candidates = [i for i, left in room.items() if left > 0 and free[i] > 0]
            index = next((i for i in candidates if free[i] >= share[i]), next(iter(candidates), None))
            if index is None:
                break
            room[index] -= 1
            held = min(share[index], free[index])
            free[index] -= held
            out.append(Allocation(node.node, (index,), held, sharing="timeslice", owner="foreign"))
        return out
    if hami_mib:
        return _memory(node, n, hami_mib, 0.0, sharing="hami", at=at)
    idle = [g.index for g in node.gpus if g.holders == 0][:n]
    return [Allocation(node.node, tuple(idle), owner="foreign")] if idle else []


def _memory(
    node: NodeGpus, devices: int, mib: int, fraction: float, sharing: str, at: Mapping[int, int] | None = None
) -> list[Allocation]:
    """`mib` (or `fraction` of each GPU's VRAM) on `devices` GPUs that have it free, whatever the node's
    own mechanism: under exclusive sharing a GPU with any holder is taken for new replicas. Where the
    scheduler recorded the GPUs (`at`, with the MiB it gave on each), there, within what is free."""
    out: list[Allocation] = []
    if at is not None:
        for index, held in sorted(at.items()):
            g = node.gpus[index]
            need = min(held or mib or int(g.vram_mib * fraction), g.free_mib)
            if not g.whole and need > 0:
                out.append(Allocation(node.node, (index,), need, sharing=sharing, owner="foreign"))
        return out
    for g in node.gpus:
        need = mib or int(g.vram_mib * fraction)
        if len(out) < devices and not g.whole and 0 < need <= g.free_mib:
            out.append(Allocation(node.node, (g.index,), need, sharing=sharing, owner="foreign"))
    return out


def pods_by_endpoint(pods: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """(namespace, endpoint DNS label) -> the names of its serving pods."""
    found: dict[tuple[str, str], list[str]] = {}
    for pod in pods:
        serves = endpoint_of(pod)
        if serves is not None:
            found.setdefault(serves, []).append(str((pod.get("metadata") or {}).get("name", "")))
    return found
