"""Load a simulated fleet file: the nodes and GPUs that the `sim` backend pretends to have.

A fleet file is YAML (see `examples/fleet-*.yaml`)::

    nodes:
      - name: node-a
        gpus:
          - {model: NVIDIA H100 80GB HBM3, vendor: nvidia, count: 8, memory_mib: 81559,
             compute_capability: "9.0", arch: hopper, interconnect: nvlink}
        faults: [{gpu: 3, kind: lost}]

The format is `exporter/data/fleet.schema.json`, checked by `common.schema` as the scheduler's inputs
are: bad input raises FleetError naming the file and the path of the bad field; nothing is half-loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import InputError, naming
from common.limits import MAX_GPUS_PER_NODE
from common.schema import check, field_path, read_yaml
from exporter.fields import NAMES

SCHEMA = Path(__file__).parent / "data" / "fleet.schema.json"


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
    with naming(path):
        return parse_fleet(read_yaml(path, FleetError))


def parse_fleet(raw: Any) -> Fleet:
    """The fleet in `raw`, checked against `exporter/data/fleet.schema.json` and then for what a
    schema cannot say (unique names, fault indices in range, known field names)."""
    check(raw, SCHEMA, FleetError, "the fleet file")
    nodes = tuple(_node(n, i) for i, n in enumerate(raw["nodes"]))
    names = [n.name for n in nodes]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise FleetError(f"{field_path('nodes', i, 'name')}: duplicate node name {name!r}")
    return Fleet(nodes=nodes)


def _node(raw: dict[str, Any], i: int) -> SimNode:
    groups = tuple(_group(g, ("nodes", i, "gpus", j)) for j, g in enumerate(raw["gpus"]))
    count = sum(g.count for g in groups)
    if count > MAX_GPUS_PER_NODE:
        where = field_path("nodes", i, "gpus")
        raise FleetError(f"{where}: node {raw['name']!r} has {count} GPUs; a node has at most {MAX_GPUS_PER_NODE}")
    faults = []
    for j, fault in enumerate(raw.get("faults", [])):
        if fault["gpu"] >= count:
            where = field_path("nodes", i, "faults", j, "gpu")
            raise FleetError(f"{where}: an index below the node's {count} GPUs is required, got {fault['gpu']}")
        faults.append(Fault(gpu=fault["gpu"], kind=fault["kind"], seconds=float(fault.get("seconds", 3600.0))))
    return SimNode(name=raw["name"], gpus=groups, faults=tuple(faults))


def _group(raw: dict[str, Any], at: tuple[str | int, ...]) -> GpuGroup:
    unsupported = raw.get("unsupported", [])
    for k, name in enumerate(unsupported):
        if name not in NAMES:
            raise FleetError(f"{field_path(*at, 'unsupported', k)}: {name!r} is not a field of exporter.fields")
    return GpuGroup(
        model=str(raw["model"]),
        vendor=raw["vendor"],
        count=raw["count"],
        memory_mib=raw["memory_mib"],
        compute_capability=str(raw.get("compute_capability", "")),
        arch=str(raw.get("arch", "")),
        interconnect=raw.get("interconnect", "pcie"),
        driver_version=str(raw.get("driver_version", "")),
        power_max_w=float(raw.get("power_max_w", 700.0)),
        instances=tuple(raw.get("instances", ())),
        unsupported=frozenset(unsupported),
    )
