"""The simulated cluster: free resources of every GPU node as numpy arrays.

Sits under the policies and the simulation loop. One row per node; GPUs are columns of a fixed-width
matrix (the widest node has 8), and a node's missing GPU slots hold 0 free milli, which every rule
below treats like a fully used GPU, so no mask is needed. `version` counts the changes of each node so
that policies can cache per-node scores and recompute only the node that changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from scheduler.trace.data import MILLI, Nodes


@dataclass(frozen=True)
class Request:
    """One pod as the scheduler sees it; `kind` indexes the workload's pod-type table."""

    kind: int
    cpu: int
    memory: int
    gpu_milli: int
    num_gpu: int
    access: NDArray[np.bool_]
    """Per node model: may this pod run there."""

    @property
    def shares_gpu(self) -> bool:
        return self.num_gpu == 1 and self.gpu_milli < MILLI

    @property
    def total_milli(self) -> int:
        return self.num_gpu * self.gpu_milli


@dataclass
class Cluster:
    cpu_free: NDArray[np.int64]
    mem_free: NDArray[np.int64]
    gpu_free: NDArray[np.int64]
    """(nodes, 8): free milli per GPU; 0 for a slot the node does not have."""
    model: NDArray[np.int64]
    version: NDArray[np.int64]
    capacity_milli: int
    used_milli: int = 0

    @classmethod
    def empty(cls, nodes: Nodes) -> Cluster:
        width = int(nodes.gpus.max())
        slots = np.arange(width)[None, :] < nodes.gpus[:, None]
        return cls(
            cpu_free=nodes.cpu.copy(),
            mem_free=nodes.memory.copy(),
            gpu_free=np.where(slots, MILLI, 0).astype(np.int64),
            model=nodes.model.copy(),
            version=np.zeros(len(nodes), dtype=np.int64),
            capacity_milli=int(nodes.gpus.sum()) * MILLI,
        )

    def __len__(self) -> int:
        return len(self.cpu_free)

    def feasible(self, pod: Request) -> NDArray[np.intp]:
        """Nodes where CPU, memory, GPU model and enough GPUs with room for the per-GPU milli all fit."""
        ok = (self.cpu_free >= pod.cpu) & (self.mem_free >= pod.memory)
        if pod.num_gpu:
            ok &= pod.access[self.model]
            ok &= (self.gpu_free >= pod.gpu_milli).sum(axis=1) >= pod.num_gpu
        return np.flatnonzero(ok)

    def place(self, node: int, gpus: NDArray[np.intp], pod: Request) -> None:
        """Bind `pod` to `node`, taking its per-GPU milli from each of `gpus`."""
        if len(gpus) != pod.num_gpu or np.any(self.gpu_free[node, gpus] < pod.gpu_milli):
            raise ValueError(f"GPUs {gpus.tolist()} of node {node} cannot hold {pod}")
        if self.cpu_free[node] < pod.cpu or self.mem_free[node] < pod.memory:
            raise ValueError(f"node {node} lacks CPU or memory for {pod}")
        self.cpu_free[node] -= pod.cpu
        self.mem_free[node] -= pod.memory
        self.gpu_free[node, gpus] -= pod.gpu_milli
        self.used_milli += pod.total_milli
        self.version[node] += 1


def whole_gpus(gpu_free: NDArray[np.int64], count: int) -> NDArray[np.bool_]:
    """The lowest-numbered `count` fully free GPUs of each row (the simulator's exclusive choice)."""
    free = gpu_free == MILLI
    taken: NDArray[np.bool_] = free & (np.cumsum(free, axis=-1) <= count)
    return taken
