"""The collector after a driver reload or a GPU reset: it re-opens the backend, backing off, and picks
up the GPUs that come back.

Two kinds of backend drive it: the sim backend, whose `unload_driver()` and `unplug()` play the
events, and the NVML backend over `FakeNvml` (a FAKE pynvml replaying recorded readings, from
`tests/test_nvml_backend.py`), whose recordings are switched to the error codes a real driver gives
(UNINITIALIZED after a reload, GPU_IS_LOST after a reset). Passing them is not evidence that a real
driver behaves so: that takes a GPU. Time is a fake clock; no test sleeps.
"""

from __future__ import annotations

from collections.abc import Sequence

import pynvml
from prometheus_client.parser import text_string_to_metric_families

from exporter.backends.sim import SimBackend
from exporter.collector import REOPEN_DELAYS_S, Collector
from exporter.fleet import GpuGroup, SimNode
from exporter.gpu import Node
from exporter.snapshot import GpuSample
from tests.clock import Clock
from tests.test_nvml_backend import Opened, h100_node, record_readings

H100 = GpuGroup(model="NVIDIA H100 80GB HBM3", vendor="nvidia", count=4, memory_mib=81559, compute_capability="9.0")


class OpenCounting(SimBackend):
    """The sim backend, recording when the collector asked it to open."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(SimNode(name="n", gpus=(H100,)), clock=clock)
        self._now = clock
        self.opened_at: list[float] = []

    def open(self) -> Node:
        self.opened_at.append(self._now())
        return super().open()


def gpu_up(collector: Collector) -> dict[str, float]:
    """UUID -> egs_exporter_gpu_up, from the rendered exposition."""
    families = text_string_to_metric_families(collector.last.body.decode())
    return {s.labels["UUID"]: s.value for f in families if f.name == "egs_exporter_gpu_up" for s in f.samples}


def test_after_a_driver_reload_the_collector_reopens_with_backoff_and_every_gpu_comes_back() -> None:
    clock = Clock(1000.0)
    sim = OpenCounting(clock)
    collector = Collector(sim, "n", clock=clock)
    first = collector.collect()
    uuids = {s.gpu.uuid for s in first.gpus}
    assert len(uuids) == 4 and set(gpu_up(collector).values()) == {1.0}

    sim.unload_driver()
    lost = collector.collect()
    assert lost.driver_up is False and collector.last.healthy is False
    assert gpu_up(collector) == dict.fromkeys(uuids, 0.0), "the GPUs stay exported, as down"
    # The driver is still gone: a try each time the backoff is due (the next cycle, then 5, 15 and
    # 30 s after the last try), none in the cycles between.
    for delay in REOPEN_DELAYS_S[:4]:
        clock.t += delay
        collector.collect()
        clock.t += 1
        collector.collect()
    assert [t - sim.opened_at[0] for t in sim.opened_at[1:]] == [0, 0 + 5 + 1, 6 + 15 + 1, 22 + 30 + 1]

    sim.load_driver()
    clock.t += REOPEN_DELAYS_S[4]  # 1 s already passed, so due now and not before
    back = collector.collect()
    assert back.driver_up is True and collector.last.healthy is True
    assert gpu_up(collector) == dict.fromkeys(uuids, 1.0)
    assert all(s.values["DCGM_FI_DEV_FB_USED"] > 0 for s in back.gpus)
    clock.t += 1
    collector.collect()
    assert len(sim.opened_at) == 6, "once every GPU is back, no more re-opens"


def test_a_reset_gpu_stays_down_until_it_is_back_then_is_picked_up() -> None:
    clock = Clock(1000.0)
    sim = OpenCounting(clock)
    collector = Collector(sim, "n", clock=clock)
    uuid2 = next(s.gpu.uuid for s in collector.collect().gpus if s.gpu.index == 2)

    sim.unplug(2)
    collector.collect()
    assert gpu_up(collector)[uuid2] == 0.0
    clock.t += 1
    reopened = collector.collect()  # re-opened at once; GPU 2 is not enumerated, still down
    assert len(sim.opened_at) == 2
    assert [s.up for s in reopened.gpus if s.gpu.uuid == uuid2] == [False]
    assert sum(s.up for s in reopened.gpus) == 3

    sim.replug(2)
    clock.t += REOPEN_DELAYS_S[1]
    back = collector.collect()
    assert len(sim.opened_at) == 3
    assert gpu_up(collector)[uuid2] == 1.0
    assert [s.values["DCGM_FI_DEV_FB_USED"] > 0 for s in back.gpus if s.gpu.uuid == uuid2] == [True]


def test_when_every_gpu_is_lost_the_backend_is_closed_and_opened_again() -> None:
    clock = Clock(1000.0)
    sim = OpenCounting(clock)
    collector = Collector(sim, "n", clock=clock)
    collector.collect()
    for gpu in range(4):
        sim.unplug(gpu)
    assert collector.collect().driver_up is False
    clock.t += 1
    empty = collector.collect()
    assert empty.driver_up is True and [s.up for s in empty.gpus] == [False] * 4
    for gpu in range(4):
        sim.replug(gpu)
    clock.t += REOPEN_DELAYS_S[1]
    assert [s.up for s in collector.collect().gpus] == [True] * 4


def _nvml_collector(clock: Clock) -> tuple[Opened, Collector]:
    opened = Opened(h100_node())
    for handle in ("gpu0", "gpu1", "gpu2"):
        record_readings(opened, handle)
    return opened, Collector(opened.backend, "n", clock=clock)


def _power(gpus: Sequence[GpuSample], index: int) -> float | None:
    return next((s.values.get("DCGM_FI_DEV_POWER_USAGE") for s in gpus if s.gpu.key == str(index)), None)


def test_nvml_uninitialised_after_a_driver_reload_reopens_nvml_and_reads_again() -> None:
    clock = Clock(1000.0)
    opened, collector = _nvml_collector(clock)
    assert _power(collector.collect().gpus, 1) == 251.234

    def inits() -> int:
        return sum(1 for call in opened.fake.calls if call[0] == "nvmlInit")

    assert inits() == 2  # Opened's own open, then the collector's

    for handle in ("gpu0", "gpu1", "gpu2"):
        opened.record("nvmlDeviceGetPowerUsage", handle, answer=pynvml.NVMLError_Uninitialized())
    opened.record("nvmlInit", answer=pynvml.NVMLError_DriverNotLoaded())
    assert collector.collect().driver_up is False
    assert ("nvmlShutdown",) in opened.fake.calls[-3:], "the stale library was shut down"
    clock.t += 1
    assert collector.collect().driver_up is False  # the driver is not back yet
    assert inits() == 3

    opened.record("nvmlInit", answer=None)
    for handle in ("gpu0", "gpu1", "gpu2"):
        opened.record("nvmlDeviceGetPowerUsage", handle, answer=251234)
    clock.t += REOPEN_DELAYS_S[1]
    back = collector.collect()
    assert inits() == 4 and back.driver_up is True
    assert [_power(back.gpus, i) for i in range(3)] == [251.234] * 3


def test_nvml_gpu_lost_after_a_reset_is_picked_up_when_nvml_enumerates_it_again() -> None:
    clock = Clock(1000.0)
    opened, collector = _nvml_collector(clock)
    collector.collect()
    opened.record("nvmlDeviceGetPowerUsage", "gpu2", answer=pynvml.NVMLError_GpuIsLost())
    opened.record("nvmlDeviceGetHandleByIndex", 2, answer=pynvml.NVMLError_GpuIsLost())
    assert _power(collector.collect().gpus, 2) is None
    clock.t += 1
    reopened = collector.collect()
    assert [s.up for s in reopened.gpus if s.gpu.index == 2] == [False], "not enumerated: exported as down"

    opened.record("nvmlDeviceGetHandleByIndex", 2, answer="gpu2")
    opened.record("nvmlDeviceGetPowerUsage", "gpu2", answer=251234)
    clock.t += REOPEN_DELAYS_S[1]
    back = collector.collect()
    assert _power(back.gpus, 2) == 251.234
    assert all(s.up for s in back.gpus)
