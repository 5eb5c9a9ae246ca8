"""Settings of the rules and alerts: selectors and thresholds in one place (Helm values feed them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RulesConfig:
    exporter_selector: str = 'job="egs-exporter"'
    """Label matchers that select the GPU exporters' `up` series."""
    vram_saturated_ratio: float = 0.95
    """VRAM used ratio above which a GPU is full: an LLM server there cannot grow its KV cache."""
    vram_saturated_for: str = "5m"
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
    runbook_url: str = "https://github.com/elastic-gpu-service/egs/blob/main/alerts/runbook.md"
    """Each alert links to `<runbook_url>#alert-name-<lowercase alert name>`."""
