"""Which pod holds which GPU: match the kubelet's device assignments to the node's GPUs.

Pure: `exporter.podresources` asks the kubelet; this module only matches. Device ids differ by
resource: `nvidia.com/gpu` gives the GPU UUID (or its index with `deviceIDStrategy=index`, and a
`::N` suffix per replica under time-slicing), `nvidia.com/mig-*` the MIG device UUID (or the older
`MIG-GPU-<uuid>/<gi>/<ci>` form), `amd.com/gpu` the PCI bus id. Several pods can share one GPU
(time-slicing); each then gets its own series, as dcgm-exporter does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from exporter.gpu import GpuIdentity


@dataclass(frozen=True, order=True)
class PodRef:
    namespace: str
    pod: str
    container: str


@dataclass(frozen=True)
class DeviceAssignment:
    """One device id that the kubelet lists for a container."""

    resource: str
    device_id: str
    pod: PodRef


def attribute(gpus: Sequence[GpuIdentity], assignments: Iterable[DeviceAssignment]) -> dict[str, list[PodRef]]:
    """Map each GPU's `key` to the pods that hold it (sorted, no duplicates); unheld GPUs are absent."""
    index: dict[str, str] = {}
    for gpu in gpus:
        if gpu.instance_id:
            if gpu.instance_uuid:
                index[f"mig:{gpu.instance_uuid}"] = gpu.key
            index[f"mig:{gpu.uuid}/{gpu.instance_id}"] = gpu.key
            continue
        index[f"gpu:{gpu.uuid}"] = gpu.key
        index[f"gpu:{gpu.index}"] = gpu.key
        index[f"pci:{_pci(gpu.pci_bus_id)}"] = gpu.key
    held: dict[str, set[PodRef]] = {}
    for a in assignments:
        key = index.get(_device_key(a.resource, a.device_id))
        if key is not None:
            held.setdefault(key, set()).add(a.pod)
    return {key: sorted(pods) for key, pods in held.items()}


def _device_key(resource: str, device_id: str) -> str:
    device_id = device_id.split("::", 1)[0]
    if resource.startswith("nvidia.com/mig-"):
        if device_id.startswith("MIG-GPU-"):
            parent, gi, *_ = device_id.removeprefix("MIG-").split("/")
            return f"mig:{parent}/{gi}"
        return f"mig:{device_id}"
    if resource.startswith("amd.com/"):
        return f"pci:{_pci(device_id)}"
    return f"gpu:{device_id}"


def _pci(bus_id: str) -> str:
    """Normalise `00000000:3B:00.0` and `0000:3b:00.0` to one form."""
    parts = bus_id.lower().split(":")
    if len(parts) == 3 and all(c in "0123456789abcdef" for c in parts[0]) and parts[0]:
        return f"{int(parts[0], 16):04x}:{parts[1]}:{parts[2]}"
    return bus_id.lower()
