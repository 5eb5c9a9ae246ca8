"""Settings of the rules and alerts: selectors and thresholds in one place (Helm values feed them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Source = Literal["egs", "dcgm-exporter"]
SOURCES: tuple[Source, ...] = ("egs", "dcgm-exporter")
DEFAULT_SELECTORS: dict[Source, str] = {"egs": 'job="egs-exporter"', "dcgm-exporter": 'job=~"(nvidia-)?dcgm-exporter"'}
"""The `job` each exporter's targets get: the Service name (the GPU Operator's is `nvidia-dcgm-exporter`,
dcgm-exporter's own chart's `dcgm-exporter`)."""


@dataclass(frozen=True)
class RulesConfig:
    source: Source = "egs"
    """Which exporter writes the GPU series: EGS's (pre-computed per-GPU ratios) or NVIDIA's dcgm-exporter
    (raw DCGM fields only, as where the GPU Operator runs it). The recorded names are the same either way."""
    exporter_selector: str = ""
    """Label matchers that select the GPU exporters' `up` series; empty: the source's DEFAULT_SELECTORS."""
    slow_interval: str = "1m"
    """Evaluation interval of the groups whose inputs change slowly: a GPU's VRAM total, the node and
    GPU-model inventory, the demand a day and a week earlier (the others follow the global interval)."""
    demand_window: str = "5m"
    """The rate window of the `*:requests:rate5m` rules. Only a run in compressed time (`egs demo`, where
    a day passes in minutes) shortens it, as it shortens every other duration."""
    vram_saturated_ratio: float = 0.95
    """VRAM used ratio above which a GPU is full: an LLM server there cannot grow its KV cache."""
    vram_saturated_for: str = "5m"
    vram_saturated_clear_ratio: float = 0.90
    """Once GPUVRAMSaturated fires, it stays firing while VRAM stays above this (hysteresis): a cache
    hovering between 90% and 95% is still full, not resolved and paged again at every crossing."""
    vram_saturated_keep_firing_for: str = "15m"
    """How long GPUVRAMSaturated keeps firing once VRAM is back under the threshold (Prometheus 2.42's
    `keep_firing_for`): a KV cache that fills and drains around 95% pages once per busy spell, not at
    every swing (without it, 16 state changes in the demo's replayed day)."""
    bandwidth_saturated_ratio: float = 0.90
    bandwidth_saturated_for: str = "15m"
    gpu_lost_for: str = "1m"
    exporter_down_for: str = "5m"
    idle_saturation_ratio: float = 0.05
    """A whole GPU below this saturation holds no model: it counts as idle capacity."""
    warm_pool_exhausted_for: str = "5m"
    provisioning_grace_seconds: int = 120
    """How far past its promised ready time an endpoint may be before anyone is told."""
    queue_backlog_requests: int = 20
    queue_backlog_for: str = "10m"
    reconcile_stale_seconds: int = 300
    controller_selector: str = 'job="egs-controller"'
    """Label matchers of the controller's scrape job (the chart's ServiceMonitor names it egs-controller)."""
    controller_absent_for: str = "5m"
    no_leader_for: str = "2m"
    """Longer than a Lease takeover (lease duration 15 s + retry period 2 s) with room for a slow renewal."""
    prometheus_unreachable_for: str = "5m"
    runbook_url: str = "https://github.com/elastic-gpu-service/egs/blob/main/alerts/runbook.md"
    """Each alert links to `<runbook_url>#alert-name-<lowercase alert name>`."""

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"rules source must be one of {', '.join(SOURCES)}, got {self.source!r}")

    @property
    def selector(self) -> str:
        return self.exporter_selector or DEFAULT_SELECTORS[self.source]
