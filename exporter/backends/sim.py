"""The simulated backend: a node of GPUs from a fleet file, for the demo, the simulator and tests.

Its numbers are made up, and it says so (`egs_exporter_info{simulated="true"}`): it is never evidence
that the NVML or amdsmi paths work. Values follow a smooth daily-looking wave per GPU, seeded by the
node name, so that dashboards show movement; `set_load()` pins a GPU's load for demos and tests, and
the fleet file's `faults` make GPUs get lost, hang or err. `unload_driver()` / `load_driver()` and
`unplug()` / `replug()` play a driver reload and a GPU reset while the exporter runs.
"""

from __future__ import annotations

import math
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

from exporter.backend import DriverLost, DriverUnavailable, GpuLost
from exporter.fleet import Fault, GpuGroup, SimNode
from exporter.gpu import GpuIdentity, Node, P2PLink, Reading

_MIG_MEMORY = re.compile(r"\d+g\.(\d+)gb")
_RESERVED_FRACTION = 0.006
"""Share of VRAM the driver reserves (H100 80GB: ~510 MiB of 81559)."""
P2P_DOMAIN_GPUS = 8
"""GPUs joined peer to peer: one baseboard (HGX, an MI300X OAM platform) holds 8. A larger group is
several baseboards, so links grow with GPUs, not with their square (2,000 GPUs in one group would
otherwise make 4 million links)."""


@dataclass
class Load:
    """What a simulated GPU is doing: fractions in 0..1."""

    util: float
    vram: float
    mem_bw: float


class SimBackend:
    """A simulated node."""

    name = "sim"
    simulated = True

    def __init__(
        self,
        node: SimNode,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`clock` drives the simulated values and `sleep` the `hang` faults: tests pass virtual time."""
        self._node = node
        self._clock = clock
        self._sleep = sleep
        self._start = clock()
        self._pinned: dict[int, Load] = {}
        self._lock = threading.Lock()
        self._groups: dict[int, GpuGroup] = {}
        self._faults: dict[int, Fault] = {f.gpu: f for f in node.faults}
        self._driver_loaded = True
        self._unplugged: set[int] = set()
        self._energy_mj: dict[str, float] = {}
        self._last_read: dict[str, float] = {}

    def open(self) -> Node:
        """The node's GPUs, less the unplugged ones; DriverUnavailable while the driver is unloaded."""
        if not self._driver_loaded:
            raise DriverUnavailable("simulated driver is not loaded")
        gpus: list[GpuIdentity] = []
        links: list[P2PLink] = []
        index = 0
        for group in self._node.gpus:
            first = index
            for _ in range(group.count):
                self._groups[index] = group
                if index not in self._unplugged:
                    gpus.append(self._identity(group, index))
                    gpus.extend(self._instances(group, index))
                index += 1
            links.extend(_links(range(first, index), group.interconnect))
        return Node(gpus=tuple(gpus), links=tuple(links))

    def close(self) -> None:
        pass

    def set_load(self, gpu: int, util: float, vram: float, mem_bw: float | None = None) -> None:
        """Pin a GPU's load (fractions 0..1) until `release()`."""
        with self._lock:
            self._pinned[gpu] = Load(util=util, vram=vram, mem_bw=util * 0.6 if mem_bw is None else mem_bw)

    def unload_driver(self) -> None:
        """Reads raise DriverLost and open() DriverUnavailable until `load_driver()`: a driver reload."""
        self._driver_loaded = False

    def load_driver(self) -> None:
        self._driver_loaded = True

    def unplug(self, gpu: int) -> None:
        """The GPU stops answering and is left out of open() until `replug()`: a reset, or off the bus."""
        self._unplugged.add(gpu)

    def replug(self, gpu: int) -> None:
        self._unplugged.discard(gpu)

    def release(self, gpu: int) -> None:
        with self._lock:
            self._pinned.pop(gpu, None)

    def read(self, gpu: GpuIdentity, fields: Collection[str]) -> Reading:
        if not self._driver_loaded:
            raise DriverLost(f"simulated GPU {gpu.key}: the driver is not loaded")
        if gpu.index in self._unplugged:
            raise GpuLost(f"simulated GPU {gpu.index} is unplugged")
        now = self._clock() - self._start
        fault = self._faults.get(gpu.index)
        if fault is not None:
            self._inject(fault)
        group = self._groups[gpu.index]
        load = self._load(gpu.index, now)
        total = self._memory_mib(group, gpu)
        values = self._values(group, gpu, load, total, now)
        wanted = set(fields)
        unsupported = set(group.unsupported & wanted)
        reading = Reading(unsupported=unsupported)
        for name in wanted - unsupported:
            if name in values:
                reading.values[name] = values[name]
            else:
                reading.unsupported.add(name)
        if fault is not None and fault.kind == "error":
            reading.failed = set(reading.values)
            reading.values = {}
        return reading

    def _inject(self, fault: Fault) -> None:
        if fault.kind == "lost":
            raise GpuLost(f"simulated GPU {fault.gpu} is lost")
        if fault.kind == "hang":
            self._sleep(fault.seconds)

    def _load(self, index: int, now: float) -> Load:
        with self._lock:
            pinned = self._pinned.get(index)
        if pinned is not None:
            return pinned
        phase = (zlib.crc32(f"{self._node.name}/{index}".encode()) % 1000) / 1000 * 2 * math.pi
        wave = 0.5 + 0.5 * math.sin(now / 600 * 2 * math.pi + phase)
        util = 0.15 + 0.7 * wave
        return Load(util=util, vram=0.45 + 0.35 * wave, mem_bw=0.6 * util)

    def _values(self, group: GpuGroup, gpu: GpuIdentity, load: Load, total: float, now: float) -> dict[str, float]:
        reserved = round(total * _RESERVED_FRACTION)
        used = round((total - reserved) * load.vram)
        values = {
            "DCGM_FI_DEV_FB_USED": float(used),
            "DCGM_FI_DEV_FB_FREE": float(total - reserved - used),
            "DCGM_FI_DEV_FB_RESERVED": float(reserved),
            "DCGM_FI_PROF_GR_ENGINE_ACTIVE": round(load.util * 0.95, 4),
            "DCGM_FI_PROF_DRAM_ACTIVE": round(load.mem_bw, 4),
        }
        if group.vendor == "nvidia":
            values["DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"] = round(load.util * 0.55, 4)
        if gpu.instance_id:
            return values
        power = round(group.power_max_w * (0.12 + 0.8 * load.util), 3)
        values |= {
            "DCGM_FI_DEV_GPU_UTIL": float(round(load.util * 100)),
            "DCGM_FI_DEV_MEM_COPY_UTIL": float(round(load.mem_bw * 100)),
            "DCGM_FI_DEV_POWER_USAGE": power,
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": self._energy(gpu.uuid, power, now),
            "DCGM_FI_DEV_SM_CLOCK": 1980.0 if load.util > 0.05 else 345.0,
            "DCGM_FI_DEV_MEM_CLOCK": 2619.0,
            "DCGM_FI_DEV_GPU_TEMP": float(round(32 + 45 * load.util)),
            "DCGM_FI_DEV_MEMORY_TEMP": float(round(36 + 40 * load.util)),
            "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": 0.0,
            "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": 0.0,
            "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": 0.0,
        }
        if group.vendor == "nvidia":
            values |= {
                "DCGM_FI_DEV_ENC_UTIL": 0.0,
                "DCGM_FI_DEV_DEC_UTIL": 0.0,
                "DCGM_FI_DEV_XID_ERRORS": 0.0,
                "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": 0.0,
                "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": 0.0,
                "DCGM_FI_DEV_ROW_REMAP_FAILURE": 0.0,
            }
        return values

    def _energy(self, key: str, power_w: float, now: float) -> float:
        """Integrate power into the energy counter so that it only ever grows (mJ)."""
        with self._lock:
            last = self._last_read.get(key, 0.0)
            self._energy_mj[key] = self._energy_mj.get(key, 0.0) + power_w * (now - last) * 1000
            self._last_read[key] = now
            return round(self._energy_mj[key])

    @staticmethod
    def _memory_mib(group: GpuGroup, gpu: GpuIdentity) -> float:
        if not gpu.instance_id:
            return float(group.memory_mib)
        match = _MIG_MEMORY.fullmatch(gpu.instance_profile)
        if match:
            return float(int(match.group(1)) * 1024)
        return float(group.memory_mib // len(group.instances))

    def _identity(self, group: GpuGroup, index: int) -> GpuIdentity:
        nvidia = group.vendor == "nvidia"
        domain = f"{index // 200:08X}" if nvidia else f"{index // 200:04x}"
        bus = 0x18 + index % 200
        return GpuIdentity(
            index=index,
            uuid=self._uuid(index, group.vendor),
            pci_bus_id=f"{domain}:{bus:02X}:00.0" if nvidia else f"{domain}:{bus:02x}:00.0",
            model_name=group.model,
            vendor=group.vendor,
            device=f"nvidia{index}" if nvidia else f"card{index}",
            driver_version=group.driver_version,
            compute_capability=group.compute_capability,
            arch=group.arch,
            vram_bytes=group.memory_mib * 1024 * 1024,
        )

    def _instances(self, group: GpuGroup, index: int) -> list[GpuIdentity]:
        parent = self._identity(group, index)
        instances = []
        for i, profile in enumerate(group.instances):
            instance = replace(parent, instance_profile=profile, instance_id=str(i))
            mig_uuid = f"MIG-{uuid.uuid5(uuid.NAMESPACE_URL, f'{parent.uuid}/{i}')}"
            instances.append(
                replace(
                    instance,
                    vram_bytes=int(self._memory_mib(group, instance)) * 1024 * 1024,
                    instance_uuid=mig_uuid if group.vendor == "nvidia" else "",
                )
            )
        return instances

    def _uuid(self, index: int, vendor: str) -> str:
        value = uuid.uuid5(uuid.NAMESPACE_URL, f"egs-sim/{self._node.name}/{index}")
        return f"GPU-{value}" if vendor == "nvidia" else str(value)


def _links(members: range, kind: str) -> list[P2PLink]:
    """Every ordered pair of GPUs within each baseboard of P2P_DOMAIN_GPUS consecutive GPUs."""
    lanes = 18 if kind == "nvlink" else 1
    links: list[P2PLink] = []
    for start in range(members.start, members.stop, P2P_DOMAIN_GPUS):
        board = range(start, min(start + P2P_DOMAIN_GPUS, members.stop))
        links.extend(P2PLink(gpu=a, peer_gpu=b, link_type=kind, links=lanes) for a in board for b in board if a != b)
    return links
