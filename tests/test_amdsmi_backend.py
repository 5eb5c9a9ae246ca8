"""Unit tests of the amdsmi backend's unit conversions, "N/A" handling, error mapping and partitions.

They run against `FakeAmdSmi`, a hand-written fake of the `amdsmi` module that replays recorded
readings. Passing them is not evidence that the real amdsmi path works: that takes an AMD GPU. The
real package cannot even be imported here (no `libamd_smi.so`), so the fake's enums and status codes
are copies; `test_backend_contracts.py` checks every name the backend uses against the installed
package's source.
"""

from __future__ import annotations

from enum import IntEnum
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from exporter.backend import DriverLost, DriverUnavailable, GpuLost
from exporter.backends.amdsmi import AmdSmiBackend
from exporter.gpu import GpuIdentity, P2PLink

MIB = 1024 * 1024
MI300X_BYTES = 196592 * MIB


class AmdSmiException(Exception):
    pass


class AmdSmiLibraryException(AmdSmiException):
    """Like amdsmi's: carries the library status code."""

    def __init__(self, err_code: int) -> None:
        super().__init__(err_code)
        self.err_code = err_code

    def get_error_code(self) -> int:
        return self.err_code


STATUS = SimpleNamespace(
    # Values as in amdsmi/amdsmi_wrapper.py.
    AMDSMI_STATUS_NOT_SUPPORTED=2,
    AMDSMI_STATUS_NOT_YET_IMPLEMENTED=3,
    AMDSMI_STATUS_TIMEOUT=8,
    AMDSMI_STATUS_BUSY=30,
    AMDSMI_STATUS_NOT_FOUND=31,
    AMDSMI_STATUS_NOT_INIT=32,
    AMDSMI_STATUS_DRIVER_NOT_LOADED=34,
)


def status(name: str) -> AmdSmiLibraryException:
    return AmdSmiLibraryException(getattr(STATUS, f"AMDSMI_STATUS_{name}"))


class AmdSmiInitFlags(IntEnum):
    INIT_AMD_GPUS = 2


class AmdSmiClkType(IntEnum):
    GFX = 1
    MEM = 5


class AmdSmiTemperatureType(IntEnum):
    HOTSPOT = 1
    VRAM = 3


class AmdSmiTemperatureMetric(IntEnum):
    CURRENT = 0


class AmdSmiMemoryType(IntEnum):
    VRAM = 0


class AmdSmiLinkType(IntEnum):
    AMDSMI_LINK_TYPE_XGMI = 1
    AMDSMI_LINK_TYPE_PCIE = 2


class FakeAmdSmi(ModuleType):
    """FAKE amdsmi: replays recorded readings; it is not evidence that the real library path works.

    `recordings` maps a call, as `(function name, *arguments)`, to its answer: a value or an exception
    to raise. A call nobody recorded raises AMDSMI_STATUS_NOT_SUPPORTED, like a device without the
    feature. Calls are logged in `calls`.
    """

    AmdSmiException = AmdSmiException
    AmdSmiLibraryException = AmdSmiLibraryException
    AmdSmiInitFlags = AmdSmiInitFlags
    AmdSmiClkType = AmdSmiClkType
    AmdSmiTemperatureType = AmdSmiTemperatureType
    AmdSmiTemperatureMetric = AmdSmiTemperatureMetric
    AmdSmiMemoryType = AmdSmiMemoryType
    AmdSmiLinkType = AmdSmiLinkType
    amdsmi_wrapper = STATUS

    def __init__(self, recordings: dict[tuple[Any, ...], Any]) -> None:
        super().__init__("amdsmi")
        self.recordings = recordings
        self.calls: list[tuple[Any, ...]] = []

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("amdsmi_"):
            raise AttributeError(name)

        def replay(*args: Any) -> Any:
            self.calls.append((name, *args))
            answer = self.recordings.get((name, *args), status("NOT_SUPPORTED"))
            if isinstance(answer, BaseException):
                raise answer
            return answer

        return replay


def mi300x_node() -> dict[tuple[Any, ...], Any]:
    """Two MI300X: card0 whole (SPX), card1 split in two CPX partitions; xGMI between them."""
    recordings: dict[tuple[Any, ...], Any] = {
        ("amdsmi_init", AmdSmiInitFlags.INIT_AMD_GPUS): None,
        ("amdsmi_shut_down",): None,
        ("amdsmi_get_processor_handles",): ["h0", "h1a", "h1b"],
        ("amdsmi_get_gpu_compute_partition", "h0"): "SPX",
        ("amdsmi_get_gpu_compute_partition", "h1a"): "CPX",
        ("amdsmi_topo_get_link_type", "h0", "h1a"): {"hops": 1, "type": AmdSmiLinkType.AMDSMI_LINK_TYPE_XGMI},
        ("amdsmi_topo_get_link_type", "h1a", "h0"): {"hops": 1, "type": AmdSmiLinkType.AMDSMI_LINK_TYPE_XGMI},
    }
    for handle, bdf, card in (
        ("h0", "0000:0C:00.0", 0),
        ("h1a", "0000:22:00.0", 1),
        ("h1b", "0000:22:00.1", 2),
    ):
        recordings |= {
            ("amdsmi_get_gpu_device_bdf", handle): bdf,
            ("amdsmi_get_gpu_device_uuid", handle): f"{card}4ff74a1-0000-1000-80f0-dd4f9c9e8a5c",
            ("amdsmi_get_gpu_asic_info", handle): {
                "market_name": "AMD Instinct MI300X",
                "target_graphics_version": "gfx942",
            },
            ("amdsmi_get_gpu_driver_info", handle): {"driver_name": "amdgpu", "driver_version": "6.8.5"},
            ("amdsmi_get_gpu_enumeration_info", handle): {"drm_card": card, "drm_render": 128 + card},
            ("amdsmi_get_gpu_memory_total", handle, AmdSmiMemoryType.VRAM): MI300X_BYTES,
        }
    return recordings


def record_readings(fake: FakeAmdSmi, handle: str) -> None:
    """A busy MI300X's answers, in amdsmi's own units."""
    fake.recordings |= {
        ("amdsmi_get_gpu_activity", handle): {"gfx_activity": 93, "umc_activity": 38, "mm_activity": "N/A"},
        ("amdsmi_get_gpu_vram_usage", handle): {"vram_total": 196592, "vram_used": 150000},
        ("amdsmi_get_power_info", handle): {
            "socket_power": 612,
            "current_socket_power": 615,
            "average_socket_power": "N/A",
        },
        ("amdsmi_get_energy_count", handle): {
            "energy_accumulator": 2_000_000,
            "counter_resolution": 15.25,
            "timestamp": 1,
        },
        ("amdsmi_get_clock_info", handle, AmdSmiClkType.GFX): {"clk": 2100, "min_clk": 500, "max_clk": 2100},
        ("amdsmi_get_clock_info", handle, AmdSmiClkType.MEM): {"clk": 1300, "min_clk": 900, "max_clk": 1300},
        (
            "amdsmi_get_temp_metric",
            handle,
            AmdSmiTemperatureType.HOTSPOT,
            AmdSmiTemperatureMetric.CURRENT,
        ): 71,
        ("amdsmi_get_temp_metric", handle, AmdSmiTemperatureType.VRAM, AmdSmiTemperatureMetric.CURRENT): 58,
        ("amdsmi_get_gpu_pci_replay_counter", handle): 4,
        ("amdsmi_get_gpu_total_ecc_count", handle): {
            "correctable_count": 6,
            "uncorrectable_count": 1,
            "deferred_count": 0,
        },
    }


MAPPED = (
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_MEM_COPY_UTIL",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_FB_FREE",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    "DCGM_FI_DEV_SM_CLOCK",
    "DCGM_FI_DEV_MEM_CLOCK",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_MEMORY_TEMP",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
    "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
)
UNMAPPED = (
    "DCGM_FI_DEV_ENC_UTIL",
    "DCGM_FI_DEV_DEC_UTIL",
    "DCGM_FI_DEV_FB_RESERVED",
    "DCGM_FI_DEV_XID_ERRORS",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_ROW_REMAP_FAILURE",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
    "DCGM_FI_PROF_DRAM_ACTIVE",
)


class Opened:
    def __init__(self, recordings: dict[tuple[Any, ...], Any]) -> None:
        self.fake = FakeAmdSmi(recordings)
        self.backend = AmdSmiBackend(self.fake)
        self.node = self.backend.open()

    def gpu(self, index: int, instance_id: str = "") -> GpuIdentity:
        return next(g for g in self.node.gpus if g.index == index and g.instance_id == instance_id)


@pytest.fixture
def opened() -> Opened:
    return Opened(mi300x_node())


# -- open ------------------------------------------------------------------------------------------------


def test_open_builds_identities_from_amdsmi(opened: Opened) -> None:
    assert opened.gpu(0) == GpuIdentity(
        index=0,
        uuid="04ff74a1-0000-1000-80f0-dd4f9c9e8a5c",
        pci_bus_id="0000:0c:00.0",
        model_name="AMD Instinct MI300X",
        vendor="amd",
        device="card0",
        driver_version="6.8.5",
        arch="gfx942",
        vram_bytes=MI300X_BYTES,
    )
    assert opened.backend.name == "amdsmi" and opened.backend.simulated is False


def test_partitions_of_one_gpu_share_its_index(opened: Opened) -> None:
    assert [g.key for g in opened.node.gpus] == ["0", "1/0", "1/1"]
    first, second = opened.gpu(1, "0"), opened.gpu(1, "1")
    assert (first.instance_profile, second.instance_profile) == ("CPX", "CPX")
    assert (first.device, second.device) == ("card1", "card2")
    assert second.pci_bus_id == "0000:22:00.1"


def test_topology_is_xgmi_between_physical_gpus(opened: Opened) -> None:
    assert set(opened.node.links) == {P2PLink(0, 1, "xgmi"), P2PLink(1, 0, "xgmi")}


def test_topology_without_xgmi_is_pcie_and_errors_skip_the_pair() -> None:
    recordings = mi300x_node()
    recordings[("amdsmi_topo_get_link_type", "h0", "h1a")] = {
        "hops": 2,
        "type": AmdSmiLinkType.AMDSMI_LINK_TYPE_PCIE,
    }
    recordings[("amdsmi_topo_get_link_type", "h1a", "h0")] = status("BUSY")
    assert Opened(recordings).node.links == (P2PLink(0, 1, "pcie"),)


def test_missing_identity_details_leave_fields_empty() -> None:
    recordings = mi300x_node()
    recordings[("amdsmi_get_gpu_asic_info", "h0")] = {
        "market_name": "N/A",
        "target_graphics_version": "gfx942",
    }
    del recordings[("amdsmi_get_gpu_enumeration_info", "h0")]
    del recordings[("amdsmi_get_gpu_memory_total", "h0", AmdSmiMemoryType.VRAM)]
    gpu = Opened(recordings).gpu(0)
    assert (gpu.model_name, gpu.device, gpu.vram_bytes) == ("", "card0", 0)


def test_init_failure_is_driver_unavailable() -> None:
    recordings = mi300x_node()
    recordings[("amdsmi_init", AmdSmiInitFlags.INIT_AMD_GPUS)] = status("DRIVER_NOT_LOADED")
    with pytest.raises(DriverUnavailable) as raised:
        AmdSmiBackend(FakeAmdSmi(recordings)).open()
    assert isinstance(raised.value.__cause__, AmdSmiLibraryException)


def test_real_amdsmi_without_its_library_is_driver_unavailable_and_silent(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The real package prints to stdout when libamd_smi.so is missing; none of that may leak out."""
    with pytest.raises(DriverUnavailable, match="amdsmi cannot load"):
        AmdSmiBackend().open()
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "")


def test_close_shuts_down_and_forgets_devices(opened: Opened) -> None:
    opened.backend.close()
    assert opened.fake.calls[-1] == ("amdsmi_shut_down",)
    with pytest.raises(GpuLost):
        opened.backend.read(opened.gpu(0), ["DCGM_FI_DEV_POWER_USAGE"])


# -- read ------------------------------------------------------------------------------------------------


def test_read_converts_to_the_metric_contracts_units(opened: Opened) -> None:
    record_readings(opened.fake, "h0")
    reading = opened.backend.read(opened.gpu(0), MAPPED + UNMAPPED)
    assert reading.values == {
        "DCGM_FI_DEV_GPU_UTIL": 93.0,
        "DCGM_FI_DEV_MEM_COPY_UTIL": 38.0,
        "DCGM_FI_DEV_FB_USED": 150000.0,
        "DCGM_FI_DEV_FB_FREE": 46592.0,
        "DCGM_FI_DEV_POWER_USAGE": 615.0,  # current, not the average
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": 30500.0,  # 2e6 counts * 15.25 uJ = 30.5 J = 30500 mJ
        "DCGM_FI_DEV_SM_CLOCK": 2100.0,
        "DCGM_FI_DEV_MEM_CLOCK": 1300.0,
        "DCGM_FI_DEV_GPU_TEMP": 71.0,
        "DCGM_FI_DEV_MEMORY_TEMP": 58.0,
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": 4.0,
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": 6.0,
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": 1.0,
    }
    assert reading.unsupported == set(UNMAPPED)
    assert reading.failed == set()


def test_n_a_is_unsupported_never_zero(opened: Opened) -> None:
    record_readings(opened.fake, "h0")
    opened.fake.recordings[("amdsmi_get_gpu_activity", "h0")] = {
        "gfx_activity": 12,
        "umc_activity": "N/A",
        "mm_activity": "N/A",
    }
    opened.fake.recordings[("amdsmi_get_power_info", "h0")] = {
        "socket_power": "N/A",
        "current_socket_power": "N/A",
    }
    opened.fake.recordings[("amdsmi_get_clock_info", "h0", AmdSmiClkType.MEM)] = {"clk": "N/A"}
    reading = opened.backend.read(opened.gpu(0), MAPPED)
    gone = {"DCGM_FI_DEV_MEM_COPY_UTIL", "DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_MEM_CLOCK"}
    assert reading.unsupported == gone
    assert not gone & set(reading.values)
    assert reading.values["DCGM_FI_DEV_GPU_UTIL"] == 12.0


def test_power_falls_back_to_socket_power(opened: Opened) -> None:
    opened.fake.recordings[("amdsmi_get_power_info", "h0")] = {
        "socket_power": 301,
        "current_socket_power": "N/A",
    }
    assert opened.backend.read(opened.gpu(0), ["DCGM_FI_DEV_POWER_USAGE"]).values == {"DCGM_FI_DEV_POWER_USAGE": 301.0}


def test_not_supported_status_is_unsupported(opened: Opened) -> None:
    record_readings(opened.fake, "h0")
    opened.fake.recordings[("amdsmi_get_gpu_pci_replay_counter", "h0")] = status("NOT_YET_IMPLEMENTED")
    del opened.fake.recordings[("amdsmi_get_gpu_total_ecc_count", "h0")]  # the fake answers NOT_SUPPORTED
    reading = opened.backend.read(opened.gpu(0), MAPPED)
    gone = {
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    }
    assert reading.unsupported == gone
    assert not gone & set(reading.values)


@pytest.mark.parametrize(
    ("code", "error"), [("NOT_FOUND", GpuLost), ("DRIVER_NOT_LOADED", DriverLost), ("NOT_INIT", DriverLost)]
)
def test_device_or_driver_gone_raises_gpu_lost_or_driver_lost(opened: Opened, code: str, error: type) -> None:
    record_readings(opened.fake, "h0")
    opened.fake.recordings[("amdsmi_get_gpu_activity", "h0")] = status(code)
    with pytest.raises(error, match=r"0000:0c:00\.0") as raised:
        opened.backend.read(opened.gpu(0), MAPPED)
    assert type(raised.value) is error


def test_other_errors_fail_only_their_fields(opened: Opened) -> None:
    record_readings(opened.fake, "h0")
    opened.fake.recordings[("amdsmi_get_gpu_vram_usage", "h0")] = status("BUSY")
    opened.fake.recordings[("amdsmi_get_energy_count", "h0")] = status("TIMEOUT")
    reading = opened.backend.read(opened.gpu(0), MAPPED)
    assert reading.failed == {
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    }
    assert not reading.failed & set(reading.values)
    assert reading.values["DCGM_FI_DEV_POWER_USAGE"] == 615.0


def test_a_partition_reads_through_its_own_handle(opened: Opened) -> None:
    record_readings(opened.fake, "h1b")
    opened.fake.recordings[("amdsmi_get_power_info", "h1b")] = {
        "socket_power": "N/A",
        "current_socket_power": "N/A",
    }
    reading = opened.backend.read(opened.gpu(1, "1"), ["DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_POWER_USAGE"])
    assert reading.values == {"DCGM_FI_DEV_GPU_UTIL": 93.0}
    assert reading.unsupported == {"DCGM_FI_DEV_POWER_USAGE"}
    assert ("amdsmi_get_gpu_activity", "h1b") in opened.fake.calls
