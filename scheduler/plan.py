"""What placement decides, as plain data: requests in, a plan out.

`scheduler.placement` (the online policy) and `scheduler.replan` (the exact re-plan) both return a
`Plan`; `scheduler.manifests` turns one into Kubernetes objects and the CLI prints it. Nothing here
decides anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

SHARING_MECHANISMS = ("exclusive", "mig", "timeslice", "kai", "hami")
"""exclusive: whole GPUs; mig: MIG instances; timeslice: device-plugin replicas; kai: KAI Scheduler
gpu-memory requests; hami: HAMi `nvidia.com/gpumem`."""


@dataclass(frozen=True)
class Toleration:
    """A pod toleration, as Kubernetes matches it: `Exists` tolerates any value of `key` (every key
    when `key` is empty), `Equal` only `value`; an empty `effect` tolerates every effect."""

    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""

    def tolerates(self, taint: TaintLike) -> bool:
        if self.effect and self.effect != taint.effect:
            return False
        if not self.key:
            return self.operator == "Exists"
        if self.key != taint.key:
            return False
        return self.operator == "Exists" or self.value == taint.value


class TaintLike(Protocol):
    """What a toleration reads of a node taint (`scheduler.inventory.Taint`)."""

    @property
    def key(self) -> str: ...

    @property
    def value(self) -> str: ...

    @property
    def effect(self) -> str: ...


@dataclass(frozen=True)
class Request:
    """Serve `model` with `replicas` replicas, none below `min_quality`."""

    name: str
    model: str
    replicas: int = 1
    min_quality: float = 0.0
    """Lowest variant quality accepted (fp16 = 1.0; int4 is about 0.95)."""
    namespace: str = "default"
    context: int | None = None
    """Context tokens per sequence; the model's serving default when None."""
    concurrency: int | None = None
    """Sequences resident at once; the model's serving default when None."""
    gpu_classes: tuple[str, ...] = ()
    """Allowed GPU classes; empty allows every class."""
    tolerations: tuple[Toleration, ...] = ()
    """Taints the pods tolerate beyond the GPU taints every EGS pod tolerates (`scheduler.fleet`)."""
    variants: tuple[str, ...] = ()
    """Allowed variants of the model; empty allows every variant at or above `min_quality` (the
    controller pins a replica the endpoint API promised to the variant it promised)."""


@dataclass(frozen=True)
class Worker:
    """The GPUs one replica holds on one node."""

    node: str
    gpus: tuple[int, ...]
    mig_profile: str | None = None
    """The instance profile when the replica runs in a MIG instance (`3g.40gb`) or an AMD partition
    (`cpx_nps4`); `gpus` is then empty."""
    resource: str = ""
    """The extended resource of that instance (`nvidia.com/mig-3g.40gb`, `amd.com/gpu`, `amd.com/cpx_nps4`)."""


@dataclass(frozen=True)
class Placement:
    """One replica of a request, placed."""

    request: str
    replica: int
    model: str
    variant: str
    precision: str
    quality: float
    gpu_class: str
    sharing: str
    """How the GPUs are shared: exclusive, mig, partition (AMD), timeslice, kai or hami."""
    tp: int
    """Tensor-parallel GPUs per node; a replica spans `len(workers)` nodes."""
    vram_mib_per_gpu: int
    """VRAM reserved on each of its GPUs (or in its instance), exactly, in MiB."""
    workers: tuple[Worker, ...]
    """The leader first; more than one worker makes the replica a LeaderWorkerSet."""
    namespace: str = "default"
    throughput: float = 1.0
    """The share of its undivided throughput the replica keeps after its tensor-parallel
    all-reduces (`scheduler.interconnect`): 1.0 on one GPU, ~0.8 for a 70B model over 4-8 PCIe GPUs."""
    interconnect: str = "none"
    """What its tensor-parallel GPUs talk over: `nvlink`, `xgmi`, `pcie`; `none` on one GPU."""

    @property
    def node(self) -> str:
        return self.workers[0].node

    @property
    def gpus(self) -> tuple[int, ...]:
        return self.workers[0].gpus

    @property
    def multi_node(self) -> bool:
        return len(self.workers) > 1


@dataclass(frozen=True)
class Unplaced:
    """A replica that fits nowhere, why, and the nearest fit."""

    request: str
    replica: int
    reason: str
    namespace: str = "default"
    """The request's namespace: requests of one name in two namespaces are two requests."""


@dataclass(frozen=True)
class Plan:
    placements: tuple[Placement, ...] = ()
    unplaced: tuple[Unplaced, ...] = ()
    occupied: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Every GPU (`node/gpu3`) or MIG instance (`node/mig-1g.10gb#2`) the plan's replicas occupy:
    (the share of a GPU it is, USD per hour of that share). A MIG instance is its compute slices'
    share of the GPU; a GPU shared by several replicas counts once."""

    @property
    def cost_per_hour(self) -> float:
        return round(sum(price for _, price in self.occupied.values()), 4)

    @property
    def gpus_used(self) -> float:
        return round(sum(share for share, _ in self.occupied.values()), 4)

    @property
    def effective_cost_per_hour(self) -> float:
        """The cost per hour with what the interconnect takes of each tensor-parallel replica's
        throughput bought back at the same price (its GPUs' price / its throughput): the cost per
        unit of throughput that the engines minimise. Equal to `cost_per_hour` when every replica
        is on one GPU."""
        lost = 0.0
        for p in self.placements:
            if p.throughput < 1.0:
                price = sum(self.occupied.get(f"{w.node}/gpu{i}", (0.0, 0.0))[1] for w in p.workers for i in w.gpus)
                lost += price * (1 / p.throughput - 1)
        return round(self.cost_per_hour + lost, 4)

    def better_than(self, other: Plan) -> bool:
        """More replicas placed, then a lower cost per unit of throughput."""
        mine = (len(self.unplaced), self.effective_cost_per_hour)
        return mine < (len(other.unplaced), other.effective_cost_per_hour)
