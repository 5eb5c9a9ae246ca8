"""The NVML backend: NVIDIA GPUs through nvidia-ml-py (the `pynvml` module).

It sits behind the `exporter.backend.GpuBackend` port, between the collector and NVIDIA's library, and
is the only place that knows NVML's calls, units and error codes. Units are converted here, at the
edge, to the metric contract's (mW -> W, bytes -> MiB, GPM percentages -> 0-1 ratios), and NVML's
errors are mapped onto the backend error tree: a field the device cannot give goes into
`Reading.unsupported`, a lost GPU raises `GpuLost`, anything else puts the field in `Reading.failed`.

The `pynvml` module is a constructor parameter so that unit tests can pass a fake that replays
recorded readings; the real module is imported only in `open()`, so importing this file needs neither
the package nor a driver. The names this file uses on the module are checked against the installed
nvidia-ml-py by `tests/test_backend_contracts.py`.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any, TypeAlias, TypeVar

from exporter.backend import DriverUnavailable, GpuLost
from exporter.backends.sources import Outcome, read_groups
from exporter.gpu import GpuIdentity, Node, P2PLink, Reading

log = logging.getLogger(__name__)

_MIB = 1024 * 1024
_MIG_PROFILE = re.compile(r"\bMIG\s+(\S+)")
"""MIG devices are named after their parent plus the profile: `NVIDIA H100 80GB HBM3 MIG 1g.10gb`."""

_ARCH_BY_CC: dict[tuple[int, int], str] = {
    (7, 0): "volta",
    (7, 2): "volta",
    (7, 5): "turing",
    (8, 0): "ampere",
    (8, 6): "ampere",
    (8, 7): "ampere",
    (8, 9): "ada",
    (9, 0): "hopper",
}
_BLACKWELL_MAJORS = (10, 12)

_T = TypeVar("_T")

GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
MEM_COPY_UTIL = "DCGM_FI_DEV_MEM_COPY_UTIL"
ENC_UTIL = "DCGM_FI_DEV_ENC_UTIL"
DEC_UTIL = "DCGM_FI_DEV_DEC_UTIL"
FB_USED = "DCGM_FI_DEV_FB_USED"
FB_FREE = "DCGM_FI_DEV_FB_FREE"
FB_RESERVED = "DCGM_FI_DEV_FB_RESERVED"
POWER_USAGE = "DCGM_FI_DEV_POWER_USAGE"
TOTAL_ENERGY = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
SM_CLOCK = "DCGM_FI_DEV_SM_CLOCK"
MEM_CLOCK = "DCGM_FI_DEV_MEM_CLOCK"
GPU_TEMP = "DCGM_FI_DEV_GPU_TEMP"
MEMORY_TEMP = "DCGM_FI_DEV_MEMORY_TEMP"
PCIE_REPLAY = "DCGM_FI_DEV_PCIE_REPLAY_COUNTER"
XID_ERRORS = "DCGM_FI_DEV_XID_ERRORS"
ECC_SBE = "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"
ECC_DBE = "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"
REMAPPED_CORRECTABLE = "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS"
REMAPPED_UNCORRECTABLE = "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"
ROW_REMAP_FAILURE = "DCGM_FI_DEV_ROW_REMAP_FAILURE"
PROF_GR_ENGINE = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
PROF_TENSOR = "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"
PROF_DRAM = "DCGM_FI_PROF_DRAM_ACTIVE"

_MIG_FIELDS = frozenset({FB_USED, FB_FREE, FB_RESERVED, PROF_GR_ENGINE, PROF_TENSOR, PROF_DRAM})
"""What a MIG instance can report: its own memory and, through GPM, its own activity."""


@dataclass
class _Device:
    """One enumerated device (whole GPU or MIG instance) and the state its reads carry over."""

    identity: GpuIdentity
    handle: Any
    parent: Any = None
    """The whole GPU's handle for a MIG instance (GPM samples a MIG instance through its parent)."""
    gpu_instance_id: int = 0
    events: Any = None
    """XID event set; None where the device would not register for XID events."""
    last_xid: int = 0
    gpm_supported: bool | None = None
    gpm_samples: list[Any] = field(default_factory=list)
    """[previous, spare]: swapped after every sample so that two buffers last for the device's life."""
    gpm_primed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    """Guards the event set and GPM samples against two reads of this device at once."""


_Source: TypeAlias = Callable[[ModuleType, _Device], dict[str, float] | None]
"""Reads a group of fields with one NVML call. A wanted field of the group that is missing from the
result is unsupported; None means "no value this cycle" (GPM before its second sample)."""


class NvmlBackend:
    """NVIDIA GPUs, their MIG instances and NVLink topology, read through NVML."""

    name = "nvml"
    simulated = False

    def __init__(self, nvml: ModuleType | None = None) -> None:
        self._nvml = nvml
        self._lock = threading.Lock()
        self._devices: dict[str, _Device] = {}
        self._sources: tuple[tuple[frozenset[str], _Source], ...] = (
            (frozenset({GPU_UTIL, MEM_COPY_UTIL}), self._utilization),
            (frozenset({ENC_UTIL}), self._encoder),
            (frozenset({DEC_UTIL}), self._decoder),
            (frozenset({FB_USED, FB_FREE, FB_RESERVED}), self._memory),
            (frozenset({POWER_USAGE}), self._power),
            (frozenset({TOTAL_ENERGY}), self._energy),
            (frozenset({SM_CLOCK}), self._sm_clock),
            (frozenset({MEM_CLOCK}), self._mem_clock),
            (frozenset({GPU_TEMP}), self._gpu_temp),
            (frozenset({MEMORY_TEMP}), self._memory_temp),
            (frozenset({PCIE_REPLAY}), self._pcie_replay),
            (frozenset({ECC_SBE}), self._ecc_sbe),
            (frozenset({ECC_DBE}), self._ecc_dbe),
            (frozenset({REMAPPED_CORRECTABLE, REMAPPED_UNCORRECTABLE, ROW_REMAP_FAILURE}), self._remapped),
            (frozenset({XID_ERRORS}), self._xid),
            (frozenset({PROF_GR_ENGINE, PROF_TENSOR, PROF_DRAM}), self._gpm),
        )

    # -- open / close ---------------------------------------------------------------------------------

    def open(self) -> Node:
        if self._devices:
            self.close()
        nvml = self._module()
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as e:
            raise DriverUnavailable(f"NVML did not initialise: {e}") from e
        try:
            driver = _text(nvml.nvmlSystemGetDriverVersion())
            count = nvml.nvmlDeviceGetCount()
        except nvml.NVMLError as e:
            _shutdown(nvml)
            raise DriverUnavailable(f"NVML initialised but cannot list GPUs: {e}") from e
        devices: list[_Device] = []
        for index in range(count):
            try:
                gpu = _whole_gpu(nvml, index, driver)
            except nvml.NVMLError as e:
                log.warning("nvml: GPU %d left out: it did not answer while enumerating: %s", index, e)
                continue
            devices.append(gpu)
            devices.extend(_mig_instances(nvml, gpu))
        whole = [d for d in devices if d.parent is None]
        links = _topology(nvml, whole)
        with self._lock:
            self._devices = {d.identity.key: d for d in devices}
        return Node(gpus=tuple(d.identity for d in devices), links=tuple(links))

    def close(self) -> None:
        with self._lock:
            devices, self._devices = self._devices, {}
        nvml = self._nvml
        if nvml is None:
            return
        for device in devices.values():
            with device.lock:
                _free(nvml, device)
        _shutdown(nvml)

    def _module(self) -> ModuleType:
        """The pynvml module: the one given, else nvidia-ml-py's, imported on first use."""
        if self._nvml is None:
            try:
                import pynvml
            except ImportError as e:
                raise DriverUnavailable("nvidia-ml-py (pynvml) is not installed") from e
            self._nvml = pynvml
        return self._nvml

    # -- read -----------------------------------------------------------------------------------------

    def read(self, gpu: GpuIdentity, fields: Collection[str]) -> Reading:
        with self._lock:
            device = self._devices.get(gpu.key)
        if device is None:
            raise GpuLost(f"GPU {gpu.key} is not among the devices NVML enumerated")
        nvml = self._module()
        wanted = set(fields)
        # A MIG instance has its own memory and GPM counters; everything else is the parent GPU's.
        groups = (
            (names & _MIG_FIELDS if device.parent is not None else names, functools.partial(source, nvml, device))
            for names, source in self._sources
        )
        return read_groups(
            groups,
            wanted,
            nvml.NVMLError,
            lambda e: _classify(nvml, e),
            lambda e: f"GPU {device.identity.key} ({device.identity.uuid}) is lost: {e}",
        )

    # -- sources: one NVML call each, units converted to the metric contract's -----------------------

    @staticmethod
    def _utilization(nvml: ModuleType, device: _Device) -> dict[str, float]:
        rates = nvml.nvmlDeviceGetUtilizationRates(device.handle)
        return {GPU_UTIL: float(rates.gpu), MEM_COPY_UTIL: float(rates.memory)}

    @staticmethod
    def _encoder(nvml: ModuleType, device: _Device) -> dict[str, float]:
        return {ENC_UTIL: float(nvml.nvmlDeviceGetEncoderUtilization(device.handle)[0])}

    @staticmethod
    def _decoder(nvml: ModuleType, device: _Device) -> dict[str, float]:
        return {DEC_UTIL: float(nvml.nvmlDeviceGetDecoderUtilization(device.handle)[0])}

    @staticmethod
    def _memory(nvml: ModuleType, device: _Device) -> dict[str, float]:
        """FB in MiB; the v2 call is the only one that splits out what the driver reserves."""
        try:
            memory = nvml.nvmlDeviceGetMemoryInfo(device.handle, version=nvml.nvmlMemory_v2)
        except nvml.NVMLError as e:
            if _classify(nvml, e) != "unsupported":
                raise
            memory = nvml.nvmlDeviceGetMemoryInfo(device.handle)
            return {FB_USED: memory.used / _MIB, FB_FREE: memory.free / _MIB}
        return {
            FB_USED: memory.used / _MIB,
            FB_FREE: memory.free / _MIB,
            FB_RESERVED: memory.reserved / _MIB,
        }

    @staticmethod
    def _power(nvml: ModuleType, device: _Device) -> dict[str, float]:
        return {POWER_USAGE: nvml.nvmlDeviceGetPowerUsage(device.handle) / 1000}

    @staticmethod
    def _energy(nvml: ModuleType, device: _Device) -> dict[str, float]:
        return {TOTAL_ENERGY: float(nvml.nvmlDeviceGetTotalEnergyConsumption(device.handle))}

    @staticmethod
    def _sm_clock(nvml: ModuleType, device: _Device) -> dict[str, float]:
        return {SM_CLOCK: float(nvml.nvmlDeviceGetClockInfo(device.handle, nvml.NVML_CLOCK_SM))}

    @staticmethod
    def _mem_clock(nvml: ModuleType, device: _Device) -> dict[str, float]:
        return {MEM_CLOCK: float(nvml.nvmlDeviceGetClockInfo(device.handle, nvml.NVML_CLOCK_MEM))}

    @staticmethod
    def _gpu_temp(nvml: ModuleType, device: _Device) -> dict[str, float]:
        return {GPU_TEMP: float(nvml.nvmlDeviceGetTemperature(device.handle, nvml.NVML_TEMPERATURE_GPU))}

    @staticmethod
    def _memory_temp(nvml: ModuleType, device: _Device) -> dict[str, float]:
        """HBM temperature has no getter of its own, only a field id; its status rides in the value."""
        value = nvml.nvmlDeviceGetFieldValues(device.handle, [nvml.NVML_FI_DEV_MEMORY_TEMP])[0]
        if value.nvmlReturn != nvml.NVML_SUCCESS:
            raise nvml.NVMLError(value.nvmlReturn)
        return {MEMORY_TEMP: _field_value(nvml, value)}

    @staticmethod
    def _pcie_replay(nvml: ModuleType, device: _Device) -> dict[str, float]:
        return {PCIE_REPLAY: float(nvml.nvmlDeviceGetPcieReplayCounter(device.handle))}

    @staticmethod
    def _ecc_sbe(nvml: ModuleType, device: _Device) -> dict[str, float]:
        count = nvml.nvmlDeviceGetTotalEccErrors(
            device.handle, nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, nvml.NVML_VOLATILE_ECC
        )
        return {ECC_SBE: float(count)}

    @staticmethod
    def _ecc_dbe(nvml: ModuleType, device: _Device) -> dict[str, float]:
        count = nvml.nvmlDeviceGetTotalEccErrors(
            device.handle, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_VOLATILE_ECC
        )
        return {ECC_DBE: float(count)}

    @staticmethod
    def _remapped(nvml: ModuleType, device: _Device) -> dict[str, float]:
        correctable, uncorrectable, _pending, failure = nvml.nvmlDeviceGetRemappedRows(device.handle)
        return {
            REMAPPED_CORRECTABLE: float(correctable),
            REMAPPED_UNCORRECTABLE: float(uncorrectable),
            ROW_REMAP_FAILURE: float(failure),
        }

    @staticmethod
    def _xid(nvml: ModuleType, device: _Device) -> dict[str, float]:
        """Drain the device's XID events without waiting; the value is the last XID seen, 0 if none."""
        if device.events is None:
            return {}
        with device.lock:
            while True:
                try:
                    event = nvml.nvmlEventSetWait_v2(device.events, 0)
                except nvml.NVMLError as e:
                    if e.value == nvml.NVML_ERROR_TIMEOUT:
                        break
                    raise
                device.last_xid = int(event.eventData)
            return {XID_ERRORS: float(device.last_xid)}

    @staticmethod
    def _gpm(nvml: ModuleType, device: _Device) -> dict[str, float] | None:
        """Profiling ratios from GPM, which measures between two samples: the first read only primes."""
        with device.lock:
            if device.gpm_supported is None:
                whole_gpu = device.parent if device.parent is not None else device.handle
                support = nvml.nvmlGpmQueryDeviceSupport(whole_gpu)
                device.gpm_supported = bool(support.isSupportedDevice)
            if not device.gpm_supported:
                return {}
            if not device.gpm_samples:
                device.gpm_samples = [nvml.nvmlGpmSampleAlloc(), nvml.nvmlGpmSampleAlloc()]
            previous, current = device.gpm_samples
            if device.parent is not None:
                nvml.nvmlGpmMigSampleGet(device.parent, device.gpu_instance_id, current)
            else:
                nvml.nvmlGpmSampleGet(device.handle, current)
            device.gpm_samples = [current, previous]
            if not device.gpm_primed:
                device.gpm_primed = True
                return None
            return _gpm_metrics(nvml, previous, current)


# -- helpers that need no backend state -------------------------------------------------------------


def _classify(nvml: ModuleType, error: Any) -> Outcome:
    """`unsupported`, `lost`, `driver` or `failed`, from the NVML return code an NVMLError carries.

    After a driver reload NVML answers UNINITIALIZED (or DRIVER_NOT_LOADED), and after a driver
    upgrade LIB_RM_VERSION_MISMATCH, for every device: the library must be opened again.
    """
    code = getattr(error, "value", None)
    if code in (nvml.NVML_ERROR_NOT_SUPPORTED, nvml.NVML_ERROR_FUNCTION_NOT_FOUND):
        return "unsupported"
    if code == nvml.NVML_ERROR_GPU_IS_LOST:
        return "lost"
    if code in (
        nvml.NVML_ERROR_UNINITIALIZED,
        nvml.NVML_ERROR_DRIVER_NOT_LOADED,
        nvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
    ):
        return "driver"
    return "failed"


def _text(value: str | bytes) -> str:
    """NVML strings arrive as bytes or str depending on the nvidia-ml-py version."""
    return value.decode() if isinstance(value, bytes) else value


def _arch(major: int, minor: int) -> str:
    if major in _BLACKWELL_MAJORS:
        return "blackwell"
    return _ARCH_BY_CC.get((major, minor), "")


def _optional(nvml: ModuleType, call: Callable[[], _T], default: _T) -> _T:
    """An identity detail some devices lack: its absence must not hide the GPU."""
    try:
        return call()
    except nvml.NVMLError:
        return default


def _shutdown(nvml: ModuleType) -> None:
    try:
        nvml.nvmlShutdown()
    except nvml.NVMLError as e:
        log.debug("nvml: shutdown failed: %s", e)


def _free(nvml: ModuleType, device: _Device) -> None:
    """Release the device's event set and GPM samples; errors only mean the GPU is already gone."""
    try:
        if device.events is not None:
            nvml.nvmlEventSetFree(device.events)
        for sample in device.gpm_samples:
            nvml.nvmlGpmSampleFree(sample)
    except nvml.NVMLError as e:
        log.debug("nvml: freeing %s failed: %s", device.identity.key, e)
    device.events = None
    device.gpm_samples = []


def _register_xid(nvml: ModuleType, handle: Any) -> Any:
    """An event set listening for the device's XID errors, or None where it cannot (XID unsupported)."""
    try:
        events = nvml.nvmlEventSetCreate()
    except nvml.NVMLError:
        return None
    try:
        nvml.nvmlDeviceRegisterEvents(handle, nvml.nvmlEventTypeXidCriticalError, events)
    except nvml.NVMLError:
        _optional(nvml, lambda: nvml.nvmlEventSetFree(events), None)
        return None
    return events


def _whole_gpu(nvml: ModuleType, index: int, driver: str) -> _Device:
    """A whole GPU's identity and XID event set; raises NVMLError if it does not answer at all."""
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    major, minor = _optional(nvml, lambda: nvml.nvmlDeviceGetCudaComputeCapability(handle), (0, 0))
    memory = _optional(nvml, lambda: nvml.nvmlDeviceGetMemoryInfo(handle), None)
    minor_number = _optional(nvml, lambda: nvml.nvmlDeviceGetMinorNumber(handle), index)
    identity = GpuIdentity(
        index=index,
        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
        pci_bus_id=_text(nvml.nvmlDeviceGetPciInfo(handle).busId),
        model_name=_text(nvml.nvmlDeviceGetName(handle)),
        vendor="nvidia",
        device=f"nvidia{minor_number}",
        driver_version=driver,
        compute_capability=f"{major}.{minor}" if major else "",
        arch=_arch(major, minor),
        vram_bytes=int(memory.total) if memory is not None else 0,
    )
    return _Device(identity=identity, handle=handle, events=_register_xid(nvml, handle))


def _mig_instances(nvml: ModuleType, gpu: _Device) -> list[_Device]:
    """The GPU's MIG devices, one per GPU instance.

    A GPU instance split into several compute instances shows up as several MIG devices with the same
    GPU-instance id; only the first is kept, since memory and GPM samples are per GPU instance.
    """
    mode = _optional(nvml, lambda: nvml.nvmlDeviceGetMigMode(gpu.handle), None)
    if mode is None or mode[0] != nvml.NVML_DEVICE_MIG_ENABLE:
        return []
    slots = _optional(nvml, lambda: nvml.nvmlDeviceGetMaxMigDeviceCount(gpu.handle), 0)
    instances: dict[int, _Device] = {}
    for slot in range(slots):
        try:
            handle = nvml.nvmlDeviceGetMigDeviceHandleByIndex(gpu.handle, slot)
            instance_id = int(nvml.nvmlDeviceGetGpuInstanceId(handle))
            if instance_id in instances:
                continue
            profile = _MIG_PROFILE.search(_text(nvml.nvmlDeviceGetName(handle)))
            identity = replace(
                gpu.identity,
                instance_profile=profile.group(1) if profile else "",
                instance_id=str(instance_id),
                instance_uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
                vram_bytes=int(nvml.nvmlDeviceGetMemoryInfo(handle).total),
            )
        except nvml.NVMLError:
            continue  # an empty slot (NotFound) or an instance torn down while we looked
        instances[instance_id] = _Device(
            identity=identity, handle=handle, parent=gpu.handle, gpu_instance_id=instance_id
        )
    return list(instances.values())


def _topology(nvml: ModuleType, gpus: list[_Device]) -> list[P2PLink]:
    """Every ordered pair of whole GPUs: NVLink where NVML says P2P over NVLink works, else PCIe."""
    lanes = {gpu.identity.key: _nvlink_lanes(nvml, gpu.handle) for gpu in gpus}
    links: list[P2PLink] = []
    for gpu in gpus:
        for peer in gpus:
            if peer is gpu:
                continue
            try:
                status = nvml.nvmlDeviceGetP2PStatus(gpu.handle, peer.handle, nvml.NVML_P2P_CAPS_INDEX_NVLINK)
            except nvml.NVMLError:
                continue
            if status == nvml.NVML_P2P_STATUS_OK:
                direct, switched = lanes[gpu.identity.key]
                count = direct.get(peer.identity.pci_bus_id.upper()) or switched or 1
                links.append(P2PLink(gpu.identity.index, peer.identity.index, "nvlink", count))
            else:
                links.append(P2PLink(gpu.identity.index, peer.identity.index, "pcie"))
    return links


def _nvlink_lanes(nvml: ModuleType, handle: Any) -> tuple[Counter[str], int]:
    """Active NVLink lanes: per directly attached peer (by PCI bus id), and those to NVSwitches.

    Behind NVSwitches every lane reaches every peer, so a peer's lane count is the switched count.
    """
    direct: Counter[str] = Counter()
    switched = 0
    for link in range(nvml.NVML_NVLINK_MAX_LINKS):
        try:
            if nvml.nvmlDeviceGetNvLinkState(handle, link) != nvml.NVML_FEATURE_ENABLED:
                continue
            remote = nvml.nvmlDeviceGetNvLinkRemoteDeviceType(handle, link)
            if remote == nvml.NVML_NVLINK_DEVICE_TYPE_SWITCH:
                switched += 1
            else:
                direct[_text(nvml.nvmlDeviceGetNvLinkRemotePciInfo(handle, link).busId).upper()] += 1
        except nvml.NVMLError:
            break  # past the device's last link, or no NVLink at all
    return direct, switched


def _field_value(nvml: ModuleType, value: Any) -> float:
    """The number in an nvmlFieldValue_t, whose union member depends on its valueType."""
    members = {
        nvml.NVML_VALUE_TYPE_DOUBLE: "dVal",
        nvml.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
        nvml.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
        nvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
        nvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
        nvml.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
        nvml.NVML_VALUE_TYPE_UNSIGNED_SHORT: "usVal",
    }
    member = members.get(value.valueType)
    if member is None:
        raise nvml.NVMLError(nvml.NVML_ERROR_UNKNOWN)
    return float(getattr(value.value, member))


def _gpm_metrics(nvml: ModuleType, previous: Any, current: Any) -> dict[str, float]:
    """GPM percentages between two samples, as 0-1 ratios; a metric NVML cannot give is left out."""
    metrics = (
        (nvml.NVML_GPM_METRIC_GRAPHICS_UTIL, PROF_GR_ENGINE),
        (nvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL, PROF_TENSOR),
        (nvml.NVML_GPM_METRIC_DRAM_BW_UTIL, PROF_DRAM),
    )
    request = nvml.c_nvmlGpmMetricsGet_t()
    request.version = nvml.NVML_GPM_METRICS_GET_VERSION
    request.numMetrics = len(metrics)
    request.sample1 = previous
    request.sample2 = current
    for i, (metric_id, _) in enumerate(metrics):
        request.metrics[i].metricId = metric_id
    nvml.nvmlGpmMetricsGet(request)
    values: dict[str, float] = {}
    for i, (_, name) in enumerate(metrics):
        metric = request.metrics[i]
        if metric.nvmlReturn == nvml.NVML_SUCCESS:
            values[name] = metric.value / 100
    return values
