"""GPU cost per team: how many GPUs each namespace's pods hold, per GPU class, and the fleet's GPUs.

Part of the autoscaler's pure core: Node and Pod dicts in (as the Kubernetes adapter lists them),
numbers out. The controller exports them as `egs_namespace_gpus{namespace,gpu_class}`,
`egs_gpu_class_gpus{gpu_class}` and `egs_gpu_class_price_usd_per_hour{gpu_class}`; the recording
rules (`alerts/rules.py`) multiply them into each namespace's cost and each class's idle cost.

Usual tools charge a pod that holds a quarter of a GPU for the whole GPU. Here a pod is charged for
what it holds, every pod of every namespace (EGS's servers and anyone else's):

- whole GPUs (`nvidia.com/gpu`, `amd.com/gpu` on an unshared node): 1 each;
- a share of a GPU's memory: a time-slicing replica (1 / `nvidia.com/gpu.replicas`), HAMi's
  `nvidia.com/gpumem` MiB on each of its GPUs, KAI Scheduler's `gpu-memory` annotation (MiB per
  device) or `gpu-fraction`, times `gpu-fraction-num-devices`: that memory over the GPU's;
- a MIG instance or an AMD partition: its share of the GPU (`MigProfile.gpu_share`), as placement
  prices it.

Only Ready nodes count, for the fleet and for the pods on them, so that the namespaces' GPUs plus the
idle GPUs are the fleet's GPUs: a node that is not Ready is neither billed to a team nor idle here. A
share is capped at one GPU per GPU asked for; a node whose pods hold more than it has (a listing a
moment old) is not scaled down: the idle rule clamps at zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from autoscaler.pods import kai_share, requests
from scheduler.catalog import Catalog
from scheduler.inventory import NodeGpus, SharingPolicy, build_inventory
from scheduler.manifests import HAMI_GPU_MEMORY

HOLDING_PHASES = ("Pending", "Running")
"""A pod bound to a node holds its GPUs from binding (Pending, pulling its image) until it ends."""


@dataclass(frozen=True)
class Holdings:
    """GPUs held per (namespace, GPU class), GPUs per class on Ready nodes, and each class's price."""

    namespace_gpus: Mapping[tuple[str, str], float]
    class_gpus: Mapping[str, int]
    price_usd_per_hour: Mapping[str, float]
    """USD per GPU-hour of each class that has a Ready node (the catalogue's, or the configured price)."""


def holdings(
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    catalog: Catalog,
    sharing: Mapping[str, str] | None = None,
) -> Holdings:
    """What each namespace's pods hold on the Ready GPU nodes of `nodes` (Node dicts; `sharing`: GPU class
    -> mechanism, as the decide step reads them). A node the inventory cannot read is left out."""
    policy = SharingPolicy(dict(sharing or {}))
    inventory = build_inventory([dict(n) for n in nodes], catalog, sharing=policy, strict=False)
    ready: dict[str, NodeGpus] = {n.node: n for n in inventory if n.ready}
    class_gpus: dict[str, int] = {}
    for gpu_node in ready.values():
        class_gpus[gpu_node.model.name] = class_gpus.get(gpu_node.model.name, 0) + gpu_node.physical_gpus
    held: dict[tuple[str, str], float] = {}
    for pod in pods:
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = ready.get(str(node_name)) if node_name else None
        if node is None or (pod.get("status") or {}).get("phase") not in HOLDING_PHASES:
            continue
        gpus = gpus_held(pod, node)
        if gpus > 0:
            key = (str((pod.get("metadata") or {}).get("namespace", "default")), node.model.name)
            held[key] = held.get(key, 0.0) + gpus
    prices = {name: catalog.get(name).price_per_hour for name in class_gpus}
    return Holdings(held, class_gpus, prices)


def gpus_held(pod: Mapping[str, Any], node: NodeGpus) -> float:
    """The GPUs `pod` holds on `node`, a shared GPU counted by the share of it the pod holds."""
    asked = requests(pod)
    vram = node.gpus[0].vram_mib if node.gpus else node.model.vram_mib
    total = 0.0
    for resource, count in asked.items():
        slot = next((s for s in node.mig if s.resource == resource), None)
        if slot is not None:
            total += count * slot.profile.gpu_share
        elif resource in ("nvidia.com/gpu", "amd.com/gpu"):
            if asked.get(HAMI_GPU_MEMORY):
                total += count * min(1.0, asked[HAMI_GPU_MEMORY] / vram)
            elif node.sharing == "timeslice":
                total += count / node.timeslice_replicas
            else:
                total += count
    kai = kai_share(pod)
    if kai is not None and total == 0:
        devices, mib, fraction = kai
        total = devices * min(1.0, mib / vram if mib else fraction)
    return total


@dataclass(frozen=True)
class TeamCost:
    """Cost per team as Prometheus records it, what `egs cost` prints: $/hour per namespace and idle $/hour
    per class (the recording rules), with the GPUs and prices behind them (the controller's series)."""

    namespace_usd_per_hour: Mapping[str, float]
    idle_usd_per_hour: Mapping[str, float]
    namespace_gpus: Mapping[tuple[str, str], float]
    class_gpus: Mapping[str, float]
    price_usd_per_hour: Mapping[str, float]

    @property
    def fleet_usd_per_hour(self) -> float:
        """Every GPU on a Ready node, held or idle, at its class's price."""
        return sum(n * self.price_usd_per_hour.get(c, 0.0) for c, n in self.class_gpus.items())

    def as_json(self) -> dict[str, Any]:
        namespaces = sorted(self.namespace_usd_per_hour, key=lambda ns: (-self.namespace_usd_per_hour[ns], ns))
        return {
            "fleet_usd_per_hour": _usd(self.fleet_usd_per_hour),
            "teams_usd_per_hour": _usd(sum(self.namespace_usd_per_hour.values())),
            "idle_usd_per_hour": _usd(sum(self.idle_usd_per_hour.values())),
            "namespaces": [
                {
                    "namespace": ns,
                    "usd_per_hour": _usd(self.namespace_usd_per_hour[ns]),
                    "gpus": {c: g for (n, c), g in sorted(self.namespace_gpus.items()) if n == ns},
                }
                for ns in namespaces
            ],
            "gpu_classes": [
                {
                    "gpu_class": c,
                    "gpus": self.class_gpus[c],
                    "price_usd_per_hour": self.price_usd_per_hour.get(c),
                    "idle_usd_per_hour": _usd(self.idle_usd_per_hour.get(c, 0.0)),
                }
                for c in sorted(self.class_gpus)
            ],
        }


def _usd(amount: float) -> float:
    """Dollars to a hundredth of a cent: sums of float products print as 151.35999999999999 otherwise."""
    return round(amount, 4)
