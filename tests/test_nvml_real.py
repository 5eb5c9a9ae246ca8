"""`egs exporter --backend nvml` on a real NVIDIA GPU: the series it serves, read against NVML itself.

Skipped unless an NVIDIA GPU is visible (libnvidia-ml loads, NVML initialises, at least one device).
This is the only evidence here that the NVML path works: the unit tests replay recorded readings.
It checks names and labels, that values lie in physical ranges, and that a field NVML itself calls
unsupported on this GPU is omitted from /metrics rather than exported as 0.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pynvml
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from localplay.localstack import free_port, wait_http

LABELS = {"gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION", "vendor"}
RANGES = {
    "DCGM_FI_DEV_GPU_UTIL": (0, 100),
    "DCGM_FI_DEV_MEM_COPY_UTIL": (0, 100),
    "DCGM_FI_DEV_POWER_USAGE": (1, 2000),
    "DCGM_FI_DEV_GPU_TEMP": (1, 120),
    "DCGM_FI_DEV_SM_CLOCK": (1, 5000),
    "DCGM_FI_DEV_MEM_CLOCK": (1, 20000),
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": (0, 1),
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": (0, 1),
    "DCGM_FI_PROF_DRAM_ACTIVE": (0, 1),
}


def _visible_gpus() -> int:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return 0
    try:
        return int(pynvml.nvmlDeviceGetCount())
    finally:
        pynvml.nvmlShutdown()


pytestmark = pytest.mark.skipif(_visible_gpus() == 0, reason="no NVIDIA GPU visible")

Series = dict[str, list[tuple[dict[str, str], float]]]


@pytest.fixture(scope="module")
def series() -> Iterator[Series]:
    port = free_port()
    cmd = [sys.executable, "-m", "egs.cli", "exporter", "--backend", "nvml", "--kubelet-socket", "none"]
    cmd += ["--listen", f"127.0.0.1:{port}", "--collect-interval", "1"]
    proc = subprocess.Popen(cmd)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 60, proc)
        time.sleep(2.5)  # GPM ratios need two samples, one cycle apart
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        proc.terminate()
        proc.wait(10)
    found: Series = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found.setdefault(s.name, []).append((s.labels, s.value))
    yield found


@pytest.fixture(scope="module")
def nvml() -> Iterator[Any]:
    pynvml.nvmlInit()
    yield pynvml
    pynvml.nvmlShutdown()


def _uuids(nvml: Any) -> set[str]:
    uuids = set()
    for i in range(nvml.nvmlDeviceGetCount()):
        uuid = nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i))
        uuids.add(uuid.decode() if isinstance(uuid, bytes) else uuid)
    return uuids


def test_every_gpu_nvml_lists_is_up_with_dcgm_labels(series: Series, nvml: Any) -> None:
    whole = [labels for labels, _ in series["egs_exporter_gpu_up"] if "GPU_I_ID" not in labels]
    assert {labels["UUID"] for labels in whole} == _uuids(nvml)
    assert all(value == 1 for _, value in series["egs_exporter_gpu_up"])
    for labels, _ in series["DCGM_FI_DEV_FB_USED"]:
        assert set(labels) >= LABELS and labels["vendor"] == "nvidia"
        assert labels["device"].startswith("nvidia") and labels["DCGM_FI_DRIVER_VERSION"]
    assert series["egs_exporter_driver_up"] == [({}, 1.0)]


def test_values_lie_in_physical_ranges(series: Series, nvml: Any) -> None:
    for name, (low, high) in RANGES.items():
        for labels, value in series.get(name, []):
            assert low <= value <= high, f"{name}{labels} = {value}"
    for labels, used in series["DCGM_FI_DEV_FB_USED"]:
        if "GPU_I_ID" in labels:
            continue
        handle = nvml.nvmlDeviceGetHandleByUUID(labels["UUID"])
        total_mib = nvml.nvmlDeviceGetMemoryInfo(handle).total / 2**20
        free = next(v for ls, v in series["DCGM_FI_DEV_FB_FREE"] if ls == labels)
        assert 0 < used + free <= total_mib * 1.001
    energy = [v for _, v in series["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"]]
    assert all(v > 0 for v in energy)


def _probes(nvml: Any) -> dict[str, Callable[[Any], object]]:
    """A field -> the NVML call that reads it; a call NVML answers NotSupported means: omitted."""
    corrected, volatile = nvml.NVML_MEMORY_ERROR_TYPE_CORRECTED, nvml.NVML_VOLATILE_ECC

    def memory_temp(h: Any) -> object:
        value = nvml.nvmlDeviceGetFieldValues(h, [nvml.NVML_FI_DEV_MEMORY_TEMP])[0]
        if value.nvmlReturn != nvml.NVML_SUCCESS:
            raise nvml.NVMLError(value.nvmlReturn)
        return value

    return {
        "DCGM_FI_DEV_MEMORY_TEMP": memory_temp,
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL": lambda h: nvml.nvmlDeviceGetTotalEccErrors(h, corrected, volatile),
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS": nvml.nvmlDeviceGetRemappedRows,
        "DCGM_FI_DEV_ENC_UTIL": nvml.nvmlDeviceGetEncoderUtilization,
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER": nvml.nvmlDeviceGetPcieReplayCounter,
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": nvml.nvmlDeviceGetTotalEnergyConsumption,
    }


def test_a_field_nvml_does_not_support_is_omitted_not_zero(series: Series, nvml: Any) -> None:
    for name, probe in _probes(nvml).items():
        exported = {labels["UUID"]: v for labels, v in series.get(name, []) if "GPU_I_ID" not in labels}
        for uuid in _uuids(nvml):
            try:
                probe(nvml.nvmlDeviceGetHandleByUUID(uuid))
            except nvml.NVMLError_NotSupported:
                assert uuid not in exported, f"{name} is unsupported on {uuid} but exported as {exported[uuid]}"
            else:
                assert uuid in exported, f"{name} is supported on {uuid} but missing"
