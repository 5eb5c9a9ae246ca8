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
  Which GPUs of the node the device plugin gave it is not in the
  pod: the lowest free ones are taken, which keeps the count right (not the NVLink domain). A pod
  asking more than is free takes what is free: the listing may be a moment old. Quantities are read
  in every form the API server writes (`common.quantity`: `40k`, `1Ki`). With `placed` (the pods
  whose replicas are already placed: the incumbents), EGS's other pods count too: a replaced
  workload's pods hold their GPUs until they are gone;
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

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from common import quantity
from scheduler.catalog import Catalog, GpuModel
from scheduler.inventory import Allocation, Inventory, NodeGpus
from scheduler.manifests import HAMI_GPU_MEMORY, KAI_GPU_MEMORY, KAI_NUM_DEVICES

MANAGED_BY = ("app.kubernetes.io/managed-by", "egs")
REQUEST_LABEL = "egs.io/request"
"""The endpoint's DNS label on every pod of its workload (`scheduler.manifests`)."""
SERVING = ("server", "leader")
"""`app.kubernetes.io/component` of the pods that serve one replica each (a Deployment's pod, an
LWS group's leader)."""
PRODUCT_LABELS = ("nvidia.com/gpu.product", "amd.com/gpu.product-name")
KAI_GPU_FRACTION = "gpu-fraction"
"""KAI Scheduler's other way to share a GPU: a fraction of one (`"0.5"`), on each requested device."""
GPU_RESOURCE_PREFIXES = ("nvidia.com/", "amd.com/")


def ours(pod: Mapping[str, Any]) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return bool(labels.get(MANAGED_BY[0]) == MANAGED_BY[1])


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
    taken: list[Allocation] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        node_name = (pod.get("spec") or {}).get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        skipped = ours(pod) if placed is None else (meta.get("namespace", "default"), meta.get("name")) in placed
        if skipped or node_name not in by_name or phase not in ("Pending", "Running"):
            continue
        for allocation in holds(by_name[node_name], pod):
            by_name[node_name] = Inventory((by_name[node_name],)).allocated([allocation]).nodes[0]
            taken.append(allocation)
    return taken


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


def holds(node: NodeGpus, pod: Mapping[str, Any]) -> list[Allocation]:
    """What `pod` holds on `node`, within what is free there (all it asks for, when it fits there: the
    churn benchmark's scheduler binds a pod where this covers its request)."""
    asked = requests(pod)
    out: list[Allocation] = []
    for resource, n in asked.items():
        slot = next((s for s in node.mig if s.resource == resource), None)
        if slot is not None:
            if min(n, slot.free) > 0:
                out.append(Allocation(node.node, mig=slot.profile.name, count=min(n, slot.free), owner="foreign"))
        elif resource in ("nvidia.com/gpu", "amd.com/gpu"):
            out += _whole_or_shared(node, n, asked.get(HAMI_GPU_MEMORY, 0))
    kai = kai_share(pod)
    if kai is not None and not out:
        out += _memory(node, *kai, sharing="kai")
    return out


def _whole_or_shared(node: NodeGpus, n: int, hami_mib: int) -> list[Allocation]:
    if node.sharing == "timeslice":
        # `n` replicas of the device plugin, each an even share of one GPU's VRAM (none of a GPU held whole).
        room = {g.index: node.timeslice_replicas - g.holders for g in node.gpus if not g.whole}
        out = []
        for _ in range(n):
            index = next((i for i, left in room.items() if left > 0), None)
            if index is None:
                break
            room[index] -= 1
            share = node.gpus[index].vram_mib // node.timeslice_replicas
            out.append(Allocation(node.node, (index,), share, sharing="timeslice", owner="foreign"))
        return out
    if hami_mib:
        return _memory(node, n, hami_mib, 0.0, sharing="hami")
    idle = [g.index for g in node.gpus if g.holders == 0][:n]
    return [Allocation(node.node, tuple(idle), owner="foreign")] if idle else []


def _memory(node: NodeGpus, devices: int, mib: int, fraction: float, sharing: str) -> list[Allocation]:
    """`mib` (or `fraction` of each GPU's VRAM) on `devices` GPUs that have it free, whatever the node's
    own mechanism: under exclusive sharing a GPU with any holder is taken for new replicas."""
    out: list[Allocation] = []
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
