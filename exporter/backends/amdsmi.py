"""The amdsmi backend: AMD Instinct / Radeon GPUs through AMD SMI's Python package (`amdsmi`).

It sits behind the `exporter.backend.GpuBackend` port, between the collector and AMD's library, and
is the only place that knows amdsmi's calls, units and status codes. Values are converted here, at
the edge, to the metric contract (DCGM names; amdsmi's `"N/A"` strings become absent fields, energy
counts become mJ), and amdsmi's errors are mapped onto the backend error tree.

The `amdsmi` module is a constructor parameter so that unit tests can pass a fake that replays
recorded readings. The real one is imported only in `open()`, with its output swallowed: without
`libamd_smi.so` the package prints to stdout and raises KeyError at import, which must not reach the
exporter's output. The names this file uses on the module are checked against the installed package
by `tests/test_backend_contracts.py`.

Partitions (MI300 CPX, DPX, ...): amdsmi lists each partition as its own processor handle. Handles
whose PCI address differs only in the function number belong to one physical GPU; when that GPU's
compute partition mode is not SPX, each handle becomes a `GpuIdentity` with the physical GPU's
index, `instance_profile` = the mode and `instance_id` = its position among the GPU's handles (the
order amdsmi lists them in). No separate identity is made for the physical GPU: amdsmi has no handle
for it, and whole-device fields (power, temperatures, ...) come from whichever partition reports them,
the others answering "not supported" or "N/A".
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any, TypeAlias, TypeVar

from exporter.backend import DriverUnavailable, GpuLost
from exporter.backends.sources import Outcome, read_groups
from exporter.gpu import GpuIdentity, Node, P2PLink, Reading

log = logging.getLogger(__name__)

_T = TypeVar("_T")

GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
MEM_COPY_UTIL = "DCGM_FI_DEV_MEM_COPY_UTIL"
FB_USED = "DCGM_FI_DEV_FB_USED"
FB_FREE = "DCGM_FI_DEV_FB_FREE"
POWER_USAGE = "DCGM_FI_DEV_POWER_USAGE"
TOTAL_ENERGY = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
SM_CLOCK = "DCGM_FI_DEV_SM_CLOCK"
MEM_CLOCK = "DCGM_FI_DEV_MEM_CLOCK"
GPU_TEMP = "DCGM_FI_DEV_GPU_TEMP"
MEMORY_TEMP = "DCGM_FI_DEV_MEMORY_TEMP"
PCIE_REPLAY = "DCGM_FI_DEV_PCIE_REPLAY_COUNTER"
ECC_SBE = "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"
ECC_DBE = "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"

_WHOLE_GPU_MODES = ("", "SPX")
"""Compute partition modes in which a handle is the whole GPU ("" where the query is unsupported)."""


@dataclass(frozen=True)
class _Device:
    identity: GpuIdentity
    handle: Any


_Source: TypeAlias = Callable[[ModuleType, Any], dict[str, float]]
"""Reads a group of fields with one amdsmi call; a wanted field missing from the result is unsupported."""


class AmdSmiBackend:
    """AMD GPUs (and their compute partitions) and xGMI topology, read through amdsmi."""

    name = "amdsmi"
    simulated = False

    def __init__(self, amdsmi: ModuleType | None = None) -> None:
        self._smi = amdsmi
        self._lock = threading.Lock()
        self._devices: dict[str, _Device] = {}
        self._sources: tuple[tuple[frozenset[str], _Source], ...] = (
            (frozenset({GPU_UTIL, MEM_COPY_UTIL}), _activity),
            (frozenset({FB_USED, FB_FREE}), _vram),
            (frozenset({POWER_USAGE}), _power),
            (frozenset({TOTAL_ENERGY}), _energy),
            (frozenset({SM_CLOCK}), _sm_clock),
            (frozenset({MEM_CLOCK}), _mem_clock),
            (frozenset({GPU_TEMP}), _gpu_temp),
            (frozenset({MEMORY_TEMP}), _memory_temp),
            (frozenset({PCIE_REPLAY}), _pcie_replay),
            (frozenset({ECC_SBE, ECC_DBE}), _ecc),
        )

    # -- open / close ---------------------------------------------------------------------------------

    def open(self) -> Node:
        if self._devices:
            self.close()
        smi = self._module()
        try:
            smi.amdsmi_init(smi.AmdSmiInitFlags.INIT_AMD_GPUS)
        except smi.AmdSmiException as e:
            raise DriverUnavailable(f"amdsmi did not initialise: {e}") from e
        try:
            handles = list(smi.amdsmi_get_processor_handles())
            devices = self._enumerate(smi, handles)
        except smi.AmdSmiException as e:
            _shutdown(smi)
            raise DriverUnavailable(f"amdsmi initialised but cannot list GPUs: {e}") from e
        whole = {d.identity.index: d for d in devices if d.identity.instance_id in ("", "0")}
        links = _topology(smi, list(whole.values()))
        with self._lock:
            self._devices = {d.identity.key: d for d in devices}
        return Node(gpus=tuple(d.identity for d in devices), links=tuple(links))

    def close(self) -> None:
        with self._lock:
            self._devices = {}
        if self._smi is not None:
            _shutdown(self._smi)

    def _module(self) -> ModuleType:
        """The amdsmi module: the one given, else AMD's, imported on first use with its chatter muted."""
        if self._smi is None:
            chatter = io.StringIO()
            try:
                with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
                    import amdsmi
            except Exception as e:
                said = chatter.getvalue().strip().splitlines()
                detail = f" ({said[-1]})" if said else ""
                raise DriverUnavailable(f"amdsmi cannot load: {e!r}{detail}") from e
            self._smi = amdsmi
        return self._smi

    def _enumerate(self, smi: ModuleType, handles: list[Any]) -> list[_Device]:
        """One identity per handle, partitions of one physical GPU sharing its index."""
        physical: dict[str, list[tuple[int, Any, str]]] = {}
        for position, handle in enumerate(handles):
            bdf = str(smi.amdsmi_get_gpu_device_bdf(handle)).lower()
            physical.setdefault(bdf.rsplit(".", 1)[0], []).append((position, handle, bdf))
        devices: list[_Device] = []
        for index, members in enumerate(physical.values()):
            mode = _partition_mode(smi, members[0][1])
            partitioned = mode.upper() not in _WHOLE_GPU_MODES
            for instance, (position, handle, bdf) in enumerate(members):
                identity = _identity(smi, handle, index, position, bdf)
                if partitioned:
                    identity = replace(identity, instance_profile=mode, instance_id=str(instance))
                devices.append(_Device(identity=identity, handle=handle))
        return devices

    # -- read -----------------------------------------------------------------------------------------

    def read(self, gpu: GpuIdentity, fields: Collection[str]) -> Reading:
        with self._lock:
            device = self._devices.get(gpu.key)
        if device is None:
            raise GpuLost(f"GPU {gpu.key} is not among the devices amdsmi enumerated")
        smi = self._module()
        return read_groups(
            ((names, functools.partial(source, smi, device.handle)) for names, source in self._sources),
            set(fields),
            smi.AmdSmiException,
            lambda e: _classify(smi, e),
            lambda e: f"GPU {device.identity.key} ({device.identity.pci_bus_id}) is gone: {e}",
        )


# -- sources: one amdsmi call each; "N/A" never becomes a value ---------------------------------------


def _activity(smi: ModuleType, handle: Any) -> dict[str, float]:
    activity = smi.amdsmi_get_gpu_activity(handle)
    return _present({GPU_UTIL: activity["gfx_activity"], MEM_COPY_UTIL: activity["umc_activity"]})


def _vram(smi: ModuleType, handle: Any) -> dict[str, float]:
    """amdsmi's "MB" here is MiB (it divides bytes by 1024 * 1024), the contract's unit."""
    usage = smi.amdsmi_get_gpu_vram_usage(handle)
    total, used = _number(usage["vram_total"]), _number(usage["vram_used"])
    if total is None or used is None:
        return {}
    return {FB_USED: used, FB_FREE: total - used}


def _power(smi: ModuleType, handle: Any) -> dict[str, float]:
    """Watts. MI300 fills `current_socket_power`; older parts only `socket_power` (an average)."""
    info = smi.amdsmi_get_power_info(handle)
    for key in ("current_socket_power", "socket_power"):
        watts = _number(info.get(key))
        if watts is not None:
            return {POWER_USAGE: watts}
    return {}


def _energy(smi: ModuleType, handle: Any) -> dict[str, float]:
    """The accumulator counts in units of `counter_resolution` microjoules; the contract wants mJ."""
    energy = smi.amdsmi_get_energy_count(handle)
    count, resolution = _number(energy["energy_accumulator"]), _number(energy["counter_resolution"])
    if count is None or resolution is None:
        return {}
    return {TOTAL_ENERGY: count * resolution / 1000}


def _sm_clock(smi: ModuleType, handle: Any) -> dict[str, float]:
    return _present({SM_CLOCK: smi.amdsmi_get_clock_info(handle, smi.AmdSmiClkType.GFX)["clk"]})


def _mem_clock(smi: ModuleType, handle: Any) -> dict[str, float]:
    return _present({MEM_CLOCK: smi.amdsmi_get_clock_info(handle, smi.AmdSmiClkType.MEM)["clk"]})


def _gpu_temp(smi: ModuleType, handle: Any) -> dict[str, float]:
    """The hotspot (junction) sensor: MI300 has no edge sensor, and it is what throttling follows."""
    celsius = smi.amdsmi_get_temp_metric(handle, smi.AmdSmiTemperatureType.HOTSPOT, smi.AmdSmiTemperatureMetric.CURRENT)
    return _present({GPU_TEMP: celsius})


def _memory_temp(smi: ModuleType, handle: Any) -> dict[str, float]:
    celsius = smi.amdsmi_get_temp_metric(handle, smi.AmdSmiTemperatureType.VRAM, smi.AmdSmiTemperatureMetric.CURRENT)
    return _present({MEMORY_TEMP: celsius})


def _pcie_replay(smi: ModuleType, handle: Any) -> dict[str, float]:
    return _present({PCIE_REPLAY: smi.amdsmi_get_gpu_pci_replay_counter(handle)})


def _ecc(smi: ModuleType, handle: Any) -> dict[str, float]:
    counts = smi.amdsmi_get_gpu_total_ecc_count(handle)
    return _present({ECC_SBE: counts["correctable_count"], ECC_DBE: counts["uncorrectable_count"]})


# -- helpers --------------------------------------------------------------------------------------------


def _classify(smi: ModuleType, error: Any) -> Outcome:
    """`unsupported`, `lost`, `driver` or `failed`, from the status code of an amdsmi exception.

    NOT_SUPPORTED and NOT_YET_IMPLEMENTED mean the device cannot give the field. NOT_FOUND ("Device
    Not found") means the device went away (lost); DRIVER_NOT_LOADED and NOT_INIT that the driver
    did (the library must be opened again).
    Everything else (BUSY, TIMEOUT, RETRY, I/O errors, a parameter the library rejects) is a failed
    read of that field, tried again next cycle.
    """
    if not isinstance(error, smi.AmdSmiLibraryException):
        return "failed"
    code = error.get_error_code()
    if code in (
        smi.amdsmi_wrapper.AMDSMI_STATUS_NOT_SUPPORTED,
        smi.amdsmi_wrapper.AMDSMI_STATUS_NOT_YET_IMPLEMENTED,
    ):
        return "unsupported"
    if code == smi.amdsmi_wrapper.AMDSMI_STATUS_NOT_FOUND:
        return "lost"
    if code in (smi.amdsmi_wrapper.AMDSMI_STATUS_DRIVER_NOT_LOADED, smi.amdsmi_wrapper.AMDSMI_STATUS_NOT_INIT):
        return "driver"
    return "failed"


def _number(value: Any) -> float | None:
    """A reading as a float; None for amdsmi's "N/A" (or anything else that is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _present(values: dict[str, Any]) -> dict[str, float]:
    """Drop the "N/A" entries, so that those fields count as unsupported rather than 0."""
    return {name: number for name, value in values.items() if (number := _number(value)) is not None}


def _optional(smi: ModuleType, call: Callable[[], _T], default: _T) -> _T:
    """An identity detail some devices lack: its absence must not hide the GPU."""
    try:
        return call()
    except smi.AmdSmiException:
        return default


def _partition_mode(smi: ModuleType, handle: Any) -> str:
    """`SPX`, `CPX`, ...; empty where the GPU cannot be partitioned."""
    return _text(_optional(smi, lambda: smi.amdsmi_get_gpu_compute_partition(handle), ""))


def _text(value: Any) -> str:
    """A string detail, with amdsmi's "N/A" as empty."""
    text = str(value)
    return "" if text == "N/A" else text


def _identity(smi: ModuleType, handle: Any, index: int, position: int, bdf: str) -> GpuIdentity:
    asic: dict[str, Any] = _optional(smi, lambda: smi.amdsmi_get_gpu_asic_info(handle), {})
    driver: dict[str, Any] = _optional(smi, lambda: smi.amdsmi_get_gpu_driver_info(handle), {})
    enumeration: dict[str, Any] = _optional(smi, lambda: smi.amdsmi_get_gpu_enumeration_info(handle), {})
    card = enumeration.get("drm_card")
    vram = _optional(smi, lambda: smi.amdsmi_get_gpu_memory_total(handle, smi.AmdSmiMemoryType.VRAM), 0)
    return GpuIdentity(
        index=index,
        uuid=str(smi.amdsmi_get_gpu_device_uuid(handle)),
        pci_bus_id=bdf,
        model_name=_text(asic.get("market_name", "")),
        vendor="amd",
        device=f"card{card if isinstance(card, int) else position}",
        driver_version=_text(driver.get("driver_version", "")),
        arch=_text(asic.get("target_graphics_version", "")),
        vram_bytes=vram if isinstance(vram, int) else 0,
    )


def _topology(smi: ModuleType, gpus: list[_Device]) -> list[P2PLink]:
    """Every ordered pair of physical GPUs: xGMI where amdsmi says so, else PCIe."""
    xgmi = smi.AmdSmiLinkType.AMDSMI_LINK_TYPE_XGMI
    links: list[P2PLink] = []
    for gpu in gpus:
        for peer in gpus:
            if peer is gpu:
                continue
            try:
                link = smi.amdsmi_topo_get_link_type(gpu.handle, peer.handle)
            except smi.AmdSmiException:
                continue
            kind = "xgmi" if link["type"] == xgmi else "pcie"
            links.append(P2PLink(gpu.identity.index, peer.identity.index, kind))
    return links


def _shutdown(smi: ModuleType) -> None:
    try:
        smi.amdsmi_shut_down()
    except smi.AmdSmiException as e:
        log.debug("amdsmi: shutdown failed: %s", e)
