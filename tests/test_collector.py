"""Collector faults: a hung GPU, a lost GPU, a failing GPU, unsupported fields, no driver, a broken kubelet.

The sim backend's injected faults drive the same code paths a real driver's errors do; the no-driver
case is the NVML backend over FakeNvml answering as pynvml does where libnvidia-ml is missing, so
that it holds on a GPU machine too. What the collector publishes is checked on the
samples of its rendered exposition, parsed by prometheus_client's own text parser. A hung GPU hangs
in virtual time (`FakeTime`): its read blocks until the test moves the clock, never in a real sleep.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Collection, Iterator

import pynvml
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.backends.nvml import NvmlBackend
from exporter.backends.sim import SimBackend
from exporter.collector import Collector, CollectorSettings
from exporter.fleet import Fault, GpuGroup, SimNode
from exporter.gpu import GpuIdentity, Reading
from exporter.snapshot import Snapshot
from tests.test_nvml_backend import FakeNvml

H100 = GpuGroup(model="NVIDIA H100 80GB HBM3", vendor="nvidia", count=4, memory_mib=81559, compute_capability="9.0")


class FakeTime:
    """Virtual seconds that pass only when the test advances them; a sleeper wakes once they have."""

    def __init__(self) -> None:
        self.now = 0.0
        self._moved = threading.Condition()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._moved:
            until = self.now + seconds
            # at most 30 real seconds, so that a collector that waits for a hung GPU fails the test, not hangs it
            self._moved.wait_for(lambda: self.now >= until, timeout=30)

    def advance(self, seconds: float) -> None:
        with self._moved:
            self.now += seconds
            self._moved.notify_all()


class CountingSim(SimBackend):
    """The sim backend, counting the reads asked of each GPU."""

    def __init__(self, node: SimNode, time: FakeTime) -> None:
        super().__init__(node, clock=time.clock, sleep=time.sleep)
        self.reads: Counter[str] = Counter()

    def read(self, gpu: GpuIdentity, fields: Collection[str]) -> Reading:
        self.reads[gpu.key] += 1
        return super().read(gpu, fields)


@pytest.fixture
def fake_time() -> Iterator[FakeTime]:
    time = FakeTime()
    yield time
    time.advance(1e9)  # wake any read still hanging, so that its thread ends with the test


def _collector(*faults: Fault, unsupported: frozenset[str] = frozenset(), **settings: float) -> Collector:
    group = GpuGroup(**{**H100.__dict__, "unsupported": unsupported})
    node = SimNode(name="n", gpus=(group,), faults=faults)
    return Collector(SimBackend(node), "n", CollectorSettings(**settings))  # type: ignore[arg-type]


def _up(snap: Snapshot) -> dict[str, bool]:
    return {s.gpu.key: s.up for s in snap.gpus}


def samples(collector: Collector) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(name, labels) -> value of every sample the collector last rendered."""
    text = collector.last.body.decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(collector: Collector, name: str, **labels: str) -> float | None:
    """The value of the one sample called `name` whose labels include `labels`; None when absent."""
    found = [v for (n, ls), v in samples(collector).items() if n == name and set(labels.items()) <= ls]
    assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
    return found[0] if found else None


def test_a_hung_gpu_stalls_neither_the_cycle_nor_the_other_gpus(fake_time: FakeTime) -> None:
    backend = CountingSim(SimNode(name="n", gpus=(H100,), faults=(Fault(gpu=1, kind="hang", seconds=60),)), fake_time)
    collector = Collector(backend, "n", CollectorSettings(read_timeout_s=0.5), clock=fake_time.clock)
    snap = collector.collect()
    assert _up(snap) == {"0": True, "1": False, "2": True, "3": True}
    assert snap.gpus[1].values == {}
    assert value(collector, "DCGM_FI_DEV_FB_USED", gpu="0") == snap.gpus[0].values["DCGM_FI_DEV_FB_USED"] > 0
    assert value(collector, "DCGM_FI_DEV_FB_USED", gpu="1") is None
    assert value(collector, "egs_exporter_read_errors_total", gpu="1", reason="timeout") == 1
    second = collector.collect()
    assert backend.reads == {"0": 2, "1": 1, "2": 2, "3": 2}, "a GPU still stuck in its last read is not asked again"
    assert second.read_errors[("1", "timeout")] == 2
    assert value(collector, "egs_exporter_read_errors_total", gpu="1", reason="timeout") == 2


def test_a_lost_gpu_is_marked_down_and_read_again_next_cycle() -> None:
    collector = _collector(Fault(gpu=2, kind="lost"))
    for _ in range(3):
        snap = collector.collect()
    assert _up(snap)["2"] is False
    assert snap.read_errors[("2", "lost")] == 3
    assert value(collector, "egs_exporter_gpus", state="down") == 1
    assert value(collector, "egs_exporter_gpus", state="up") == 3


def test_a_gpu_whose_every_read_fails_exports_no_made_up_values() -> None:
    snap = _collector(Fault(gpu=0, kind="error")).collect()
    assert _up(snap)["0"] is False
    assert snap.gpus[0].values == {}
    assert snap.read_errors[("0", "failed")] > 0


def test_an_unsupported_field_is_omitted_and_asked_for_again_later() -> None:
    field = "DCGM_FI_DEV_MEMORY_TEMP"
    collector = _collector(unsupported=frozenset({field}), unsupported_retry_cycles=3)
    counts = []
    for _ in range(7):
        snap = collector.collect()
        assert all(field not in s.values for s in snap.gpus)
        counts.append(snap.read_errors[("0", "unsupported")])
    assert counts == [1, 1, 1, 2, 2, 2, 3]
    assert all(name != field for name, _ in samples(collector))


def test_no_driver_serves_self_metrics_and_fails_health(caplog: pytest.LogCaptureFixture) -> None:
    no_library = FakeNvml({("nvmlInit",): pynvml.NVMLError_LibraryNotFound()})
    collector = Collector(NvmlBackend(no_library), "n")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            snap = collector.collect()
    assert snap.driver_up is False and snap.gpus == ()
    assert collector.last.healthy is False
    assert value(collector, "egs_exporter_driver_up") == 0
    assert value(collector, "egs_exporter_info", Hostname="n", backend="nvml", simulated="false") == 1
    assert value(collector, "DCGM_FI_DEV_GPU_UTIL") is None
    assert len([r for r in caplog.records if "no GPU driver" in r.getMessage()]) == 1


def test_a_broken_kubelet_drops_pod_labels_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> list[object]:
        raise RuntimeError("kubelet said something unreadable")

    node = SimNode(name="n", gpus=(H100,))
    collector = Collector(SimBackend(node), "n", pods=broken)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            snap = collector.collect()
    assert snap.attribution_up is False
    assert all(s.pods == () for s in snap.gpus)
    assert all(s.up for s in snap.gpus)
    assert len([r for r in caplog.records if "pod attribution off" in r.getMessage()]) == 1
