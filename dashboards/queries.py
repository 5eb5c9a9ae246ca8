"""Every PromQL query the dashboards show, as named functions: kept apart from the layout.

The panels in `dashboards/boards.py` call these; the metric-contract test and the dashboard tests read
the rendered JSON, so a query here is checked against what is really written and run against a real
Prometheus. Queries read the recorded names of `alerts/` (the same for either GPU source), vLLM's own
series, the exporter's self-metrics and the controller's series (`autoscaler/metrics.py`).

Selectors use the dashboard variables `$cluster`, `$node`, `$gpu_model` and `$model` (each "All" is
`.*`, which also matches a series without that label: `cluster` exists only where Thanos, Mimir or a
relabelling adds it).
"""

from __future__ import annotations

GPU = 'cluster=~"$cluster", Hostname=~"$node", modelName=~"$gpu_model"'
"""Selects per-GPU series (and per-node / per-GPU-model aggregates, which carry a subset of these)."""
NODE = 'cluster=~"$cluster", Hostname=~"$node"'
CLASS = 'cluster=~"$cluster", modelName=~"$gpu_model"'
MODEL = 'cluster=~"$cluster", model_name=~"$model"'
"""vLLM's own series and the per-model rules name the model `model_name`."""
ENDPOINT = 'cluster=~"$cluster", model=~"$model"'
"""The controller's endpoint series name the model `model`."""
POOL = 'cluster=~"$cluster"'
"""The controller's series: per GPU class (`gpu_class="H100-80GB"`, the catalogue's names).

One vocabulary on every board: a *GPU class* is a catalogue class (`gpu_class`: warm pools, forecast,
capacity, cost), a *GPU model* is the name the exporter reports (dcgm's `modelName`: saturation, VRAM,
demand served per model)."""
VRAM_SATURATED = 0.95


# Fleet overview


def saturation_by_node() -> str:
    return f"Hostname:gpu_saturation:max{{{NODE}}}"


def saturation_by_gpu_model() -> str:
    return f"modelName:gpu_saturation:avg{{{CLASS}}}"


def saturation_max_by_gpu_model() -> str:
    return f"modelName:gpu_saturation:max{{{CLASS}}}"


def vram_used_by_gpu() -> str:
    return f"gpu:vram_used:ratio{{{GPU}}}"


def compute_by_gpu() -> str:
    return f"DCGM_FI_DEV_GPU_UTIL{{{GPU}}} / 100"


def memory_bound_gpus() -> str:
    """VRAM used minus compute utilisation per GPU: the GPUs memory fills long before compute does."""
    return f"topk(10, gpu:vram_used:ratio{{{GPU}}} - DCGM_FI_DEV_GPU_UTIL{{{GPU}}} / 100)"


def vram_saturated_gpus() -> str:
    return f"count(gpu:vram_used:ratio{{{GPU}}} > {VRAM_SATURATED}) or vector(0)"


def gpus_total() -> str:
    return f"sum(modelName:gpus:count{{{CLASS}}})"


def gpus_idle_total() -> str:
    return f"sum(modelName:gpus_idle:count{{{CLASS}}})"


def idle_gpus_by_model() -> str:
    return f"modelName:gpus_idle:count{{{CLASS}}}"


def gpus_by_model() -> str:
    return f"modelName:gpus:count{{{CLASS}}}"


def vram_free_by_model() -> str:
    return f"modelName:vram_free:mib{{{CLASS}}}"


def kv_cache_usage() -> str:
    return f"model:kv_cache_usage:max{{{MODEL}}}"


# Models


def demand() -> str:
    return f"model:requests:rate5m{{{MODEL}}}"


def demand_a_day_earlier() -> str:
    return f"model:requests_1d_ago:rate5m{{{MODEL}}}"


def demand_a_week_earlier() -> str:
    return f"model:requests_1w_ago:rate5m{{{MODEL}}}"


def demand_by_gpu_model() -> str:
    return f"modelName:requests:rate5m{{{CLASS}}}"


def requests_waiting() -> str:
    return f"model:requests_waiting:sum{{{MODEL}}}"


def requests_running() -> str:
    return f"model:requests_running:sum{{{MODEL}}}"


def kv_cache_usage_avg() -> str:
    return f"model:kv_cache_usage:avg{{{MODEL}}}"


def capacity_gpus_by_class() -> str:
    """GPUs on the Ready nodes of each class, from the controller: the same class names as its forecast."""
    return f"max by (gpu_class) (egs_gpu_class_gpus{{{POOL}}})"


def forecast_gpus() -> str:
    """The controller's forecast of each class's GPU need at the peak of the provisioning lead time."""
    return f"egs_warm_pool_forecast_gpus{{{POOL}}}"


def endpoint_seconds_to_ready() -> str:
    """How long until each waiting endpoint's promised ready time (negative: late)."""
    return f"egs_endpoint_estimated_ready_timestamp_seconds{{{ENDPOINT}}} - time()"


def endpoint_replicas_waiting() -> str:
    return f"egs_endpoint_replicas_waiting{{{ENDPOINT}}}"


def endpoints_ready() -> str:
    return f"egs_endpoint_ready{{{ENDPOINT}}}"


# Warm pools


def warm_pool_target() -> str:
    return f"egs_warm_pool_target_nodes{{{POOL}}}"


def warm_pool_idle() -> str:
    return f"egs_warm_pool_idle_nodes{{{POOL}}}"


def replicas_waiting_by_pool() -> str:
    return f"sum by (gpu_class) (egs_endpoint_replicas_waiting{{{POOL}}})"


def warm_nodes_taken_per_hour() -> str:
    return f"sum by (gpu_class) (increase(egs_warm_pool_taken_nodes_total{{{POOL}}}[1h]))"


def endpoints_late() -> str:
    """Endpoints past their promised ready time and not ready: the promises being broken now."""
    late = f"time() - egs_endpoint_estimated_ready_timestamp_seconds{{{POOL}}} > 0"
    # 0, not nothing, while a controller reports and none is late
    reporting = f"0 * max(egs_autoscaler_last_reconcile_timestamp_seconds{{{POOL}}})"
    return f"count(({late}) and on (namespace, endpoint) egs_endpoint_ready{{{POOL}}} == 0) or {reporting}"


def provisioning_seconds(quantile: float) -> str:
    """The `quantile` of how long endpoints waited for capacity of each class, over the last hour."""
    buckets = f"rate(egs_endpoint_provisioning_seconds_bucket{{{POOL}}}[1h])"
    return f"histogram_quantile({quantile:g}, sum by (le, gpu_class) ({buckets}))"


def etas_kept_share() -> str:
    """Per class, the share of the ETAs resolved over the dashboard's range that were kept (nothing where
    none resolved, rather than 0/0)."""
    resolved = f"egs_endpoint_promises_total{{{POOL}}}[$__range]"
    kept = f'egs_endpoint_promises_total{{{POOL}, outcome="kept"}}[$__range]'
    all_ = f"sum by (gpu_class) (increase({resolved}))"
    return f"sum by (gpu_class) (increase({kept})) / ({all_} > 0)"


# Cost by team: the controller's GPUs held per namespace and per class, at the price series it exports
# (the configured price, else the catalogue's), and the two recording rules built on them.

CLASS_PRICE = f"max by (gpu_class) (egs_gpu_class_price_usd_per_hour{{{POOL}}})"


def dollars_per_hour_by_namespace() -> str:
    return f"namespace:egs_gpu_cost_usd_per_hour:sum{{{POOL}}}"


def idle_dollars_per_hour_by_class() -> str:
    return f"gpu_class:egs_gpu_idle_cost_usd_per_hour:sum{{{POOL}}}"


def dollars_per_hour_by_class() -> str:
    """Every GPU of each class on a Ready node, held or idle, at the class's price per GPU-hour."""
    return f"max by (gpu_class) (egs_gpu_class_gpus{{{POOL}}}) * on (gpu_class) {CLASS_PRICE}"


def dollars_per_hour_by_namespace_and_class() -> str:
    return f"max by (namespace, gpu_class) (egs_namespace_gpus{{{POOL}}}) * on (gpu_class) group_left () {CLASS_PRICE}"


def gpus_by_namespace() -> str:
    """GPUs each namespace holds, a shared GPU by the share of its memory a pod holds."""
    return f"sum by (namespace) (max by (namespace, gpu_class) (egs_namespace_gpus{{{POOL}}}))"


def dollars_by_namespace_over(window: str) -> str:
    """What each namespace's GPUs cost over `window` (its mean $/hour times the window's hours)."""
    hours = {"24h": 24, "7d": 168}[window]
    return f"avg_over_time(namespace:egs_gpu_cost_usd_per_hour:sum{{{POOL}}}[{window}]) * {hours}"


def price_by_class() -> str:
    return CLASS_PRICE


# Exporter and controller health


def exporters_up() -> str:
    return 'up{job=~"egs-exporter|(nvidia-)?dcgm-exporter", cluster=~"$cluster"}'


def exporter_gpus_down() -> str:
    return f'egs_exporter_gpus{{state="down", {NODE}}}'


def exporter_collect_seconds() -> str:
    return f"egs_exporter_collect_duration_seconds{{{NODE}}}"


def exporter_snapshot_age() -> str:
    return f"egs_exporter_snapshot_age_seconds{{{NODE}}}"


def exporter_read_errors() -> str:
    return f"sum by (Hostname, reason) (rate(egs_exporter_read_errors_total{{{NODE}}}[5m]))"


def exporter_driver_up() -> str:
    return f"egs_exporter_driver_up{{{NODE}}}"


def exporter_pod_attribution_up() -> str:
    return f"egs_exporter_pod_attribution_up{{{NODE}}}"


def controller_seconds_since_reconcile() -> str:
    return f"time() - max(egs_autoscaler_last_reconcile_timestamp_seconds{{{POOL}}})"


def controller_reconcile_errors() -> str:
    return f"sum by (reason) (rate(egs_autoscaler_reconcile_errors_total{{{POOL}}}[5m]))"


# Variables


def cluster_values() -> str:
    return "label_values(up, cluster)"


def node_values() -> str:
    return 'label_values(gpu_whole:saturation:ratio{cluster=~"$cluster"}, Hostname)'


def gpu_model_values() -> str:
    return 'label_values(gpu_whole:saturation:ratio{cluster=~"$cluster"}, modelName)'


def model_values() -> str:
    return 'label_values(model:requests:rate5m{cluster=~"$cluster"}, model_name)'
