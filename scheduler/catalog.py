"""The GPU catalogue: what each GPU class is, what it runs, what it costs and how nodes name it.

Part of the scheduler's pure core (no Kubernetes calls). The model registry asks it whether a variant
runs on a class and how much memory the class has; the inventory asks it which class a node's labels
name; the placement engine ranks classes by `price_per_hour`. The data lives in
`scheduler/data/gpus.yaml` (format: `gpu-catalog.schema.json`); `Catalog.load()` reads it, and
bad entries raise `CatalogError` naming the path of the bad field. Nothing is half-loaded.

Label conventions (checked against NVIDIA k8s-device-plugin / GPU Feature Discovery and the ROCm
node labeller sources):

- NVIDIA: `nvidia.com/gpu.product` is the NVML device name with spaces replaced by '-'
  (`NVIDIA-H100-80GB-HBM3`, `Tesla-T4`). Under MIG strategy `single` it ends in `-MIG-<profile>`
  (or `-MIG-INVALID`); under `mixed` each profile has its own `nvidia.com/mig-<profile>.product`
  with that suffix; time-sliced GPUs add `-SHARED`. The suffixes are stripped before lookup.
- AMD: `amd.com/gpu.product-name` is sysfs `product_name` with spaces turned into '_' and
  parentheses dropped (`AMD_Instinct_MI300X_OAM`); `amd.com/gpu.device-id` is the PCI id (`74a1`).
  Older labellers write `beta.amd.com/gpu.<name>.<value>=<count>` keys instead, which are read too.
  `amd.com/gpu.family` is `AI` for every Instinct GPU, so it names no class.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from common.errors import InputError, naming
from common.schema import field_path, read_yaml
from scheduler._schema import DATA, check

DEFAULT_CATALOG = DATA / "gpus.yaml"


class Floor(NamedTuple):
    """The least NVIDIA compute capability and AMD gfx target that run a precision."""

    min_cc: str | None
    min_gfx: str | None


PRECISION_FLOORS: Mapping[str, Floor] = {
    "fp16": Floor(None, None),
    # Ampere and CDNA2 brought bf16 tensor/matrix cores.
    "bf16": Floor("8.0", "gfx90a"),
    # Native fp8 arrived with Ada/Hopper (cc 8.9) and CDNA3 (gfx942).
    "fp8": Floor("8.9", "gfx942"),
    # int8 and int4 (AWQ/GPTQ) kernels in vLLM need Turing or newer; on AMD, CDNA2 or newer.
    "int8": Floor("7.5", "gfx90a"),
    "int4": Floor("7.5", "gfx90a"),
}
"""Precisions EGS knows, with the hardware each needs at least."""

_MIG_SUFFIX = re.compile(r"-MIG-(?:[1-7]g\.\d+gb(?:\+me)?|INVALID)$")
_PROFILE = re.compile(r"^([1-7])g\.(\d+)gb$")


LINK_LATENCY_US: Mapping[str, float] = {"nvlink": 6.0, "xgmi": 8.0, "pcie": 20.0}
"""What one small all-reduce of a decoding step takes over each kind of link when the catalogue
gives no `latency_us`: vLLM's own all-reduce kernel over NVLink takes a few microseconds; over PCIe
vLLM hands all-reduce to NCCL (its kernel needs peer links for more than two GPUs), whose ring
steps cost about 20 us for messages this small on PCIe gen4 (nccl-tests' all_reduce_perf, 8 KiB-
1 MiB)."""


class CatalogError(InputError):
    """A catalogue (or price override) that cannot be used; the message names the bad field."""


MIG_SLICES = 7
"""Compute slices of a whole MIG-capable GPU: a MIG instance costs its slices' share of the GPU."""


@dataclass(frozen=True)
class MigProfile:
    """One instance shape of a split GPU: a MIG profile (`1g.10gb`: one compute slice, ~10 GB), or
    an AMD compute x memory partition mode (`cpx_nps4`: one of eight partitions), which placement
    treats alike."""

    name: str
    memory_mib: int
    max_instances: int
    """How many instances of this shape one GPU holds when split into this shape only."""
    kind: str = "mig"
    """`mig` (NVIDIA) or `partition` (AMD)."""

    @property
    def compute_slices(self) -> int:
        """MIG compute slices; an AMD partition is one partition of `max_instances`."""
        return int(self.name.split("g.", 1)[0]) if self.kind == "mig" else 1

    @property
    def gpu_share(self) -> float:
        """The share of its GPU one instance is, which is what it costs."""
        return self.compute_slices / (MIG_SLICES if self.kind == "mig" else self.max_instances)


@dataclass(frozen=True)
class GpuModel:
    """One GPU class of the catalogue."""

    name: str
    vendor: str
    vram_mib: int
    memory_bandwidth_gbs: float
    interconnect: str
    """`nvlink`, `xgmi` or `pcie`."""
    interconnect_gbs: float
    price_per_hour: float
    """USD per GPU-hour."""
    products: tuple[str, ...]
    compute_capability: str | None = None
    gfx: str | None = None
    device_ids: tuple[str, ...] = ()
    mig_profiles: tuple[MigProfile, ...] = ()
    link_domain_size: int | None = None
    """GPUs per NVLink/xGMI domain when fewer than a node has; None means the whole node."""
    xcds: int | None = None
    """AMD compute dies; a class with several can be partitioned (CPX: one partition per XCD)."""
    interconnect_latency_us: float | None = None
    """Microseconds one small all-reduce takes over the link; None: `LINK_LATENCY_US` of its kind."""

    @property
    def link_latency_us(self) -> float:
        return self.interconnect_latency_us or LINK_LATENCY_US[self.interconnect]

    @property
    def fp8(self) -> bool:
        return self.supports("fp8")

    @property
    def peer_links(self) -> bool:
        """Whether GPUs of one node talk over NVLink/xGMI rather than through their PCIe root."""
        return self.interconnect != "pcie"

    def mig_profile(self, name: str) -> MigProfile | None:
        return next((p for p in self.mig_profiles if p.name == name), None)

    def supports(self, precision: str) -> bool:
        """Whether this class runs weights of `precision` with native kernels."""
        try:
            floor = PRECISION_FLOORS[precision]
        except KeyError:
            raise CatalogError(f"unknown precision {precision!r} (known: {', '.join(PRECISION_FLOORS)})") from None
        return self.meets(floor.min_cc, floor.min_gfx)

    def meets(self, min_cc: str | None = None, min_gfx: str | None = None) -> bool:
        """Whether this class reaches the given floor of its own vendor; None asks nothing of it.

        gfx targets compare only within one major family (gfx90a < gfx942 < gfx950): an RDNA gfx11
        part does not "exceed" a CDNA gfx9 requirement.
        """
        if self.vendor == "nvidia":
            return min_cc is None or cc_tuple(self.compute_capability or "0.0") >= cc_tuple(min_cc)
        if min_gfx is None:
            return True
        mine, floor = gfx_tuple(self.gfx or "gfx000"), gfx_tuple(min_gfx)
        return mine[0] == floor[0] and mine >= floor


def cc_tuple(cc: str) -> tuple[int, int]:
    """`"10.0"` -> (10, 0), so that 10.0 sorts after 9.0."""
    major, minor = cc.split(".")
    return int(major), int(minor)


def gfx_tuple(gfx: str) -> tuple[int, int, int]:
    """`gfx90a` -> (9, 0, 10): major digits, then minor and stepping as one hex digit each."""
    digits = gfx.removeprefix("gfx")
    return int(digits[:-2]), int(digits[-2], 16), int(digits[-1], 16)


@dataclass(frozen=True)
class Catalog:
    """The GPU classes, queried by name or by a node's labels."""

    gpus: tuple[GpuModel, ...]
    _by_name: dict[str, GpuModel] = field(init=False, repr=False, compare=False)
    _by_product: dict[tuple[str, str], GpuModel] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {g.name: g for g in self.gpus})
        by_product = {(g.vendor, p.lower()): g for g in self.gpus for p in g.products}
        by_product |= {("amd-id", d): g for g in self.gpus for d in g.device_ids}
        object.__setattr__(self, "_by_product", by_product)

    @classmethod
    def load(cls, path: str | Path | None = None, prices: Mapping[str, float] | None = None) -> Catalog:
        """The catalogue at `path` (default: the one shipped in scheduler/data) with `prices` overriding."""
        with naming(path or DEFAULT_CATALOG):
            catalog = cls.parse(read_yaml(path or DEFAULT_CATALOG, CatalogError))
        return catalog.priced(prices or {})

    @classmethod
    def parse(cls, raw: Any, prices: Mapping[str, float] | None = None) -> Catalog:
        check(raw, "gpu-catalog.schema.json", CatalogError, "the GPU catalogue")
        gpus = tuple(_gpu(entry, i) for i, entry in enumerate(raw["gpus"]))
        _check_unique(gpus)
        return cls(gpus=_priced(gpus, prices or {}))

    def priced(self, prices: Mapping[str, float]) -> Catalog:
        """This catalogue with `prices` (class -> USD per GPU-hour) in force; a bad entry raises
        `CatalogError` naming `prices.<class>`."""
        return Catalog(gpus=_priced(self.gpus, prices)) if prices else self

    def __iter__(self) -> Iterator[GpuModel]:
        return iter(self.gpus)

    def __len__(self) -> int:
        return len(self.gpus)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def get(self, name: str) -> GpuModel:
        try:
            return self._by_name[name]
        except KeyError:
            raise CatalogError(unknown_class(name, self._by_name)) from None

    def for_node_labels(self, labels: Mapping[str, str]) -> GpuModel | None:
        """The class a node's GFD / AMD-labeller labels name, or None when they name none or several."""
        found = {self._by_product.get(("nvidia", _strip_suffixes(v).lower())) for v in _nvidia_products(labels)}
        found |= {self._by_product.get(("amd", v.lower())) for v in _amd_values(labels, "product-name")}
        found.discard(None)
        if not found:
            found = {self._by_product.get(("amd-id", v.lower())) for v in _amd_values(labels, "device-id")}
            found.discard(None)
        return found.pop() if len(found) == 1 else None


def load_prices(path: str | Path) -> dict[str, float]:
    """USD per GPU-hour by class from a YAML file (`egs plan --prices`): see `parse_prices`."""
    return parse_prices(read_yaml(path, CatalogError))


def parse_prices(raw: Any) -> dict[str, float]:
    """USD per GPU-hour by class from a parsed mapping (`H100-80GB: 2.49`), optionally under `prices:`;
    `Catalog.priced` checks the classes and the numbers. The format of `egs plan --prices` and of the
    controller's and the API's `prices:`."""
    if isinstance(raw, dict) and set(raw) == {"prices"}:
        raw = raw["prices"]
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise CatalogError("a mapping of GPU class to USD per GPU-hour is required (H100-80GB: 2.49)")
    return raw


def _gpu(raw: dict[str, Any], i: int) -> GpuModel:
    where = field_path("gpus", i)
    vendor = raw["vendor"]
    foreign = "gfx" if vendor == "nvidia" else "compute_capability"
    if foreign in raw or (vendor == "amd" and "mig" in raw) or (vendor == "nvidia" and "xcds" in raw):
        key = foreign if foreign in raw else "mig" if "mig" in raw else "xcds"
        raise CatalogError(f"{where}.{key}: does not apply to {vendor} GPUs")
    profiles = tuple(_mig(p, f"{where}.mig[{j}]", raw["vram_mib"]) for j, p in enumerate(raw.get("mig", [])))
    return GpuModel(
        name=raw["name"],
        vendor=vendor,
        vram_mib=raw["vram_mib"],
        memory_bandwidth_gbs=float(raw["memory_bandwidth_gbs"]),
        interconnect=raw["interconnect"]["kind"],
        interconnect_gbs=float(raw["interconnect"]["bandwidth_gbs"]),
        price_per_hour=float(raw["price_per_hour"]),
        products=tuple(raw["products"]),
        compute_capability=raw.get("compute_capability"),
        gfx=raw.get("gfx"),
        device_ids=tuple(raw.get("device_ids", ())),
        mig_profiles=profiles,
        link_domain_size=raw.get("link_domain_size"),
        xcds=raw.get("xcds"),
        interconnect_latency_us=raw["interconnect"].get("latency_us"),
    )


def _mig(raw: dict[str, Any], where: str, vram_mib: int) -> MigProfile:
    name = raw["profile"]
    match = _PROFILE.match(name)
    assert match is not None  # the schema's pattern already holds
    # Without a `nvidia-smi mig -lgip` reading, take 90% of the GB in the name: every reading we
    # have is above that (1g.10gb on an H100 reports 9984 MiB, against 9216 estimated).
    memory = raw.get("memory_mib", int(int(match[2]) * 0.9 * 1024))
    if memory > vram_mib:
        raise CatalogError(f"{where}.memory_mib: {memory} MiB is more than the GPU's {vram_mib} MiB")
    return MigProfile(name=name, memory_mib=memory, max_instances=raw["max_instances"])


def unknown_class(name: str, known: Iterable[str]) -> str:
    """What to say of a GPU class the catalogue lacks: the classes it has, so that `H100` leads to `H100-80GB`."""
    return f"no GPU class {name!r} in the catalogue (known: {', '.join(known)})"


def _check_unique(gpus: tuple[GpuModel, ...]) -> None:
    names: set[str] = set()
    products: dict[str, str] = {}
    for i, gpu in enumerate(gpus):
        if gpu.name in names:
            raise CatalogError(f"gpus[{i}].name: {gpu.name!r} is already the name of another class")
        names.add(gpu.name)
        for product in (*gpu.products, *gpu.device_ids):
            if product.lower() in products:
                raise CatalogError(f"gpus[{i}]: {product!r} already names {products[product.lower()]}")
            products[product.lower()] = gpu.name


def _priced(gpus: tuple[GpuModel, ...], prices: Mapping[str, float]) -> tuple[GpuModel, ...]:
    known = {g.name for g in gpus}
    for name, price in prices.items():
        if name not in known:
            raise CatalogError(f"prices.{name}: {unknown_class(name, (g.name for g in gpus))}")
        if not isinstance(price, int | float) or isinstance(price, bool) or not 0 <= price < math.inf:
            raise CatalogError(f"prices.{name}: a non-negative number of USD per GPU-hour is required, got {price!r}")
    return tuple(replace(g, price_per_hour=float(prices[g.name])) if g.name in prices else g for g in gpus)


def _strip_suffixes(product: str) -> str:
    return _MIG_SUFFIX.sub("", product.removesuffix("-SHARED"))


def _nvidia_products(labels: Mapping[str, str]) -> list[str]:
    """`nvidia.com/gpu.product`, and each MIG profile's product under the mixed strategy."""
    return [v for k, v in labels.items() if k == "nvidia.com/gpu.product" or _is_mig_label(k, "product")]


def _is_mig_label(key: str, attribute: str) -> bool:
    return key.startswith("nvidia.com/mig-") and key.endswith(f".{attribute}")


def _amd_values(labels: Mapping[str, str], name: str) -> set[str]:
    """Values of an AMD labeller property, current (`amd.com/gpu.<name>=v`) or count-style
    (`beta.amd.com/gpu.<name>.<v>=<count>`, also used when a node has several values)."""
    values = set()
    for prefix in (f"amd.com/gpu.{name}", f"beta.amd.com/gpu.{name}"):
        if prefix in labels:
            values.add(labels[prefix])
        values |= {k.removeprefix(prefix + ".") for k in labels if k.startswith(prefix + ".")}
    return values
