"""The recording rules and alerts, built from `RulesConfig` and rendered to `alerts/egs.rules.yaml`.

Why the rules read `egs_gpu_vram_used_ratio` and `egs_gpu_saturation_ratio` instead of joining the
DCGM framebuffer series: the exporter computes both from one read of one device (exporter/derived.py).
The straightforward `FB_USED / (FB_USED + FB_FREE + FB_RESERVED)` is three selections and two
one-to-one joins over every GPU series, each join hashing the full label set of every series
(`gpu`, `UUID`, `pci_bus_id`, `modelName`, `Hostname`, pods ...); at 10,000 GPUs that is about a
second of rule evaluation per cycle on 2 cores, and it silently drops every GPU without
FB_RESERVED (AMD). Reading the pre-computed ratio is one selection and no join.

Where a join or an aggregation is unavoidable, matching is narrowed: node and model aggregates read
whole GPUs only (`GPU_I_ID=""`, so MIG instances are not counted twice), drop the pod labels once
(`max without (pod, namespace, container)`, because time-sliced GPUs appear once per pod), and
joins match `on` the few labels that identify the thing (`on (namespace, pod)`, `on (gpu_class)`)
rather than on every label.

Render with `python -m alerts.rules > alerts/egs.rules.yaml`; a test checks the file is current.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from alerts.config import RulesConfig

Rule = dict[str, Any]
WHOLE_GPU = 'GPU_I_ID=""'
PER_GPU = "max without (pod, namespace, container)"
"""Collapse the per-pod copies of a time-sliced GPU's series back to one per GPU."""


def _record(name: str, expr: str) -> Rule:
    return {"record": name, "expr": expr}


def gpu_rules() -> list[Rule]:
    return [
        _record("gpu:vram_used:ratio", "egs_gpu_vram_used_ratio"),
        _record("gpu:saturation:ratio", "egs_gpu_saturation_ratio"),
    ]


def capacity_rules(cfg: RulesConfig) -> list[Rule]:
    rules = []
    whole = f"{PER_GPU} (gpu:saturation:ratio{{{WHOLE_GPU}}})"
    free = f"{PER_GPU} (DCGM_FI_DEV_FB_FREE{{{WHOLE_GPU}}})"
    for level in ("Hostname", "modelName"):
        count = f"{level}:gpus:count"
        rules += [
            _record(f"{level}:gpu_saturation:max", f"max by ({level}) ({whole})"),
            _record(f"{level}:gpu_saturation:avg", f"avg by ({level}) ({whole})"),
            _record(count, f"count by ({level}) ({whole})"),
            _record(
                f"{level}:gpus_idle:count",
                f"count by ({level}) ({whole} < {cfg.idle_saturation_ratio}) or ({count} * 0)",
            ),
            _record(f"{level}:vram_free:mib", f"sum by ({level}) ({free})"),
        ]
    return rules


def demand_rules() -> list[Rule]:
    per_pod_class = 'group by (namespace, pod, modelName) (DCGM_FI_DEV_FB_USED{pod!=""})'
    return [
        _record("model:requests:rate5m", "sum by (model_name) (rate(vllm:request_success_total[5m]))"),
        _record("model:requests_waiting:sum", "sum by (model_name) (vllm:num_requests_waiting)"),
        _record("model:requests_running:sum", "sum by (model_name) (vllm:num_requests_running)"),
        # vLLM renamed gpu_cache_usage_perc to kv_cache_usage_perc (both 0-1); read either.
        _record(
            "model:kv_cache_usage:max",
            "max by (model_name) (vllm:kv_cache_usage_perc or vllm:gpu_cache_usage_perc)",
        ),
        _record(
            "model:kv_cache_usage:avg",
            "avg by (model_name) (vllm:kv_cache_usage_perc or vllm:gpu_cache_usage_perc)",
        ),
        # Demand per GPU class: each server pod's request rate, joined on (namespace, pod) to the
        # GPU model its pod holds, as the exporter's pod attribution reports it.
        _record(
            "modelName:requests:rate5m",
            "sum by (modelName) (sum by (namespace, pod) (rate(vllm:request_success_total[5m]))"
            f" * on (namespace, pod) group_left (modelName) {per_pod_class})",
        ),
    ]


def demand_curve_rules() -> list[Rule]:
    """The same demand a day and a week earlier: the seasonal inputs of the autoscaler's forecast."""
    rules = []
    for level in ("model", "modelName"):
        for ago in ("1d", "1w"):
            rules.append(_record(f"{level}:requests_{ago}_ago:rate5m", f"{level}:requests:rate5m offset {ago}"))
    return rules


def _alert(cfg: RulesConfig, name: str, expr: str, severity: str, summary: str, description: str, for_: str) -> Rule:
    rule: Rule = {"alert": name, "expr": expr}
    if for_:
        rule["for"] = for_
    rule["labels"] = {"severity": severity}
    rule["annotations"] = {
        "summary": summary,
        "description": description,
        "runbook_url": f"{cfg.runbook_url}#alert-name-{name.lower()}",
    }
    return rule


def alert_rules(cfg: RulesConfig) -> list[Rule]:
    where = "GPU {{ $labels.gpu }} ({{ $labels.modelName }}) on {{ $labels.Hostname }}"
    held = "{{ if $labels.pod }}, held by {{ $labels.namespace }}/{{ $labels.pod }}{{ end }}"
    return [
        _alert(
            cfg,
            "GPUVRAMSaturated",
            f"gpu:vram_used:ratio > {cfg.vram_saturated_ratio}",
            "page",
            "A GPU's memory is full: its model server cannot grow its KV cache or take more requests.",
            f"{where} has {{{{ $value | humanizePercentage }}}} of its VRAM in use{held}, whatever its compute "
            "utilisation says.",
            cfg.vram_saturated_for,
        ),
        _alert(
            cfg,
            "GPUMemoryBandwidthSaturated",
            f"DCGM_FI_DEV_MEM_COPY_UTIL / 100 > {cfg.bandwidth_saturated_ratio}",
            "warning",
            "A GPU's memory bandwidth is saturated: token generation on it is memory-bound.",
            f"{where} spends {{{{ $value | humanizePercentage }}}} of its time copying memory{held}.",
            cfg.bandwidth_saturated_for,
        ),
        _alert(
            cfg,
            "GPULost",
            "egs_exporter_gpu_up == 0",
            "page",
            "A GPU stopped answering its driver.",
            "GPU {{ $labels.gpu }} ({{ $labels.UUID }}) on {{ $labels.Hostname }} is lost, hung or failing "
            "every read; the replicas on it are not serving.",
            cfg.gpu_lost_for,
        ),
        _alert(
            cfg,
            "GPUDisappeared",
            f"count by (Hostname) (egs_gpu_info{{{WHOLE_GPU}}} offset 10m)"
            f" > count by (Hostname) (egs_gpu_info{{{WHOLE_GPU}}})",
            "warning",
            "A node reports fewer GPUs than ten minutes ago.",
            "{{ $labels.Hostname }} reported {{ $value }} GPUs ten minutes ago and fewer now: a GPU fell "
            "off the bus or the driver no longer enumerates it.",
            "",
        ),
        _alert(
            cfg,
            "GPUXIDError",
            "DCGM_FI_DEV_XID_ERRORS != 0 and changes(DCGM_FI_DEV_XID_ERRORS[15m]) > 0",
            "warning",
            "A GPU reported an XID error.",
            f"{where} reported XID {{{{ $value }}}}{held}.",
            "",
        ),
        _alert(
            cfg,
            "GPUExporterDown",
            f"up{{{cfg.exporter_selector}}} == 0",
            "warning",
            "Prometheus cannot scrape a GPU exporter.",
            "{{ $labels.instance }} has not answered scrapes: its GPUs are unmonitored and their "
            "saturation alerts cannot fire.",
            cfg.exporter_down_for,
        ),
        _alert(
            cfg,
            "GPUExporterAbsent",
            f"absent(up{{{cfg.exporter_selector}}})",
            "warning",
            "No GPU exporter is being scraped at all.",
            "Prometheus has no target matching {" + cfg.exporter_selector.replace('"', "'") + "}: check the "
            "exporter DaemonSet and its ServiceMonitor.",
            cfg.exporter_down_for,
        ),
        _alert(
            cfg,
            "GPUWarmPoolExhausted",
            "egs_warm_pool_idle_nodes == 0 and on (gpu_class) sum by (gpu_class) (egs_endpoint_replicas_waiting) > 0",
            "warning",
            "A GPU class has no warm capacity left while replicas wait for it.",
            "No idle {{ $labels.gpu_class }} node is held while replicas wait: new endpoints wait for on-demand "
            "provisioning (5-10 minutes).",
            cfg.warm_pool_exhausted_for,
        ),
        _alert(
            cfg,
            "EndpointProvisioningSlow",
            f"time() - egs_endpoint_estimated_ready_timestamp_seconds > {cfg.provisioning_grace_seconds}"
            " and on (namespace, endpoint) egs_endpoint_ready == 0",
            "warning",
            "An endpoint is not ready by the time it was promised.",
            "{{ $labels.namespace }}/{{ $labels.endpoint }} ({{ $labels.model }} on {{ $labels.gpu_class }}) is "
            "{{ $value | humanizeDuration }} past its estimated ready time.",
            "",
        ),
        _alert(
            cfg,
            "ModelQueueBacklog",
            f"model:requests_waiting:sum > {cfg.queue_backlog_requests}",
            "warning",
            "Requests queue up for a model.",
            "{{ $value }} requests wait for {{ $labels.model_name }}: its replicas are saturated.",
            cfg.queue_backlog_for,
        ),
        _alert(
            cfg,
            "AutoscalerNotReconciling",
            f"time() - max(egs_autoscaler_last_reconcile_timestamp_seconds) > {cfg.reconcile_stale_seconds}",
            "warning",
            "The EGS autoscaler has stopped reconciling.",
            "The last reconcile finished {{ $value | humanizeDuration }} ago: warm pools and endpoints are not "
            "being sized.",
            "",
        ),
    ]


def rule_groups(cfg: RulesConfig | None = None) -> dict[str, Any]:
    """The whole rules file. Groups evaluate concurrently; rules within a group, in order."""
    cfg = cfg or RulesConfig()
    return {
        "groups": [
            {"name": "egs-gpu.rules", "rules": gpu_rules()},
            {"name": "egs-capacity.rules", "rules": capacity_rules(cfg)},
            {"name": "egs-model-demand.rules", "rules": demand_rules()},
            {"name": "egs-demand-curve.rules", "interval": "1m", "rules": demand_curve_rules()},
            {"name": "egs-alerts", "rules": alert_rules(cfg)},
        ]
    }


def render(cfg: RulesConfig | None = None) -> str:
    header = "# Generated by `python -m alerts.rules` from alerts/rules.py: do not edit by hand.\n"
    return header + yaml.safe_dump(rule_groups(cfg), sort_keys=False, width=1000)


if __name__ == "__main__":
    sys.stdout.write(render())
