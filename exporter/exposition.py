"""Turn a Snapshot into the Prometheus text exposition, once per collection cycle.

Families are prometheus_client's; rendering is `generate_latest`. dcgm-exporter names its counters
without `_total` (`DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`), while prometheus_client always suffixes the
HELP/TYPE lines of a counter with `_total`: those two lines are put back to dcgm's name after
rendering, so that the names, and `# TYPE ... counter`, match dcgm-exporter's byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from exporter.derived import SATURATION_RATIO, VRAM_USED_RATIO, derive
from exporter.fields import FIELDS
from exporter.gpu import GpuIdentity
from exporter.snapshot import GpuSample, Snapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
VERSION = "0.1.0"

GPU_LABELS = (
    "gpu",
    "UUID",
    "pci_bus_id",
    "device",
    "modelName",
    "Hostname",
    "DCGM_FI_DRIVER_VERSION",
    "vendor",
)
INSTANCE_LABELS = ("GPU_I_PROFILE", "GPU_I_ID")
DCGM_COUNTERS = frozenset(f.name for f in FIELDS if f.kind == "counter")


def gpu_labels(sample: GpuSample, hostname: str) -> list[dict[str, str]]:
    """The label sets of one device: one per pod that holds it, or one without pod labels."""
    base = identity_labels(sample.gpu, hostname)
    if not sample.pods:
        return [base]
    return [base | {"pod": p.pod, "namespace": p.namespace, "container": p.container} for p in sample.pods]


def identity_labels(gpu: GpuIdentity, hostname: str) -> dict[str, str]:
    labels = {
        "gpu": str(gpu.index),
        "UUID": gpu.uuid,
        "pci_bus_id": gpu.pci_bus_id,
        "device": gpu.device,
        "modelName": gpu.model_name,
        "Hostname": hostname,
        "DCGM_FI_DRIVER_VERSION": gpu.driver_version,
        "vendor": gpu.vendor,
    }
    if gpu.instance_id:
        labels |= {"GPU_I_PROFILE": gpu.instance_profile, "GPU_I_ID": gpu.instance_id}
    return labels


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def families(snap: Snapshot) -> Iterator[Metric]:
    """Every family of a snapshot: the DCGM fields, then EGS's own."""
    labelled = [(s, gpu_labels(s, snap.hostname)) for s in snap.gpus]
    for f in FIELDS:
        family: Metric = (CounterMetricFamily if f.kind == "counter" else GaugeMetricFamily)(f.name, f.help)
        for sample, label_sets in labelled:
            value = sample.values.get(f.name)
            if value is None:
                continue
            for labels in label_sets:
                family.samples.append(Sample(f.name, labels, value))
        if family.samples:
            yield family
    yield from _egs_families(snap, labelled)


def _egs_families(snap: Snapshot, labelled: list[tuple[GpuSample, list[dict[str, str]]]]) -> Iterator[Metric]:
    vram = GaugeMetricFamily(VRAM_USED_RATIO, "VRAM used / (used + free + reserved), from one read (0-1).")
    saturation = GaugeMetricFamily(
        SATURATION_RATIO, "The larger of the VRAM used ratio and memory-bandwidth utilisation (0-1)."
    )
    for sample, label_sets in labelled:
        ratios = derive(sample.values)
        for family in (vram, saturation):
            if family.name in ratios:
                family.samples.extend(Sample(family.name, labels, ratios[family.name]) for labels in label_sets)
    yield vram
    yield saturation
    info = GaugeMetricFamily("egs_gpu_info", "GPU identity and capabilities; always 1.")
    up = GaugeMetricFamily("egs_exporter_gpu_up", "1 if the GPU answered this cycle, 0 if lost, hung or failing.")
    for sample, _ in labelled:
        # EGS's own series keep Prometheus' snake_case lint clean: no camelCase `modelName` here;
        # join on `UUID` (or `Hostname`, `gpu`) to reach the DCGM series that carry it.
        ident = identity_labels(sample.gpu, snap.hostname)
        del ident["modelName"]
        info.add_sample(
            "egs_gpu_info",
            ident
            | {
                "compute_capability": sample.gpu.compute_capability,
                "arch": sample.gpu.arch,
                "vram_bytes": str(sample.gpu.vram_bytes),
            },
            1.0,
        )
        up.add_sample("egs_exporter_gpu_up", ident, 1.0 if sample.up else 0.0)
    yield info
    link = GaugeMetricFamily(
        "egs_gpu_p2p_link", "Peer-to-peer links between two GPUs of the node (value: number of links)."
    )
    for p in snap.links:
        labels = {
            "gpu": str(p.gpu),
            "peer_gpu": str(p.peer_gpu),
            "link_type": p.link_type,
            "Hostname": snap.hostname,
        }
        link.add_sample("egs_gpu_p2p_link", labels, float(p.links))
    yield link
    yield up
    errors = CounterMetricFamily(
        "egs_exporter_read_errors", "GPU reads that gave no value, by reason.", labels=["gpu", "reason"]
    )
    for (gpu, reason), count in sorted(snap.read_errors.items()):
        errors.add_metric([gpu, reason], float(count))
    yield errors
    seen = GaugeMetricFamily(
        "egs_exporter_gpus", "GPUs (and MIG instances / partitions) seen, by state.", labels=["state"]
    )
    answered = sum(1 for s in snap.gpus if s.up)
    seen.add_metric(["up"], float(answered))
    seen.add_metric(["down"], float(len(snap.gpus) - answered))
    yield seen
    yield _gauge("egs_exporter_driver_up", "1 if the GPU driver library initialised.", snap.driver_up)
    yield _gauge(
        "egs_exporter_pod_attribution_up",
        "1 if the kubelet pod-resources socket answered this cycle.",
        snap.attribution_up,
    )
    yield _gauge(
        "egs_exporter_collect_duration_seconds",
        "Duration of the last collection cycle.",
        snap.collect_seconds,
    )
    collections = CounterMetricFamily("egs_exporter_collections", "Completed collection cycles.")
    collections.add_metric([], float(snap.collections))
    yield collections
    exporter_info = GaugeMetricFamily("egs_exporter_info", "Exporter build and backend; always 1.")
    exporter_info.add_sample(
        "egs_exporter_info",
        {
            "version": VERSION,
            "backend": snap.backend,
            "simulated": str(snap.simulated).lower(),
            "Hostname": snap.hostname,
        },
        1.0,
    )
    yield exporter_info


def _gauge(name: str, help: str, value: float | bool) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, help, value=float(value))


def render(snap: Snapshot) -> bytes:
    """The exposition of a snapshot, with dcgm-exporter's counter names (see the module docstring)."""
    return render_families(families(snap))


def render_families(metrics: Iterable[Metric]) -> bytes:
    """The text exposition of `metrics`, DCGM counters named without `_total` as dcgm-exporter names them."""
    parts = []
    for family in metrics:
        text = generate_latest(_Families([family]))
        if family.name in DCGM_COUNTERS:
            text = text.replace(b"_total ", b" ", 1).replace(b"_total counter", b" counter", 1)
        parts.append(text)
    return b"".join(parts)


def age_line(age_seconds: float) -> bytes:
    """Appended at scrape time: the only series that changes between cycles."""
    return (
        b"# HELP egs_exporter_snapshot_age_seconds Seconds since the served snapshot was collected.\n"
        b"# TYPE egs_exporter_snapshot_age_seconds gauge\n"
        + f"egs_exporter_snapshot_age_seconds {age_seconds:.3f}\n".encode()
    )
