"""Per-GPU ratios the exporter computes from one read, so that Prometheus does not have to join.

`FB_USED / (FB_USED + FB_FREE + FB_RESERVED)` in PromQL is a three-way join over every GPU series:
at 10,000 GPUs it costs the rule evaluator about a second per cycle, and it yields nothing for a
device without FB_RESERVED (AMD). Here the three values come from the same read, so the ratio is
exact and costs nothing; the recording rules in `alerts/` read it instead.
"""

from __future__ import annotations

VRAM_USED_RATIO = "egs_gpu_vram_used_ratio"
SATURATION_RATIO = "egs_gpu_saturation_ratio"


def derive(values: dict[str, float]) -> dict[str, float]:
    """The derived ratios of one device's values; absent when their inputs are absent."""
    used, free = values.get("DCGM_FI_DEV_FB_USED"), values.get("DCGM_FI_DEV_FB_FREE")
    if used is None or free is None:
        return {}
    total = used + free + values.get("DCGM_FI_DEV_FB_RESERVED", 0.0)
    if total <= 0:
        return {}
    vram = used / total
    bandwidth = values.get("DCGM_FI_DEV_MEM_COPY_UTIL")
    if bandwidth is None:
        dram = values.get("DCGM_FI_PROF_DRAM_ACTIVE")
        bandwidth = None if dram is None else dram * 100
    saturation = vram if bandwidth is None else max(vram, bandwidth / 100)
    return {VRAM_USED_RATIO: round(vram, 6), SATURATION_RATIO: round(saturation, 6)}
