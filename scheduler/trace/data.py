"""Loading the Alibaba GPU trace (openb) that the FGD paper's simulator replays.

Sits at the bottom of `scheduler.trace`: it turns `openb_node_list_gpu_node.csv` and one
`openb_pod_list_<workload>.csv` into column arrays, so the cluster state and the policies never touch
CSV text. Column names are the files' own (see the data set's PROVENANCE.md).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

MILLI = 1000
"""GPU capacity of one device in milli-GPU, as the trace counts it."""

NODE_FILE = "openb_node_list_gpu_node.csv"
POD_PREFIX = "openb_pod_list_"

WORKLOADS = (
    "default",
    "cpu050",
    "cpu100",
    "cpu200",
    "cpu250",
    "gpushare40",
    "gpushare60",
    "gpushare80",
    "gpushare100",
    "gpuspec10",
    "gpuspec20",
    "gpuspec25",
    "gpuspec33",
    "multigpu20",
    "multigpu30",
    "multigpu40",
    "multigpu50",
)
"""The 17 workloads with published FGD results."""


@dataclass(frozen=True)
class Nodes:
    """The GPU nodes of the cluster, one row each, in file order."""

    names: tuple[str, ...]
    cpu: NDArray[np.int64]
    """Allocatable CPU in millicores."""
    memory: NDArray[np.int64]
    """Allocatable memory in MiB."""
    gpus: NDArray[np.int64]
    """Number of GPUs."""
    model: NDArray[np.int64]
    """Index into `models`."""
    models: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.names)


@dataclass(frozen=True)
class Pods:
    """The pods of one workload, in file order; a GPU-sharing pod has num_gpu 1 and gpu_milli < 1000."""

    names: tuple[str, ...]
    cpu: NDArray[np.int64]
    memory: NDArray[np.int64]
    num_gpu: NDArray[np.int64]
    gpu_milli: NDArray[np.int64]
    """Per-GPU request in milli-GPU (1000 for whole GPUs, 0 for CPU-only pods)."""
    gpu_spec: tuple[str, ...]
    """Allowed GPU models joined by '|', or '' for any."""

    def __len__(self) -> int:
        return len(self.names)

    @property
    def total_milli(self) -> NDArray[np.int64]:
        """GPU milli each pod takes in all."""
        return self.num_gpu * self.gpu_milli


def pod_file(data_dir: Path, workload: str) -> Path:
    return data_dir / "csv" / f"{POD_PREFIX}{workload}.csv"


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def load_nodes(data_dir: Path) -> Nodes:
    rows = _rows(data_dir / "csv" / NODE_FILE)
    models = tuple(sorted({r["model"] for r in rows}))
    return Nodes(
        names=tuple(r["sn"] for r in rows),
        cpu=np.array([int(r["cpu_milli"]) for r in rows], dtype=np.int64),
        memory=np.array([int(r["memory_mib"]) for r in rows], dtype=np.int64),
        gpus=np.array([int(r["gpu"]) for r in rows], dtype=np.int64),
        model=np.array([models.index(r["model"]) for r in rows], dtype=np.int64),
        models=models,
    )


def load_pods(data_dir: Path, workload: str) -> Pods:
    """Read one workload; files without a `gpu_spec` column (the multigpu ones) constrain nothing."""
    rows = _rows(pod_file(data_dir, workload))
    return Pods(
        names=tuple(r["name"] for r in rows),
        cpu=np.array([int(r["cpu_milli"]) for r in rows], dtype=np.int64),
        memory=np.array([int(r["memory_mib"]) for r in rows], dtype=np.int64),
        num_gpu=np.array([int(r["num_gpu"]) for r in rows], dtype=np.int64),
        gpu_milli=np.array([int(r["gpu_milli"]) for r in rows], dtype=np.int64),
        gpu_spec=tuple(r.get("gpu_spec", "") or "" for r in rows),
    )
