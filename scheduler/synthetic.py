"""Synthetic GPU nodes in the form the inventory reads (`kubectl get nodes -o yaml`), for benchmarks
and property tests: labels as NVIDIA GPU Feature Discovery and AMD's node labeller write them, and
resources as the NVIDIA and AMD device plugins advertise them."""

from __future__ import annotations

from typing import Any

from scheduler.catalog import GpuModel
from scheduler.inventory import AMD_PARTITION_LABEL, partitions_per_gpu

MIB_PER_GIB = 1024


def gpu_node(
    name: str,
    gpu: GpuModel,
    count: int,
    mig: dict[str, int] | None = None,
    replicas: int = 1,
    partition: str | None = None,
    taints: list[dict[str, str]] | None = None,
    amd_naming: str = "single",
) -> dict[str, Any]:
    """A Ready node with `count` GPUs of `gpu`; `mig` splits them into MIG instances (mixed
    strategy, profile -> instances on the node); `replicas` > 1 time-slices each GPU; `partition`
    splits AMD GPUs into a compute x memory mode (`cpx_nps4`), advertised under AMD's device-plugin
    naming `amd_naming` (`single`: `amd.com/gpu`; `mixed`: `amd.com/<mode>`); `taints` go to
    `spec.taints`."""
    if gpu.vendor == "amd":
        labels = {"amd.com/gpu.product-name": gpu.products[0], "amd.com/gpu.family": "AI"}
        devices, vram = count, gpu.vram_mib
        if partition:
            parts = partitions_per_gpu(gpu, partition)
            if isinstance(parts, str):
                raise ValueError(parts)
            labels[AMD_PARTITION_LABEL] = partition
            devices, vram = count * parts, gpu.vram_mib // parts
        labels["amd.com/gpu.vram"] = f"{round(vram / MIB_PER_GIB)}G"
        resource = f"amd.com/{partition}" if partition and amd_naming == "mixed" else "amd.com/gpu"
        allocatable = {resource: str(devices)}
    else:
        major, minor = (gpu.compute_capability or "0.0").split(".")
        labels = {
            "nvidia.com/gpu.product": gpu.products[0] + ("-SHARED" if replicas > 1 else ""),
            "nvidia.com/gpu.memory": str(gpu.vram_mib),
            "nvidia.com/gpu.count": str(count),
            "nvidia.com/gpu.compute.major": major,
            "nvidia.com/gpu.compute.minor": minor,
            "nvidia.com/gpu.replicas": str(replicas),
        }
        allocatable = {"nvidia.com/gpu": str(count * replicas)}
        if mig:
            labels["nvidia.com/mig.strategy"] = "mixed"
            allocatable = {f"nvidia.com/mig-{profile}": str(n) for profile, n in mig.items()}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints} if taints else {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": allocatable},
    }
