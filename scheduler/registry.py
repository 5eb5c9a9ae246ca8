"""The model registry: which models EGS serves, in which variants, and how much VRAM a replica needs.

Part of the scheduler's pure core. The placement engine and `egs plan` read a registry file (format:
`scheduler/data/model-registry.schema.json`; example: `examples/models.yaml`) with
`Registry.load(path, catalog)`, then size replicas with `vram_need_mib` / `per_gpu_need_mib`. The
need is computed, never written by hand, so that one formula decides what fits everywhere:

    need per GPU = weights / tp
                 + KV cache: 2 (K and V) x layers x ceil(kv_heads / tp) x head_dim
                             x bytes per KV element x context tokens x concurrency
                 + overhead: OVERHEAD_FIXED_MIB + OVERHEAD_FRACTION x (weights / tp)

Under tensor parallelism vLLM gives each GPU kv_heads / tp heads, and replicates heads when tp is
larger than kv_heads, hence the ceil. Bad input raises `RegistryError` naming the path of the bad
field, including a variant that fits on no GPU of the catalogue even split over MAX_TP GPUs of one
node, and one vLLM cannot load (a precision it does not quantize to in flight, without a
pre-quantised `source`): the endpoint API and the controller choose among the registry's variants,
so one that cannot be served must be refused here, not found in the loop. Nothing is half-loaded.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.errors import InputError, naming
from common.schema import field_path, read_yaml
from scheduler._schema import check
from scheduler.catalog import PRECISION_FLOORS, Catalog, GpuModel

MIB = 1024 * 1024
GIB = 1024 * MIB

BYTES_PER_WEIGHT: Mapping[str, float] = {"fp16": 2, "bf16": 2, "fp8": 1, "int8": 1, "int4": 0.5}
BYTES_PER_KV_ELEMENT: Mapping[str, int] = {"fp16": 2, "bf16": 2, "fp8": 1}

DEFAULT_QUALITY: Mapping[str, float] = {"fp16": 1.0, "bf16": 1.0, "fp8": 0.99, "int8": 0.98, "int4": 0.95}
"""Quality relative to fp16 when a variant gives none: published evaluations of fp8 and int8 (W8A8)
checkpoints of Llama-3.1 recover ~99% of the baseline scores, 4-bit AWQ/GPTQ ~95-98%; the int
figures are rounded down to stay on the cautious side."""

PRECISION_FLAGS: Mapping[str, tuple[str, ...]] = {
    "fp16": ("--dtype", "float16"),
    "bf16": ("--dtype", "bfloat16"),
    # vLLM quantizes a 16-bit checkpoint to fp8 while loading it, and to 4-bit with bitsandbytes.
    "fp8": ("--quantization", "fp8"),
    "int4": ("--quantization", "bitsandbytes"),
}
"""vLLM's server flags per precision, to serve it from the model's own (16-bit) checkpoint. int8 is
missing: vLLM has no in-flight int8 for dense models, so an int8 variant needs its own pre-quantised
`source`, and the registry refuses one without it (`scheduler.manifests` renders these flags)."""

OVERHEAD_FIXED_MIB = 1536
"""Per GPU: the CUDA/HIP context (~0.5-0.8 GiB), NCCL buffers and CUDA graphs, and the activation
workspace of a prefill batch, which vLLM reserves before it sizes the KV cache. 1.5 GiB covers what
vLLM reports for 7-70B models at the default max_num_batched_tokens."""

OVERHEAD_FRACTION = 0.05
"""Per GPU, of the weights it holds: allocator fragmentation and activations that grow with the
model's width."""

MAX_TP = 8
"""The most GPUs of one node a replica is split over; beyond it a replica spans nodes."""

LOAD_STARTUP_S = 30.0
LOAD_GIB_PER_S = 2.0
"""Default load time = LOAD_STARTUP_S (container and engine start) + weights at LOAD_GIB_PER_S (a
local NVMe or a warm network volume)."""


class RegistryError(InputError):
    """A registry that cannot be used; the message names the bad field."""


@dataclass(frozen=True)
class Architecture:
    """The numbers of a model's published config that decide its memory."""

    parameters_b: float
    layers: int
    kv_heads: int
    head_dim: int
    max_context: int | None = None
    hidden_size: int | None = None

    @property
    def hidden(self) -> int:
        """`hidden_size`, or estimated: a dense transformer has about 12 x layers x hidden^2
        parameters (attention 4 h^2, MLP 8 h^2), rounded to a multiple of 128 (Llama-3.1-70B:
        8576 for 8192)."""
        if self.hidden_size:
            return self.hidden_size
        return max(128, round(math.sqrt(self.parameters_b * 1e9 / (12 * self.layers)) / 128) * 128)


@dataclass(frozen=True)
class Serving:
    """What one replica is sized for unless a request says otherwise."""

    context_tokens: int
    concurrency: int
    """Sequences resident in the KV cache at once."""
    kv_cache_dtype: str = "fp16"


@dataclass(frozen=True)
class Variant:
    """One build of a model: a precision, its size, its quality and the hardware it needs."""

    name: str
    precision: str
    weights_gib: float
    quality: float
    load_seconds: float
    min_compute_capability: str | None
    """Resolved: the variant's own floor, else the precision's; None = any NVIDIA GPU."""
    min_gfx: str | None
    """Resolved like min_compute_capability, for AMD GPUs."""
    kv_cache_dtype: str | None = None
    """Overrides the model's serving default when set."""
    source: str | None = None
    """A pre-quantised checkpoint of this variant (a Hugging Face id); None serves the model's own."""
    quantization: str | None = None
    """How that checkpoint is quantised, as vLLM's `--quantization` names it (awq, gptq, ...)."""

    def runs_on(self, gpu: GpuModel) -> bool:
        return gpu.supports(self.precision) and gpu.meets(self.min_compute_capability, self.min_gfx)


@dataclass(frozen=True)
class Model:
    """A model and the variants it is served in."""

    name: str
    architecture: Architecture
    serving: Serving
    variants: tuple[Variant, ...]
    source: str = ""

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        known = ", ".join(v.name for v in self.variants)
        raise RegistryError(f"model {self.name!r} has no variant {name!r} (variants: {known})")


@dataclass(frozen=True)
class VramNeed:
    """What one GPU of a replica holds, in MiB."""

    weights_mib: int
    kv_cache_mib: int
    overhead_mib: int

    @property
    def total_mib(self) -> int:
        return self.weights_mib + self.kv_cache_mib + self.overhead_mib


def per_gpu_need(
    model: Model, variant: Variant, tp: int = 1, context: int | None = None, concurrency: int | None = None
) -> VramNeed:
    """The VRAM each of the `tp` GPUs of one replica needs, at the serving defaults unless given."""
    if tp < 1:
        raise ValueError(f"tensor-parallel degree must be at least 1, got {tp}")
    arch = model.architecture
    tokens = (context or model.serving.context_tokens) * (concurrency or model.serving.concurrency)
    kv_dtype = variant.kv_cache_dtype or model.serving.kv_cache_dtype
    kv_bytes = 2 * arch.layers * math.ceil(arch.kv_heads / tp) * arch.head_dim * BYTES_PER_KV_ELEMENT[kv_dtype]
    weights_mib = math.ceil(variant.weights_gib * GIB / tp / MIB)
    return VramNeed(
        weights_mib=weights_mib,
        kv_cache_mib=math.ceil(kv_bytes * tokens / MIB),
        overhead_mib=math.ceil(OVERHEAD_FIXED_MIB + OVERHEAD_FRACTION * weights_mib),
    )


def per_gpu_need_mib(
    model: Model, variant: Variant, tp: int = 1, context: int | None = None, concurrency: int | None = None
) -> int:
    return per_gpu_need(model, variant, tp, context, concurrency).total_mib


def vram_need_mib(model: Model, variant: Variant, context: int | None = None, concurrency: int | None = None) -> int:
    """The VRAM one replica needs on a single GPU."""
    return per_gpu_need_mib(model, variant, 1, context, concurrency)


def weights_gib(parameters_b: float, precision: str) -> float:
    """Parameters x bytes per weight, in GiB."""
    return parameters_b * 1e9 * BYTES_PER_WEIGHT[precision] / GIB


@dataclass(frozen=True)
class Registry:
    """The models EGS serves."""

    models: tuple[Model, ...]

    @classmethod
    def load(cls, path: str | Path, catalog: Catalog) -> Registry:
        with naming(path):
            return cls.parse(read_yaml(path, RegistryError), catalog)

    @classmethod
    def parse(cls, raw: Any, catalog: Catalog) -> Registry:
        """The registry in `raw`, each variant checked to fit some GPU of `catalog`."""
        check(raw, "model-registry.schema.json", RegistryError, "the model registry")
        models = tuple(_model(entry, i, catalog) for i, entry in enumerate(raw["models"]))
        for i, model in enumerate(models):
            if model.name in (m.name for m in models[:i]):
                raise RegistryError(f"models[{i}].name: duplicate model name {model.name!r}")
        return cls(models=models)

    def __iter__(self) -> Iterator[Model]:
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def get(self, name: str) -> Model:
        for model in self.models:
            if model.name == name:
                return model
        raise RegistryError(f"no model {name!r} in the registry (models: {', '.join(m.name for m in self.models)})")


def _model(raw: dict[str, Any], i: int, catalog: Catalog) -> Model:
    a, s = raw["architecture"], raw["serving"]
    architecture = Architecture(
        parameters_b=float(a["parameters_b"]),
        layers=a["layers"],
        kv_heads=a["kv_heads"],
        head_dim=a["head_dim"],
        max_context=a.get("max_context"),
        hidden_size=a.get("hidden_size"),
    )
    serving = Serving(
        context_tokens=s["context_tokens"], concurrency=s["concurrency"], kv_cache_dtype=s.get("kv_cache_dtype", "fp16")
    )
    if architecture.max_context and serving.context_tokens > architecture.max_context:
        raise RegistryError(
            f"{field_path('models', i, 'serving', 'context_tokens')}: {serving.context_tokens} is more than "
            f"the model's max_context of {architecture.max_context}"
        )
    variants = tuple(_variant(v, architecture) for v in raw["variants"])
    model = Model(
        name=raw["name"], architecture=architecture, serving=serving, variants=variants, source=raw.get("source", "")
    )
    for j, variant in enumerate(variants):
        where = field_path("models", i, "variants", j)
        if variant.name in (v.name for v in variants[:j]):
            raise RegistryError(f"{where}.name: duplicate variant name {variant.name!r}")
        _check_loadable(model, variant, where)
        _check_fits(model, variant, catalog, where)
    return model


def _variant(raw: dict[str, Any], arch: Architecture) -> Variant:
    precision = raw["precision"]
    floor = PRECISION_FLOORS[precision]
    size = float(raw.get("weights_gib", weights_gib(arch.parameters_b, precision)))
    cc = raw.get("min_compute_capability")
    return Variant(
        name=raw.get("name", precision),
        precision=precision,
        weights_gib=size,
        quality=float(raw.get("quality", DEFAULT_QUALITY[precision])),
        load_seconds=float(raw.get("load_seconds", LOAD_STARTUP_S + size / LOAD_GIB_PER_S)),
        # YAML reads an unquoted 8.9 as a number; the schema allows it and it means "8.9".
        min_compute_capability=str(float(cc)) if isinstance(cc, int | float) else cc or floor.min_cc,
        min_gfx=raw.get("min_gfx", floor.min_gfx),
        kv_cache_dtype=raw.get("kv_cache_dtype"),
        source=raw.get("source"),
        quantization=raw.get("quantization"),
    )


def _check_loadable(model: Model, variant: Variant, where: str) -> None:
    """Reject a variant vLLM cannot load: its precision from the model's own checkpoint, with no
    pre-quantised `source` of its own."""
    if variant.source is None and variant.precision not in PRECISION_FLAGS:
        raise RegistryError(
            f"{where}: vLLM cannot load {model.name} in {variant.precision} from {model.source or model.name} "
            f"(it quantizes to {', '.join(sorted(PRECISION_FLAGS))} in flight); give the variant a pre-quantised "
            "`source` (and its `quantization`)"
        )


def _check_fits(model: Model, variant: Variant, catalog: Catalog, where: str) -> None:
    """Reject a variant that no GPU class of the catalogue holds, even split over MAX_TP GPUs."""
    need = per_gpu_need_mib(model, variant, MAX_TP)
    able = [g for g in catalog if variant.runs_on(g)]
    if not able:
        raise RegistryError(f"{where}: no GPU of the catalogue runs {variant.precision} at this variant's floor")
    if not any(need <= g.vram_mib for g in able):
        largest = max(able, key=lambda g: g.vram_mib)
        raise RegistryError(
            f"{where}: needs {need} MiB per GPU even over {MAX_TP} GPUs at {model.serving.context_tokens} tokens x "
            f"{model.serving.concurrency} sequences; the largest GPU it runs on ({largest.name}) has "
            f"{largest.vram_mib} MiB"
        )
