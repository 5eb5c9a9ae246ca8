"""Synthetic GPU nodes in the form the inventory reads (`kubectl get nodes -o yaml`), for benchmarks
and property tests: labels as NVIDIA GPU Feature Discovery and AMD's node labeller write them, and
resources as the NVIDIA and AMD device plugins advertise them; and seeded mixed fleets and request
batches (`mixed_fleet`, `mixed_requests`) of the shape the packing benchmark is scored on."""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from scheduler.catalog import Catalog, GpuModel
from scheduler.inventory import AMD_PARTITION_LABEL, RDMA_LABELS, partitions_per_gpu
from scheduler.plan import Request, Toleration
from scheduler.registry import Registry

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


Kind = tuple[str, str, int, dict[str, int] | None, int, str | None]
"""(class, sharing, GPUs per node, MIG layout per GPU, time-slice replicas, AMD partition mode)."""
KINDS: tuple[Kind, ...] = (
    ("H100-80GB", "kai", 8, None, 1, None),
    ("H100-80GB", "hami", 8, None, 1, None),
    ("H100-80GB", "mig", 8, {"3g.40gb": 2}, 1, None),
    ("H200-141GB", "kai", 8, None, 1, None),
    ("H200-141GB", "hami", 8, None, 1, None),
    ("A100-80GB", "mig", 8, {"3g.40gb": 1, "2g.20gb": 1, "1g.10gb": 2}, 1, None),
    ("A100-80GB", "kai", 8, None, 1, None),
    ("A100-40GB", "timeslice", 8, None, 2, None),
    ("H100-PCIE", "hami", 4, None, 1, None),
    ("L40S", "hami", 4, None, 1, None),
    ("L40S", "kai", 8, None, 1, None),
    ("L4", "timeslice", 4, None, 4, None),
    ("L4", "hami", 8, None, 1, None),
    ("A10G", "timeslice", 4, None, 2, None),
    ("A10G", "hami", 8, None, 1, None),
    ("T4", "timeslice", 4, None, 2, None),
    ("RTX-6000-Ada", "hami", 4, None, 1, None),
    ("RTX-4090", "timeslice", 8, None, 2, None),
    ("MI300X", "exclusive", 8, None, 1, None),
    ("MI300X", "partition", 8, None, 1, "cpx_nps4"),
    ("MI300X", "partition", 8, None, 1, "dpx_nps1"),
    ("MI325X", "exclusive", 8, None, 1, None),
    ("MI325X", "partition", 8, None, 1, "qpx_nps1"),
    ("MI210", "exclusive", 4, None, 1, None),
    ("MI250X", "exclusive", 8, None, 1, None),
)
"""The kinds of GPU node a generated fleet draws from, as production LLM fleets run them: every
NVIDIA class shares its GPUs' memory (KAI, HAMi, time-slicing, or MIG-split), PCIe-only classes
come in nodes of 4 and 8 (where 70B models run tensor parallel over PCIe), AMD classes whole or
partitioned."""
TAINTS = (
    {"key": "dedicated", "value": "inference", "effect": "NoSchedule"},
    {"key": "spot", "value": "true", "effect": "NoExecute"},
    {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},
    {"key": "maintenance", "effect": "PreferNoSchedule"},
)
"""Taints some generated nodes carry: two that only tolerating requests pass, one every EGS pod
tolerates, and one that does not keep pods off."""
RDMA_SHARE = 0.5
"""The share of NVLink/xGMI nodes a generated fleet labels RDMA-capable (NFD's rdma.available)."""
PRICE_RANGE = (0.5, 1.5)
"""Generated prices per GPU-hour are the catalogue's times a factor drawn from this range: clouds,
regions and contracts differ by about that much."""


MIN_GPUS, MAX_GPUS = 228, 259


def mixed_fleet(rng: random.Random, catalog: Catalog, kinds: int = 11) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """A fleet of 228-259 GPUs of `kinds` node kinds of both vendors, with at least one MIG kind,
    one PCIe-only kind of 4 or more GPUs per node, one whole and one partitioned AMD kind, two
    kinds of 80 GB or more (for the 70B models), NVLink/xGMI nodes labelled RDMA-capable about
    half the time, and about one node in six tainted; and the sharing policy per class
    (`SharingPolicy.by_class`) it runs under, which shares every NVIDIA class."""
    big = [k for k in KINDS if k[1] in ("kai", "hami", "exclusive") and catalog.get(k[0]).vram_mib >= 80 * MIB_PER_GIB]
    must = [
        big,
        big,
        [k for k in KINDS if k[1] == "mig"],
        [k for k in KINDS if not catalog.get(k[0]).peer_links and k[2] >= 4],
        [k for k in KINDS if k[1] == "exclusive" and catalog.get(k[0]).vendor == "amd"],
        [k for k in KINDS if k[1] == "partition"],
    ]
    while True:
        chosen: list[Kind] = []
        for group in must:
            pick = rng.choice(group)
            if pick not in chosen:
                chosen.append(pick)
        chosen += rng.sample([k for k in KINDS if k not in chosen], kinds - len(chosen))
        shared = [(k[0], k[1]) for k in chosen if k[1] in ("kai", "hami", "timeslice", "exclusive")]
        if len({cls for cls, _ in shared}) == len(shared):
            break  # one sharing mechanism per class, as the policy is per class
    target = rng.randint(MIN_GPUS, MAX_GPUS)
    counts = [1] * len(chosen)
    total = sum(k[2] for k in chosen)
    while total < target:
        fitting = [i for i, k in enumerate(chosen) if total + k[2] <= MAX_GPUS]
        if not fitting:
            break
        i = rng.choice(fitting)
        counts[i] += 1
        total += chosen[i][2]
    nodes: list[dict[str, Any]] = []
    for (cls, _, per_node, mig, replicas, partition), count in zip(chosen, counts, strict=True):
        gpu = catalog.get(cls)
        layout = {p: n * per_node for p, n in mig.items()} if mig else None
        for _ in range(count):
            taints = [rng.choice(TAINTS)] if rng.random() < 1 / 6 else None
            name = f"{cls.lower()}-{len(nodes)}"
            node = gpu_node(name, gpu, per_node, layout, replicas, partition, taints)
            if gpu.peer_links and rng.random() < RDMA_SHARE:
                node["metadata"]["labels"][RDMA_LABELS[1]] = "true"
            nodes.append(node)
    policy = {cls: mechanism for cls, mechanism in shared}
    return nodes, policy


def drawn_prices(rng: random.Random, catalog: Catalog, classes: Iterable[str]) -> dict[str, float]:
    """USD per GPU-hour for `classes`, each the catalogue's times a factor of `PRICE_RANGE`, in cents."""
    low, high = PRICE_RANGE
    return {cls: round(catalog.get(cls).price_per_hour * rng.uniform(low, high), 2) for cls in sorted(set(classes))}


RESIDENT_TOKENS = 262_144
"""Context x concurrency of one generated replica at most (4k x 64 ... 32k x 8)."""


def mixed_requests(rng: random.Random, registry: Registry, count: int | None = None) -> list[Request]:
    """40-55 requests (102-177 replicas) over the registry's models up to 72B, with quality floors of
    0.95-1.0, contexts of 4k-32k tokens (within each model's limit), concurrency 8-64 (at most
    `RESIDENT_TOKENS` resident), and now and then a toleration of the generated taints."""
    models = [m for m in registry if m.architecture.parameters_b < 100]
    n = count or rng.randint(40, 55)
    while True:
        replicas = [rng.choice((1, 1, 2, 2, 3, 3, 4, 5, 6)) for _ in range(n)]
        if 102 <= sum(replicas) <= 177 or count:
            break
    drawn = []
    for i, k in enumerate(replicas):
        model = rng.choice(models)
        limit = model.architecture.max_context or 32768
        context = rng.choice([c for c in (4096, 8192, 16384, 32768) if c <= limit])
        # Long contexts come with fewer sequences at once: at most 256k tokens resident per replica.
        concurrency = rng.choice([c for c in (8, 16, 32, 64) if c * context <= RESIDENT_TOKENS])
        tolerations: tuple[Toleration, ...] = ()
        if rng.random() < 0.25:
            taint = rng.choice(TAINTS[:2])
            tolerations = (Toleration(taint["key"], "Equal", taint["value"], taint["effect"]),)
        drawn.append(
            Request(
                f"r{i:02d}-{model.name}",
                model.name,
                k,
                min_quality=rng.choice((0.95, 0.98, 0.99, 1.0)),
                context=context,
                concurrency=concurrency,
                tolerations=tolerations,
            )
        )
    return drawn
