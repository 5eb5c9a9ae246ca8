"""Synthetic GPU nodes in the form the inventory reads (`kubectl get nodes -o yaml`), for benchmarks
and property tests: labels as NVIDIA GPU Feature Discovery and AMD's node labeller write them."""

from __future__ import annotations

from typing import Any

from scheduler.catalog import GpuModel


def gpu_node(
    name: str, gpu: GpuModel, count: int, mig: dict[str, int] | None = None, replicas: int = 1
) -> dict[str, Any]:
    """A Ready node with `count` GPUs of `gpu`; `mig` splits them into MIG instances (mixed
    strategy, profile -> instances on the node); `replicas` > 1 time-slices each GPU."""
    if gpu.vendor == "amd":
        labels = {"amd.com/gpu.product-name": gpu.products[0], "amd.com/gpu.family": "AI"}
        allocatable = {"amd.com/gpu": str(count)}
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
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": allocatable},
    }
