"""Plain data shared by every GPU backend, the collector and the exposition.

Nothing here reads a device: backends build these values, the collector passes them on.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GpuIdentity:
    """What identifies one GPU (or one MIG instance / AMD partition) on a node."""

    index: int
    """The GPU's index on the node (the parent GPU's index for a MIG instance)."""
    uuid: str
    pci_bus_id: str
    model_name: str
    vendor: str
    """`nvidia` or `amd`."""
    device: str
    """Device node name as dcgm-exporter labels it, e.g. `nvidia0`."""
    driver_version: str
    compute_capability: str = ""
    """NVIDIA compute capability (`9.0`); empty for AMD."""
    arch: str = ""
    """Architecture name (`hopper`) or AMD gfx target (`gfx942`)."""
    vram_bytes: int = 0
    instance_profile: str = ""
    """MIG profile (`1g.10gb`) or AMD partition mode (`CPX`); empty for a whole GPU."""
    instance_id: str = ""
    """MIG GPU-instance id or AMD partition id; empty for a whole GPU."""
    instance_uuid: str = ""
    """The MIG device's own UUID (`MIG-...`), which the kubelet reports for MIG resources."""

    @property
    def key(self) -> str:
        """Stable key of this device on its node: the GPU index plus the instance id, if any."""
        return f"{self.index}/{self.instance_id}" if self.instance_id else str(self.index)


@dataclass(frozen=True)
class P2PLink:
    """A peer-to-peer path between two GPUs of one node."""

    gpu: int
    peer_gpu: int
    link_type: str
    """`nvlink`, `xgmi` or `pcie`."""
    links: int = 1
    """How many links join the pair (NVLink lanes); 1 where the backend cannot count them."""


@dataclass(frozen=True)
class Node:
    """What a backend finds when it opens: the node's GPUs and how they are connected."""

    gpus: tuple[GpuIdentity, ...]
    links: tuple[P2PLink, ...] = ()


@dataclass
class Reading:
    """One device's values from one read.

    A field the device does not support is absent from `values` and named in `unsupported`; a field
    that failed for another reason is named in `failed`. Neither is ever reported as 0.
    """

    values: dict[str, float] = field(default_factory=dict)
    unsupported: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
