"""What NVIDIA's dcgm-exporter writes for the same readings: a labelled stand-in for tests and benchmarks.

The real dcgm-exporter needs an NVIDIA GPU and DCGM, which CI does not have; the `dcgm-exporter` rules
source (`alerts/`) must still be tested and measured on the series it really produces. dcgm-exporter
writes only the DCGM fields of its counters file, with its own labels (no `vendor`, none of EGS's
`egs_*` series, no pre-computed ratios), and only for NVIDIA devices. Two counters files are common:

- `DCP_METRICS_INCLUDED`: `etc/dcp-metrics-included.csv`, what the GPU Operator deploys: the FB fields
  with `DCGM_FI_DEV_FB_RESERVED`, and the profiling ratios (`DCGM_FI_PROF_*`);
- `DEFAULT_COUNTERS`: `etc/default-counters.csv` of dcgm-exporter 3.x run on its own: no
  `DCGM_FI_DEV_FB_RESERVED` and no profiling fields.
"""

from __future__ import annotations

from prometheus_client.core import Metric
from prometheus_client.samples import Sample

from exporter.exposition import families, render_families
from exporter.snapshot import Snapshot

DEFAULT_COUNTERS = frozenset(
    {
        "DCGM_FI_DEV_SM_CLOCK",
        "DCGM_FI_DEV_MEM_CLOCK",
        "DCGM_FI_DEV_MEMORY_TEMP",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_MEM_COPY_UTIL",
        "DCGM_FI_DEV_ENC_UTIL",
        "DCGM_FI_DEV_DEC_UTIL",
        "DCGM_FI_DEV_XID_ERRORS",
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "DCGM_FI_DEV_ROW_REMAP_FAILURE",
    }
)
DCP_METRICS_INCLUDED = DEFAULT_COUNTERS | {
    "DCGM_FI_DEV_FB_RESERVED",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
    "DCGM_FI_PROF_DRAM_ACTIVE",
}
_EGS_ONLY_LABELS = ("vendor",)


def dcgm_families(snap: Snapshot, counters: frozenset[str] = DCP_METRICS_INCLUDED) -> list[Metric]:
    """The families dcgm-exporter would write for `snap`: its fields, NVIDIA devices, its labels."""
    out = []
    for family in families(snap):
        if family.name not in counters:
            continue
        samples = [
            Sample(s.name, {k: v for k, v in s.labels.items() if k not in _EGS_ONLY_LABELS}, s.value)
            for s in family.samples
            if s.labels.get("vendor") == "nvidia"
        ]
        if samples:
            family.samples = samples
            out.append(family)
    return out


def render_dcgm(snap: Snapshot, counters: frozenset[str] = DCP_METRICS_INCLUDED) -> bytes:
    """dcgm-exporter's exposition of `snap`."""
    return render_families(dcgm_families(snap, counters))
