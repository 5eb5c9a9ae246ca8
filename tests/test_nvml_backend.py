"""Unit tests of the NVML backend's unit conversions, error mapping, MIG enumeration and topology.

They run against `FakeNvml`, a hand-written fake of the `pynvml` module that replays recorded
readings. Passing them is not evidence that the real NVML path works: that takes a GPU. What keeps the
fake honest is that it borrows pynvml's real constants, error classes and ctypes structures, answers
only functions the real pynvml defines, and that `test_backend_contracts.py` checks every name the
backend uses against the installed package.
"""

from __future__ import annotations

import ctypes
import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import pynvml
import pytest

from exporter.backend import DriverLost, DriverUnavailable, GpuLost
from exporter.backends.nvml import NvmlBackend
from exporter.gpu import GpuIdentity, P2PLink

MIB = 1024 * 1024
H100_BYTES = 81559 * MIB
SWITCH = pynvml.NVML_NVLINK_DEVICE_TYPE_SWITCH


class Replay:
    """Successive answers to one recorded call, the last repeated."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)

    def next(self) -> Any:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class FakeNvml(ModuleType):
    """FAKE pynvml: replays recorded readings; it is not evidence that the real library path works.

    `recordings` maps a call, as `(function name, *arguments, *sorted keyword items)`, to its answer:
    a value, an exception to raise, a `Replay` of successive answers, or a callable given the
    arguments; `(function name,)` alone answers that function whatever its arguments. A call nobody
    recorded answers NVMLError_NotSupported, like a device without that feature. Constants, error
    classes and ctypes structures are the real pynvml's; calls are logged in `calls`.
    """

    def __init__(self, recordings: dict[tuple[Any, ...], Any]) -> None:
        super().__init__("pynvml")
        self.recordings = recordings
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        real = getattr(pynvml, name)
        if not inspect.isfunction(real):
            return real

        def replay(*args: Any, **kwargs: Any) -> Any:
            key = (name, *(tuple(a) if isinstance(a, list) else a for a in args), *sorted(kwargs.items()))
            self.calls.append(key)
            answer = self.recordings.get(_hashable(key), self.recordings.get((name,), pynvml.NVMLError_NotSupported()))
            if isinstance(answer, Replay):
                answer = answer.next()
            if isinstance(answer, BaseException):
                raise answer
            if callable(answer) and not isinstance(answer, type):
                return answer(*args)
            return answer

        return replay


def _hashable(key: tuple[Any, ...]) -> tuple[Any, ...]:
    """The key, or just its function name where an argument (a ctypes pointer) cannot be hashed."""
    try:
        hash(key)
    except TypeError:
        return key[:1]
    return key


def memory_v2(total: int, reserved: int, used: int) -> Any:
    return pynvml.c_nvmlMemory_v2_t(pynvml.nvmlMemory_v2, total, reserved, total - reserved - used, used)


def memory_v1(total: int, used: int) -> Any:
    return pynvml.c_nvmlMemory_t(total, total - used, used)


def pci(bus_id: bytes) -> Any:
    info = pynvml.nvmlPciInfo_t()
    info.busId = bus_id
    return info


def field_value(value: int, status: int = pynvml.NVML_SUCCESS) -> list[Any]:
    field = pynvml.c_nvmlFieldValue_t()
    field.fieldId = pynvml.NVML_FI_DEV_MEMORY_TEMP
    field.nvmlReturn = status
    field.valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
    field.value.uiVal = value
    return [field]


def xid_event(xid: int) -> Any:
    event = pynvml.c_nvmlEventData_t()
    event.eventType = pynvml.nvmlEventTypeXidCriticalError
    event.eventData = xid
    return event


def gpm_results(percent: dict[int, float | None]) -> Callable[[Any], Any]:
    """An nvmlGpmMetricsGet that fills in the recorded percentages (None: the metric is unsupported)."""

    def fill(request: Any) -> Any:
        for i in range(request.numMetrics):
            metric = request.metrics[i]
            value = percent[metric.metricId]
            metric.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED if value is None else pynvml.NVML_SUCCESS
            metric.value = value or 0.0
        return request

    return fill


def h100_node() -> dict[tuple[Any, ...], Any]:
    """Three GPUs: gpu0 is a MIG-enabled H100 (two GPU instances), NVLinked to gpu1; gpu2 sits on PCIe."""
    recordings: dict[tuple[Any, ...], Any] = {
        ("nvmlInit",): None,
        ("nvmlShutdown",): None,
        ("nvmlSystemGetDriverVersion",): "550.54.15",
        ("nvmlDeviceGetCount",): 3,
        ("nvmlGpmSampleAlloc",): lambda: pynvml.c_nvmlGpmSample_t(),
    }
    for i, handle in enumerate(("gpu0", "gpu1", "gpu2")):
        recordings |= {
            ("nvmlDeviceGetHandleByIndex", i): handle,
            ("nvmlDeviceGetUUID", handle): f"GPU-0000000{i}-aaaa-bbbb-cccc-dddddddddddd",
            ("nvmlDeviceGetPciInfo", handle): pci(f"00000000:{0x18 + i:02X}:00.0".encode()),
            ("nvmlDeviceGetName", handle): "NVIDIA H100 80GB HBM3",
            ("nvmlDeviceGetCudaComputeCapability", handle): (9, 0),
            ("nvmlDeviceGetMemoryInfo", handle): memory_v1(H100_BYTES, 0),
            ("nvmlDeviceGetMinorNumber", handle): i + 4,
        }
    recordings |= {
        ("nvmlDeviceGetMigMode", "gpu0"): [pynvml.NVML_DEVICE_MIG_ENABLE, pynvml.NVML_DEVICE_MIG_ENABLE],
        ("nvmlDeviceGetMigMode", "gpu1"): [0, 0],
        ("nvmlDeviceGetMaxMigDeviceCount", "gpu0"): 4,
        ("nvmlDeviceGetMigDeviceHandleByIndex", "gpu0", 0): "mig0",
        ("nvmlDeviceGetMigDeviceHandleByIndex", "gpu0", 1): pynvml.NVMLError_NotFound(),
        ("nvmlDeviceGetMigDeviceHandleByIndex", "gpu0", 2): "mig2",
        ("nvmlDeviceGetMigDeviceHandleByIndex", "gpu0", 3): "mig2-second-compute-instance",
        ("nvmlDeviceGetGpuInstanceId", "mig0"): 7,
        ("nvmlDeviceGetGpuInstanceId", "mig2"): 9,
        ("nvmlDeviceGetGpuInstanceId", "mig2-second-compute-instance"): 9,
        ("nvmlDeviceGetName", "mig0"): "NVIDIA H100 80GB HBM3 MIG 1g.10gb",
        ("nvmlDeviceGetName", "mig2"): "NVIDIA H100 80GB HBM3 MIG 3g.40gb",
        ("nvmlDeviceGetUUID", "mig0"): "MIG-11111111-2222-3333-4444-555555555555",
        ("nvmlDeviceGetUUID", "mig2"): "MIG-66666666-2222-3333-4444-555555555555",
        ("nvmlDeviceGetMemoryInfo", "mig0"): memory_v1(9984 * MIB, 0),
        ("nvmlDeviceGetMemoryInfo", "mig2"): memory_v1(40192 * MIB, 0),
        # gpu0 has four active lanes to gpu1, then runs out of links; gpu1 reaches gpu0 through
        # NVSwitches on two lanes; gpu2 has no NVLink (the fake answers NotSupported).
        ("nvmlDeviceGetNvLinkState", "gpu0", 4): pynvml.NVMLError_InvalidArgument(),
        ("nvmlDeviceGetNvLinkState", "gpu1", 2): pynvml.NVMLError_InvalidArgument(),
    }
    for link in range(4):
        recordings |= {
            ("nvmlDeviceGetNvLinkState", "gpu0", link): pynvml.NVML_FEATURE_ENABLED,
            ("nvmlDeviceGetNvLinkRemoteDeviceType", "gpu0", link): pynvml.NVML_NVLINK_DEVICE_TYPE_GPU,
            ("nvmlDeviceGetNvLinkRemotePciInfo", "gpu0", link): pci(b"00000000:19:00.0"),
        }
    for link in range(2):
        recordings |= {
            ("nvmlDeviceGetNvLinkState", "gpu1", link): pynvml.NVML_FEATURE_ENABLED,
            ("nvmlDeviceGetNvLinkRemoteDeviceType", "gpu1", link): SWITCH,
        }
    nvlink, caps = pynvml.NVML_P2P_STATUS_OK, pynvml.NVML_P2P_CAPS_INDEX_NVLINK
    not_nvlink = pynvml.NVML_P2P_STATUS_NOT_SUPPORTED
    recordings |= {
        ("nvmlDeviceGetP2PStatus", "gpu0", "gpu1", caps): nvlink,
        ("nvmlDeviceGetP2PStatus", "gpu1", "gpu0", caps): nvlink,
        ("nvmlDeviceGetP2PStatus", "gpu0", "gpu2", caps): not_nvlink,
        ("nvmlDeviceGetP2PStatus", "gpu2", "gpu0", caps): pynvml.NVMLError_Unknown(),
        ("nvmlDeviceGetP2PStatus", "gpu1", "gpu2", caps): not_nvlink,
        ("nvmlDeviceGetP2PStatus", "gpu2", "gpu1", caps): not_nvlink,
    }
    # XID event sets are created in enumeration order; gpu2 cannot register (the fake answers NotSupported).
    recordings[("nvmlEventSetCreate",)] = Replay("set0", "set1", "set2")
    for i in range(2):
        recordings[("nvmlDeviceRegisterEvents", f"gpu{i}", pynvml.nvmlEventTypeXidCriticalError, f"set{i}")] = None
        recordings[("nvmlEventSetWait_v2", f"set{i}", 0)] = pynvml.NVMLError_Timeout()
    return recordings


class Opened:
    """A backend opened over a fake node, with helpers to find identities and re-record calls."""

    def __init__(self, recordings: dict[tuple[Any, ...], Any]) -> None:
        self.fake = FakeNvml(recordings)
        self.backend = NvmlBackend(self.fake)
        self.node = self.backend.open()

    def gpu(self, index: int, instance_id: str = "") -> GpuIdentity:
        return next(g for g in self.node.gpus if g.index == index and g.instance_id == instance_id)

    def record(self, *key: Any, answer: Any) -> None:
        self.fake.recordings[key] = answer


FIELDS = (
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_MEM_COPY_UTIL",
    "DCGM_FI_DEV_ENC_UTIL",
    "DCGM_FI_DEV_DEC_UTIL",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_FB_FREE",
    "DCGM_FI_DEV_FB_RESERVED",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    "DCGM_FI_DEV_SM_CLOCK",
    "DCGM_FI_DEV_MEM_CLOCK",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_MEMORY_TEMP",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
    "DCGM_FI_DEV_XID_ERRORS",
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_ROW_REMAP_FAILURE",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
    "DCGM_FI_PROF_DRAM_ACTIVE",
)
PROF = {"DCGM_FI_PROF_GR_ENGINE_ACTIVE", "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "DCGM_FI_PROF_DRAM_ACTIVE"}
V2 = ("version", pynvml.nvmlMemory_v2)


def record_readings(opened: Opened, handle: str) -> None:
    """A busy H100's answers, in NVML's own units."""
    corrected, uncorrected = (
        pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED,
        pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
    )
    volatile = pynvml.NVML_VOLATILE_ECC
    opened.record("nvmlDeviceGetUtilizationRates", handle, answer=pynvml.c_nvmlUtilization_t(87, 41))
    opened.record("nvmlDeviceGetEncoderUtilization", handle, answer=[12, 167000])
    opened.record("nvmlDeviceGetDecoderUtilization", handle, answer=[3, 167000])
    opened.record("nvmlDeviceGetMemoryInfo", handle, V2, answer=memory_v2(H100_BYTES, 510 * MIB, 40000 * MIB))
    opened.record("nvmlDeviceGetPowerUsage", handle, answer=251234)
    opened.record("nvmlDeviceGetTotalEnergyConsumption", handle, answer=987654321)
    opened.record("nvmlDeviceGetClockInfo", handle, pynvml.NVML_CLOCK_SM, answer=1980)
    opened.record("nvmlDeviceGetClockInfo", handle, pynvml.NVML_CLOCK_MEM, answer=2619)
    opened.record("nvmlDeviceGetTemperature", handle, pynvml.NVML_TEMPERATURE_GPU, answer=64)
    opened.record("nvmlDeviceGetFieldValues", handle, (pynvml.NVML_FI_DEV_MEMORY_TEMP,), answer=field_value(71))
    opened.record("nvmlDeviceGetPcieReplayCounter", handle, answer=5)
    opened.record("nvmlDeviceGetTotalEccErrors", handle, corrected, volatile, answer=2)
    opened.record("nvmlDeviceGetTotalEccErrors", handle, uncorrected, volatile, answer=0)
    opened.record("nvmlDeviceGetRemappedRows", handle, answer=(3, 1, 0, 0))


@pytest.fixture
def opened() -> Opened:
    return Opened(h100_node())


# -- open ------------------------------------------------------------------------------------------------


def test_open_enumerates_whole_gpus_then_their_mig_instances(opened: Opened) -> None:
    assert [g.key for g in opened.node.gpus] == ["0", "0/7", "0/9", "1", "2"]
    assert opened.gpu(1) == GpuIdentity(
        index=1,
        uuid="GPU-00000001-aaaa-bbbb-cccc-dddddddddddd",
        pci_bus_id="00000000:19:00.0",
        model_name="NVIDIA H100 80GB HBM3",
        vendor="nvidia",
        device="nvidia5",
        driver_version="550.54.15",
        compute_capability="9.0",
        arch="hopper",
        vram_bytes=H100_BYTES,
    )
    assert opened.backend.name == "nvml" and opened.backend.simulated is False


def test_mig_instances_carry_profile_instance_id_and_their_own_uuid(opened: Opened) -> None:
    small, large = opened.gpu(0, "7"), opened.gpu(0, "9")
    assert (small.instance_profile, small.instance_uuid) == (
        "1g.10gb",
        "MIG-11111111-2222-3333-4444-555555555555",
    )
    assert small.vram_bytes == 9984 * MIB
    assert (small.uuid, small.device, small.index) == (opened.gpu(0).uuid, "nvidia4", 0)
    assert large.instance_profile == "3g.40gb"


def test_topology_counts_nvlink_lanes_and_skips_pairs_nvml_cannot_answer(opened: Opened) -> None:
    assert set(opened.node.links) == {
        P2PLink(0, 1, "nvlink", 4),  # four direct lanes to gpu1's bus id
        P2PLink(1, 0, "nvlink", 2),  # two lanes into NVSwitches
        P2PLink(0, 2, "pcie"),
        P2PLink(1, 2, "pcie"),
        P2PLink(2, 1, "pcie"),
    }


@pytest.mark.parametrize(
    ("capability", "arch"),
    [
        ((7, 0), "volta"),
        ((7, 5), "turing"),
        ((8, 6), "ampere"),
        ((8, 9), "ada"),
        ((10, 0), "blackwell"),
        ((12, 0), "blackwell"),
        ((6, 1), ""),
    ],
)
def test_arch_follows_compute_capability(capability: tuple[int, int], arch: str) -> None:
    recordings = h100_node()
    recordings[("nvmlDeviceGetCudaComputeCapability", "gpu1")] = capability
    gpu = Opened(recordings).gpu(1)
    assert (gpu.arch, gpu.compute_capability) == (arch, f"{capability[0]}.{capability[1]}")


def test_a_gpu_that_does_not_answer_while_enumerating_is_left_out() -> None:
    recordings = h100_node()
    recordings[("nvmlDeviceGetHandleByIndex", 1)] = pynvml.NVMLError_GpuIsLost()
    assert {g.index for g in Opened(recordings).node.gpus} == {0, 2}


def test_init_failure_is_driver_unavailable() -> None:
    recordings = h100_node()
    recordings[("nvmlInit",)] = pynvml.NVMLError_DriverNotLoaded()
    with pytest.raises(DriverUnavailable, match="Driver Not Loaded") as raised:
        NvmlBackend(FakeNvml(recordings)).open()
    assert isinstance(raised.value.__cause__, pynvml.NVMLError_DriverNotLoaded)


def test_listing_failure_is_driver_unavailable_and_shuts_nvml_down() -> None:
    fake = FakeNvml(h100_node() | {("nvmlDeviceGetCount",): pynvml.NVMLError_Unknown()})
    with pytest.raises(DriverUnavailable):
        NvmlBackend(fake).open()
    assert fake.calls[-1] == ("nvmlShutdown",)


def test_real_pynvml_without_a_driver_is_driver_unavailable() -> None:
    """The real module, on a machine without libnvidia-ml: open() must say so, not crash."""
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        pass
    else:
        pytest.skip("this machine has libnvidia-ml: open() may well succeed")
    with pytest.raises(DriverUnavailable, match="NVML did not initialise"):
        NvmlBackend().open()


def test_close_frees_event_sets_and_shuts_down_ignoring_errors(opened: Opened) -> None:
    opened.record("nvmlShutdown", answer=pynvml.NVMLError_Uninitialized())
    opened.record("nvmlEventSetFree", "set0", answer=None)
    opened.backend.close()
    assert ("nvmlEventSetFree", "set0") in opened.fake.calls
    assert opened.fake.calls[-1] == ("nvmlShutdown",)
    with pytest.raises(GpuLost):
        opened.backend.read(opened.gpu(1), ["DCGM_FI_DEV_POWER_USAGE"])


# -- read ------------------------------------------------------------------------------------------------


def test_read_converts_to_the_metric_contracts_units(opened: Opened) -> None:
    record_readings(opened, "gpu1")
    reading = opened.backend.read(opened.gpu(1), FIELDS)
    assert reading.values == {
        "DCGM_FI_DEV_GPU_UTIL": 87.0,
        "DCGM_FI_DEV_MEM_COPY_UTIL": 41.0,
        "DCGM_FI_DEV_ENC_UTIL": 12.0,
        "DCGM_FI_DEV_DEC_UTIL": 3.0,
        "DCGM_FI_DEV_FB_USED": 40000.0,  # bytes -> MiB
        "DCGM_FI_DEV_FB_FREE": 81559.0 - 510 - 40000,
        "DCGM_FI_DEV_FB_RESERVED": 510.0,
        "DCGM_FI_DEV_POWER_USAGE": 251.234,  # mW -> W
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": 987654321.0,  # already mJ
        "DCGM_FI_DEV_SM_CLOCK": 1980.0,
        "DCGM_FI_DEV_MEM_CLOCK": 2619.0,
        "DCGM_FI_DEV_GPU_TEMP": 64.0,
        "DCGM_FI_DEV_MEMORY_TEMP": 71.0,
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": 5.0,
        "DCGM_FI_DEV_XID_ERRORS": 0.0,
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": 2.0,
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": 0.0,
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": 3.0,
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS": 1.0,
        "DCGM_FI_DEV_ROW_REMAP_FAILURE": 0.0,
    }
    assert reading.unsupported == PROF  # gpu1 does not answer the GPM support query
    assert reading.failed == set()


def test_read_asks_only_for_the_requested_fields(opened: Opened) -> None:
    record_readings(opened, "gpu1")
    before = len(opened.fake.calls)
    reading = opened.backend.read(opened.gpu(1), ["DCGM_FI_DEV_POWER_USAGE"])
    assert reading.values == {"DCGM_FI_DEV_POWER_USAGE": 251.234}
    assert opened.fake.calls[before:] == [("nvmlDeviceGetPowerUsage", "gpu1")]


def test_not_supported_is_left_out_and_named_unsupported(opened: Opened) -> None:
    record_readings(opened, "gpu1")
    opened.record("nvmlDeviceGetPowerUsage", "gpu1", answer=pynvml.NVMLError_NotSupported())
    opened.record("nvmlDeviceGetRemappedRows", "gpu1", answer=pynvml.NVMLError_FunctionNotFound())
    opened.record(
        "nvmlDeviceGetFieldValues",
        "gpu1",
        (pynvml.NVML_FI_DEV_MEMORY_TEMP,),
        answer=field_value(0, pynvml.NVML_ERROR_NOT_SUPPORTED),
    )
    reading = opened.backend.read(opened.gpu(1), FIELDS)
    gone = {
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_MEMORY_TEMP",
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        "DCGM_FI_DEV_ROW_REMAP_FAILURE",
    }
    assert reading.unsupported == gone | PROF
    assert not gone & set(reading.values)
    assert reading.failed == set()


def test_memory_without_the_v2_call_falls_back_and_reserved_is_unsupported(opened: Opened) -> None:
    opened.record("nvmlDeviceGetMemoryInfo", "gpu2", V2, answer=pynvml.NVMLError_FunctionNotFound())
    opened.record("nvmlDeviceGetMemoryInfo", "gpu2", answer=memory_v1(H100_BYTES, 1024 * MIB))
    fb = ["DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_RESERVED"]
    reading = opened.backend.read(opened.gpu(2), fb)
    assert reading.values == {"DCGM_FI_DEV_FB_USED": 1024.0, "DCGM_FI_DEV_FB_FREE": 81559.0 - 1024}
    assert reading.unsupported == {"DCGM_FI_DEV_FB_RESERVED"}


def test_gpu_is_lost_raises_gpu_lost(opened: Opened) -> None:
    record_readings(opened, "gpu1")
    opened.record("nvmlDeviceGetTemperature", "gpu1", pynvml.NVML_TEMPERATURE_GPU, answer=pynvml.NVMLError_GpuIsLost())
    with pytest.raises(GpuLost, match="GPU-00000001"):
        opened.backend.read(opened.gpu(1), FIELDS)


@pytest.mark.parametrize(
    "code",
    [
        pynvml.NVML_ERROR_UNINITIALIZED,
        pynvml.NVML_ERROR_DRIVER_NOT_LOADED,
        pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
    ],
)
def test_a_driver_gone_under_a_read_raises_driver_lost(opened: Opened, code: int) -> None:
    """After a driver reload NVML answers UNINITIALIZED; after an upgrade, a version mismatch."""
    record_readings(opened, "gpu1")
    opened.record("nvmlDeviceGetPowerUsage", "gpu1", answer=pynvml.NVMLError(code))
    with pytest.raises(DriverLost, match="GPU-00000001"):
        opened.backend.read(opened.gpu(1), FIELDS)


def test_other_errors_fail_only_their_fields(opened: Opened) -> None:
    record_readings(opened, "gpu1")
    opened.record("nvmlDeviceGetUtilizationRates", "gpu1", answer=pynvml.NVMLError_Unknown())
    opened.record("nvmlDeviceGetPcieReplayCounter", "gpu1", answer=pynvml.NVMLError_NoPermission())
    reading = opened.backend.read(opened.gpu(1), FIELDS)
    assert reading.failed == {
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_MEM_COPY_UTIL",
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
    }
    assert not reading.failed & set(reading.values)
    assert reading.values["DCGM_FI_DEV_POWER_USAGE"] == 251.234


def test_a_mig_instance_reads_its_own_memory_and_nothing_device_wide(opened: Opened) -> None:
    opened.record("nvmlDeviceGetMemoryInfo", "mig0", V2, answer=memory_v2(9984 * MIB, 0, 2048 * MIB))
    reading = opened.backend.read(
        opened.gpu(0, "7"), ["DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_UTIL"]
    )
    assert reading.values == {"DCGM_FI_DEV_FB_USED": 2048.0}
    assert reading.unsupported == {"DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_UTIL"}
    assert not any(call[0] == "nvmlDeviceGetPowerUsage" for call in opened.fake.calls)


def test_xid_is_the_last_event_seen_and_sticks(opened: Opened) -> None:
    opened.record(
        "nvmlEventSetWait_v2",
        "set0",
        0,
        answer=Replay(xid_event(48), xid_event(79), pynvml.NVMLError_Timeout()),
    )
    xid = ["DCGM_FI_DEV_XID_ERRORS"]
    assert opened.backend.read(opened.gpu(0), xid).values == {"DCGM_FI_DEV_XID_ERRORS": 79.0}
    assert opened.backend.read(opened.gpu(0), xid).values == {"DCGM_FI_DEV_XID_ERRORS": 79.0}
    assert opened.backend.read(opened.gpu(1), xid).values == {"DCGM_FI_DEV_XID_ERRORS": 0.0}
    assert opened.backend.read(opened.gpu(2), xid).unsupported == set(xid)  # could not register


def gpm_recordings(opened: Opened, handle: str, percent: dict[int, float | None]) -> None:
    opened.record("nvmlGpmQueryDeviceSupport", handle, answer=pynvml.c_nvmlGpmSupport_t(1, 1))
    opened.record("nvmlGpmSampleAlloc", answer=lambda: pynvml.c_nvmlGpmSample_t())
    opened.record("nvmlGpmSampleGet", answer=lambda device, sample: sample)
    opened.record("nvmlGpmMigSampleGet", answer=lambda device, instance, sample: sample)
    opened.record("nvmlGpmMetricsGet", answer=gpm_results(percent))


def test_gpm_ratios_appear_from_the_second_sample(opened: Opened) -> None:
    gpm_recordings(
        opened,
        "gpu1",
        {
            pynvml.NVML_GPM_METRIC_GRAPHICS_UTIL: 87.5,
            pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL: 42.0,
            pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL: None,
        },
    )
    first = opened.backend.read(opened.gpu(1), PROF)
    assert (first.values, first.unsupported, first.failed) == ({}, set(), set())
    second = opened.backend.read(opened.gpu(1), PROF)
    assert second.values == {
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE": pytest.approx(0.875),  # % -> ratio
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": pytest.approx(0.42),
    }
    assert second.unsupported == {"DCGM_FI_PROF_DRAM_ACTIVE"}


def test_gpm_samples_a_mig_instance_through_its_parent(opened: Opened) -> None:
    gpm_recordings(opened, "gpu0", dict.fromkeys((1, 5, 10), 10.0))
    for _ in range(2):
        reading = opened.backend.read(opened.gpu(0, "9"), PROF)
    assert reading.values == dict.fromkeys(PROF, pytest.approx(0.1))
    assert [call[:3] for call in opened.fake.calls if call[0] == "nvmlGpmMigSampleGet"] == [
        ("nvmlGpmMigSampleGet", "gpu0", 9)
    ] * 2


def test_unknown_device_is_lost(opened: Opened) -> None:
    stranger = GpuIdentity(
        index=7, uuid="GPU-x", pci_bus_id="", model_name="", vendor="nvidia", device="", driver_version=""
    )
    with pytest.raises(GpuLost):
        opened.backend.read(stranger, ["DCGM_FI_DEV_POWER_USAGE"])


def test_concurrent_reads_of_different_devices(opened: Opened) -> None:
    record_readings(opened, "gpu1")
    record_readings(opened, "gpu2")
    with ThreadPoolExecutor(max_workers=4) as pool:
        readings = list(pool.map(lambda i: opened.backend.read(opened.gpu(1 + i % 2), FIELDS), range(40)))
    assert all(r.values["DCGM_FI_DEV_POWER_USAGE"] == 251.234 and not r.failed for r in readings)
