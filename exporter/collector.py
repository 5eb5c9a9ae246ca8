"""The collection cycle: read every device once, off the scrape path, and render the result.

`Collector.collect()` is one cycle: open the backend if it is not open yet, read every device in
parallel, each on its own worker thread and under one deadline, so a hung GPU stalls neither the
others nor a scrape; ask the kubelet who holds which GPU; build a `Snapshot` and render it once.
`run()` repeats that every interval; the HTTP server only ever serves the last rendered bytes.

Recovery: a driver reload or a GPU reset leaves the backend's handles stale. When the driver says it
is gone (DriverLost) or every device is lost, the collector closes the backend and opens it again;
while some device it has seen is lost or missing, it re-opens it too, so that GPUs that come back
are picked up. Tries back off along REOPEN_DELAYS_S. GPUs seen before and not back yet stay exported
as down (`egs_exporter_gpu_up 0`), so that an alert on them keeps firing instead of the series
vanishing.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from exporter.attribution import DeviceAssignment, PodRef, attribute
from exporter.backend import DriverLost, DriverUnavailable, GpuBackend, GpuLost
from exporter.exposition import render
from exporter.fields import NAMES
from exporter.gpu import GpuIdentity, Node, Reading
from exporter.settings import CollectorSettings as CollectorSettings
from exporter.snapshot import GpuSample, Snapshot

log = logging.getLogger(__name__)

PodLister = Callable[[], Sequence[DeviceAssignment]]
"""Returns the kubelet's device assignments; raises any Exception when the kubelet cannot be asked."""


REOPEN_DELAYS_S = (0.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0)
"""Seconds before each further try to open the backend after a failed one (the last repeats): the
first at the next cycle, since a driver reload takes seconds; then backing off to every 5 minutes,
because each re-open restarts the profiling (GPM) counters of every GPU for one cycle."""


@dataclass
class Rendered:
    """The bytes a scrape serves, and when they were collected (monotonic seconds)."""

    body: bytes
    collected_at: float
    healthy: bool


class _DeviceWorker:
    """One daemon thread per device: a hung read blocks its own device only, and never the exit."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Reading], Future[Reading]]] = queue.SimpleQueue()
        self.busy: Future[Reading] | None = None
        threading.Thread(target=self._loop, name=f"read-{name}", daemon=True).start()

    def submit(self, job: Callable[[], Reading]) -> Future[Reading]:
        future: Future[Reading] = Future()
        self.busy = future
        self._jobs.put((job, future))
        return future

    def _loop(self) -> None:
        while True:
            job, future = self._jobs.get()
            try:
                future.set_result(job())
            except BaseException as e:
                future.set_exception(e)


@dataclass
class Backoff:
    """When to try again: each failure waits the next of `delays` (the last repeats); success resets."""

    delays: Sequence[float]
    failures: int = 0
    due_at: float = float("-inf")

    def due(self, now: float) -> bool:
        return now >= self.due_at

    def failed(self, now: float) -> None:
        self.due_at = now + self.delays[min(self.failures, len(self.delays) - 1)]
        self.failures += 1

    def reset(self) -> None:
        self.failures = 0
        self.due_at = float("-inf")


def _ident(gpu: GpuIdentity) -> tuple[str, str]:
    """A device's identity across re-opens: its index may change when a GPU is missing, its UUID not."""
    return gpu.uuid, gpu.instance_id


@dataclass
class _RetrySchedule:
    """Which fields to ask a device for this cycle: all, minus recently unsupported ones."""

    every: int
    skip_until: dict[tuple[str, str], int] = field(default_factory=dict)

    def due(self, key: str, cycle: int) -> frozenset[str]:
        return frozenset(n for n in NAMES if self.skip_until.get((key, n), 0) <= cycle)

    def unsupported(self, key: str, names: Collection[str], cycle: int) -> None:
        for n in names:
            self.skip_until[(key, n)] = cycle + self.every


class Collector:
    """Owns the backend and produces one rendered snapshot per cycle."""

    def __init__(
        self,
        backend: GpuBackend,
        hostname: str,
        settings: CollectorSettings | None = None,
        pods: PodLister | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._hostname = hostname
        self._settings = settings or CollectorSettings()
        self._pods = pods
        self._clock = clock
        self._node: Node | None = None
        self._known: dict[tuple[str, str], GpuIdentity] = {}
        """Every device any open has found, latest identity: exported as down while not back."""
        self._reopen = Backoff(REOPEN_DELAYS_S)
        self._degraded = False
        """Some device is lost or missing: re-open the backend when `_reopen` is due."""
        self._lost_now: set[str] = set()
        self._driver_lost = False
        self._workers: dict[str, _DeviceWorker] = {}
        self._retry = _RetrySchedule(self._settings.unsupported_retry_cycles)
        self._errors: dict[tuple[str, str], int] = {}
        self._cycle = 0
        self._warned: set[str] = set()
        self._stop = threading.Event()
        self.last = Rendered(
            body=render(self._snapshot((), 0.0, attribution_up=False)), collected_at=clock(), healthy=False
        )

    def collect(self) -> Snapshot:
        """Run one cycle, publish its rendering in `last`, and return the snapshot."""
        start = self._clock()
        self._cycle += 1
        node = self._open(start)
        samples = self._read_all(node.gpus) if node else []
        if node is not None:
            self._judge(node, start)
        samples += self._not_back(samples)
        pods, attribution_up = self._attribution([s.gpu for s in samples])
        samples = [GpuSample(s.gpu, s.up, s.values, tuple(pods.get(s.gpu.key, ()))) for s in samples]
        snap = self._snapshot(tuple(samples), self._clock() - start, attribution_up)
        body = render(snap)
        self.last = Rendered(body=body, collected_at=self._clock(), healthy=snap.driver_up)
        return snap

    def run(self) -> None:
        """Collect every interval until `stop()`; a cycle that raises is logged, never fatal."""
        while not self._stop.is_set():
            began = self._clock()
            try:
                self.collect()
            except Exception:
                log.exception("collection cycle failed; serving the previous snapshot")
            self._stop.wait(max(0.0, self._settings.interval_s - (self._clock() - began)))

    def stop(self) -> None:
        self._stop.set()

    def _open(self, now: float) -> Node | None:
        """The open node: opened now if it is not open yet, or re-opened if degraded and due."""
        if self._node is not None and not (self._degraded and self._reopen.due(now)):
            return self._node
        if self._node is not None:
            log.info("%s backend: opening it again to pick up lost GPUs", self._backend.name)
            self._close()
        elif not self._reopen.due(now):
            return None
        try:
            node = self._backend.open()
        except DriverUnavailable as e:
            self._reopen.failed(now)
            self._warn_once(
                "driver", "no GPU driver (%s backend): %s; serving self-metrics only", self._backend.name, e
            )
            return None
        self._node, self._degraded = node, False
        self._warned.discard("driver")
        self._known.update((_ident(g), g) for g in node.gpus)
        log.info("%s backend: %d devices on %s", self._backend.name, len(node.gpus), self._hostname)
        return node

    def _judge(self, node: Node, now: float) -> None:
        """After the reads: close a node whose driver went away, and schedule a re-open of a degraded one."""
        lost, self._lost_now = self._lost_now, set()
        driver_lost, self._driver_lost = self._driver_lost, False
        if driver_lost or (node.gpus and len(lost) == len(node.gpus)):
            why = "the driver went away" if driver_lost else f"all {len(node.gpus)} devices are lost"
            log.warning("%s backend: %s; closing it and opening it again", self._backend.name, why)
            self._close()
            self._reopen.failed(now)
            return
        present = {_ident(g) for g in node.gpus}
        if lost or any(ident not in present for ident in self._known):
            if not self._degraded:
                self._degraded = True
                self._reopen.failed(now)
        else:
            self._reopen.reset()

    def _close(self) -> None:
        self._node, self._degraded = None, False
        try:
            self._backend.close()
        except Exception:
            log.exception("%s backend: close failed; opening it again anyway", self._backend.name)

    def _not_back(self, samples: Iterable[GpuSample]) -> list[GpuSample]:
        """Down samples for the devices seen before that this cycle did not read."""
        read = {_ident(s.gpu) for s in samples}
        missing = [GpuSample(g, False, {}) for ident, g in self._known.items() if ident not in read]
        for sample in missing:
            self._count(sample.gpu, "lost")
        return missing

    def _read_all(self, gpus: Sequence[GpuIdentity]) -> list[GpuSample]:
        futures: dict[str, Future[Reading]] = {}
        for gpu in gpus:
            worker = self._workers.get(gpu.key) or self._workers.setdefault(gpu.key, _DeviceWorker(gpu.key))
            if worker.busy is not None and not worker.busy.done():
                continue  # still stuck in an earlier read: counted as a timeout below
            fields = self._retry.due(gpu.key, self._cycle)
            futures[gpu.key] = worker.submit(lambda g=gpu, f=fields: self._backend.read(g, f))  # type: ignore[misc]
        deadline = self._clock() + self._settings.read_timeout_s
        samples = []
        for gpu in gpus:
            future = futures.get(gpu.key)
            reading = self._outcome(gpu, future, deadline)
            samples.append(GpuSample(gpu, reading is not None, reading.values if reading else {}))
        return samples

    def _outcome(self, gpu: GpuIdentity, future: Future[Reading] | None, deadline: float) -> Reading | None:
        try:
            if future is None:
                raise TimeoutError
            reading = future.result(timeout=max(0.0, deadline - self._clock()))
        except TimeoutError:
            self._count(gpu, "timeout")
            self._warn_once(
                f"timeout/{gpu.key}",
                "GPU %s did not answer within %.1fs",
                gpu.key,
                self._settings.read_timeout_s,
            )
            return None
        except GpuLost as e:
            self._count(gpu, "lost")
            self._lost_now.add(gpu.key)
            self._driver_lost |= isinstance(e, DriverLost)
            self._warn_once(f"lost/{gpu.key}", "GPU %s (%s) is lost: %s", gpu.key, gpu.uuid, e)
            return None
        except Exception:
            self._count(gpu, "failed")
            log.exception("reading GPU %s failed", gpu.key)
            return None
        for name in ("timeout", "lost"):
            self._warned.discard(f"{name}/{gpu.key}")
        if reading.unsupported:
            self._retry.unsupported(gpu.key, reading.unsupported, self._cycle)
            self._count(gpu, "unsupported", len(reading.unsupported))
        if reading.failed:
            self._count(gpu, "failed", len(reading.failed))
        if not reading.values and reading.failed:
            return None
        return reading

    def _attribution(self, gpus: Sequence[GpuIdentity]) -> tuple[dict[str, list[PodRef]], bool]:
        if self._pods is None:
            return {}, False
        try:
            assignments = self._pods()
        except Exception as e:
            self._warn_once("kubelet", "pod attribution off: kubelet pod-resources unavailable (%s)", e)
            return {}, False
        if "kubelet" in self._warned:
            log.info("pod attribution back on")
            self._warned.discard("kubelet")
        return attribute(gpus, assignments), True

    def _snapshot(self, samples: tuple[GpuSample, ...], seconds: float, attribution_up: bool) -> Snapshot:
        return Snapshot(
            hostname=self._hostname,
            backend=self._backend.name,
            simulated=self._backend.simulated,
            driver_up=self._node is not None,
            attribution_up=attribution_up,
            gpus=samples,
            links=self._node.links if self._node else (),
            read_errors=dict(self._errors),
            collections=self._cycle,
            collect_seconds=seconds,
        )

    def _count(self, gpu: GpuIdentity, reason: str, n: int = 1) -> None:
        self._errors[(gpu.key, reason)] = self._errors.get((gpu.key, reason), 0) + n

    def _warn_once(self, key: str, msg: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(msg, *args)
