"""Load a simulated fleet file: the nodes and GPUs that the `sim` backend pretends to have.

A fleet file is YAML (see `examples/fleet-*.yaml`)::

    nodes:
      - name: node-a
        gpus:
          - {model: NVIDIA H100 80GB HBM3, vendor: nvidia, count: 8, memory_mib: 81559,
             compute_capability: "9.0", arch: hopper, interconnect: nvlink}
        faults: [{gpu: 3, kind: lost}]

Bad input raises FleetError naming the path of the bad field; nothing is half-loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from common.errors import InputError, naming
from exporter.fields import NAMES

FAULT_KINDS = frozenset({"lost", "hang", "error"})
INTERCONNECTS = frozenset({"nvlink", "xgmi", "pcie"})
VENDORS = frozenset({"nvidia", "amd"})


class FleetError(InputError):
    """A fleet file that cannot be used; the message names the bad field."""


@dataclass(frozen=True)
class GpuGroup:
    """`count` identical GPUs of one node."""

    model: str
    vendor: str
    count: int
    memory_mib: int
    compute_capability: str = ""
    arch: str = ""
    interconnect: str = "pcie"
    driver_version: str = ""
    power_max_w: float = 700.0
    instances: tuple[str, ...] = ()
    """MIG profiles (`3g.40gb`) or AMD partition modes (`CPX`) each GPU of the group is split into."""
    unsupported: frozenset[str] = frozenset()
    """Fields these GPUs do not give (omitted from the exposition, as on real hardware)."""


@dataclass(frozen=True)
class Fault:
    """A fault the simulator injects: `lost` (the GPU stops answering), `hang` (reads block for
    `seconds`), `error` (every field read fails)."""

    gpu: int
    kind: str
    seconds: float = 3600.0


@dataclass(frozen=True)
class SimNode:
    name: str
    gpus: tuple[GpuGroup, ...]
    faults: tuple[Fault, ...] = ()

    @property
    def gpu_count(self) -> int:
        return sum(g.count for g in self.gpus)


@dataclass(frozen=True)
class Fleet:
    nodes: tuple[SimNode, ...] = field(default_factory=tuple)

    def node(self, name: str | None) -> SimNode:
        """The node called `name`, or the first one when `name` is None."""
        if not self.nodes:
            raise FleetError("nodes: the fleet has no nodes")
        if name is None:
            return self.nodes[0]
        for node in self.nodes:
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes)
        raise FleetError(f"no node {name!r} in the fleet (nodes: {known})")


DEFAULT_FLEET = Fleet(
    nodes=(
        SimNode(
            name="sim-h100-0",
            gpus=(
                GpuGroup(
                    model="NVIDIA H100 80GB HBM3",
                    vendor="nvidia",
                    count=8,
                    memory_mib=81559,
                    compute_capability="9.0",
                    arch="hopper",
                    interconnect="nvlink",
                    driver_version="550.54.15",
                    power_max_w=700.0,
                ),
            ),
        ),
    )
)
"""With no `--fleet`: one node of 8 NVIDIA H100 80GB on NVLink."""


def load_fleet(path: str | Path) -> Fleet:
    """The fleet in the file at `path`; a FleetError names the file and the bad field."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise FleetError(f"cannot read: {e.strerror}", source=path) from e
    except yaml.YAMLError as e:
        raise FleetError(f"not valid YAML: {e}", source=path) from e
    with naming(path):
        return parse_fleet(raw)


def parse_fleet(raw: Any) -> Fleet:
    data = _mapping(raw, "", {"nodes"})
    nodes = _sequence(data.get("nodes"), "nodes")
    parsed = tuple(_node(n, f"nodes[{i}]") for i, n in enumerate(nodes))
    names = [n.name for n in parsed]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise FleetError(f"nodes[{i}].name: duplicate node name {name!r}")
    return Fleet(nodes=parsed)


def _node(raw: Any, path: str) -> SimNode:
    data = _mapping(raw, path, {"name", "gpus", "faults"})
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise FleetError(f"{path}.name: a non-empty string is required")
    groups = tuple(_group(g, f"{path}.gpus[{i}]") for i, g in enumerate(_sequence(data.get("gpus"), f"{path}.gpus")))
    node = SimNode(name=name, gpus=groups)
    faults = tuple(
        _fault(f, f"{path}.faults[{i}]", node.gpu_count)
        for i, f in enumerate(_sequence(data.get("faults", []), f"{path}.faults", allow_empty=True))
    )
    return SimNode(name=name, gpus=groups, faults=faults)


def _group(raw: Any, path: str) -> GpuGroup:
    allowed = {
        "model",
        "vendor",
        "count",
        "memory_mib",
        "compute_capability",
        "arch",
        "interconnect",
        "driver_version",
        "power_max_w",
        "instances",
        "unsupported",
    }
    data = _mapping(raw, path, allowed)
    for key in ("model", "vendor", "count", "memory_mib"):
        if key not in data:
            raise FleetError(f"{path}.{key}: required")
    vendor = data["vendor"]
    if vendor not in VENDORS:
        raise FleetError(f"{path}.vendor: {vendor!r} is not one of {sorted(VENDORS)}")
    count, memory = data["count"], data["memory_mib"]
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise FleetError(f"{path}.count: a positive integer is required, got {count!r}")
    if not isinstance(memory, int) or isinstance(memory, bool) or memory < 1:
        raise FleetError(f"{path}.memory_mib: a positive integer is required, got {memory!r}")
    interconnect = data.get("interconnect", "pcie")
    if interconnect not in INTERCONNECTS:
        raise FleetError(f"{path}.interconnect: {interconnect!r} is not one of {sorted(INTERCONNECTS)}")
    unsupported = data.get("unsupported", [])
    for i, name in enumerate(_sequence(unsupported, f"{path}.unsupported", allow_empty=True)):
        if name not in NAMES:
            raise FleetError(f"{path}.unsupported[{i}]: {name!r} is not a field of exporter.fields")
    instances = tuple(str(p) for p in _sequence(data.get("instances", []), f"{path}.instances", allow_empty=True))
    power = data.get("power_max_w", 700.0)
    if not isinstance(power, int | float) or power <= 0:
        raise FleetError(f"{path}.power_max_w: a positive number is required, got {power!r}")
    return GpuGroup(
        model=str(data["model"]),
        vendor=vendor,
        count=count,
        memory_mib=memory,
        compute_capability=str(data.get("compute_capability", "")),
        arch=str(data.get("arch", "")),
        interconnect=interconnect,
        driver_version=str(data.get("driver_version", "")),
        power_max_w=float(power),
        instances=instances,
        unsupported=frozenset(unsupported),
    )


def _fault(raw: Any, path: str, gpu_count: int) -> Fault:
    data = _mapping(raw, path, {"gpu", "kind", "seconds"})
    gpu, kind = data.get("gpu"), data.get("kind")
    if not isinstance(gpu, int) or not 0 <= gpu < gpu_count:
        raise FleetError(f"{path}.gpu: an index below the node's {gpu_count} GPUs is required, got {gpu!r}")
    if kind not in FAULT_KINDS:
        raise FleetError(f"{path}.kind: {kind!r} is not one of {sorted(FAULT_KINDS)}")
    seconds = data.get("seconds", 3600.0)
    if not isinstance(seconds, int | float) or seconds < 0:
        raise FleetError(f"{path}.seconds: a non-negative number is required, got {seconds!r}")
    return Fault(gpu=gpu, kind=kind, seconds=float(seconds))


def _mapping(raw: Any, path: str, allowed: set[str]) -> dict[str, Any]:
    where = path or "the fleet file"
    if not isinstance(raw, dict):
        raise FleetError(f"{where}: a mapping is required, got {type(raw).__name__}")
    for key in raw:
        if key not in allowed:
            raise FleetError(f"{path + '.' if path else ''}{key}: unknown key (allowed: {', '.join(sorted(allowed))})")
    return raw


def _sequence(raw: Any, path: str, allow_empty: bool = False) -> list[Any]:
    if not isinstance(raw, list) or (not raw and not allow_empty):
        raise FleetError(f"{path}: a non-empty list is required")
    return raw
