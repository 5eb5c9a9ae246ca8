"""Collector faults: a hung GPU, a lost GPU, a failing GPU, unsupported fields, no driver, a broken kubelet.

The sim backend's injected faults drive the same code paths a real driver's errors do; the no-driver
case uses the real pynvml on this GPU-less machine.
"""

from __future__ import annotations

import logging
import time

import pytest

from exporter.backends.nvml import NvmlBackend
from exporter.backends.sim import SimBackend
from exporter.collector import Collector, CollectorSettings
from exporter.fleet import Fault, GpuGroup, SimNode
from exporter.snapshot import Snapshot

H100 = GpuGroup(model="NVIDIA H100 80GB HBM3", vendor="nvidia", count=4, memory_mib=81559, compute_capability="9.0")


def _collector(*faults: Fault, unsupported: frozenset[str] = frozenset(), **settings: float) -> Collector:
    group = GpuGroup(**{**H100.__dict__, "unsupported": unsupported})
    node = SimNode(name="n", gpus=(group,), faults=faults)
    return Collector(SimBackend(node), "n", CollectorSettings(**settings))  # type: ignore[arg-type]


def _up(snap: Snapshot) -> dict[str, bool]:
    return {s.gpu.key: s.up for s in snap.gpus}


def test_a_hung_gpu_stalls_neither_the_cycle_nor_the_other_gpus() -> None:
    collector = _collector(Fault(gpu=1, kind="hang", seconds=5), read_timeout_s=0.3)
    began = time.monotonic()
    snap = collector.collect()
    assert time.monotonic() - began < 1.5
    assert _up(snap) == {"0": True, "1": False, "2": True, "3": True}
    assert snap.gpus[1].values == {}
    assert snap.gpus[0].values["DCGM_FI_DEV_FB_USED"] > 0
    began = time.monotonic()
    second = collector.collect()
    assert time.monotonic() - began < 0.3, "a GPU still stuck in its last read must not be waited for again"
    assert second.read_errors[("1", "timeout")] == 2


def test_a_lost_gpu_is_marked_down_and_read_again_next_cycle() -> None:
    collector = _collector(Fault(gpu=2, kind="lost"))
    for _ in range(3):
        snap = collector.collect()
    assert _up(snap)["2"] is False
    assert snap.read_errors[("2", "lost")] == 3
    assert b'egs_exporter_gpus{state="down"} 1.0' in collector.last.body


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
    assert field.encode() not in collector.last.body


def test_no_driver_serves_self_metrics_and_fails_health(caplog: pytest.LogCaptureFixture) -> None:
    collector = Collector(NvmlBackend(), "n")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            snap = collector.collect()
    assert snap.driver_up is False and snap.gpus == ()
    assert collector.last.healthy is False
    assert b"egs_exporter_driver_up 0.0" in collector.last.body
    assert b'egs_exporter_info{Hostname="n",backend="nvml",simulated="false"' in collector.last.body
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
