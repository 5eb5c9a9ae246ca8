"""The Grafana dashboards: layout only, built with grafana-foundation-sdk (Grafana 11.6's schema).

Every query comes from `dashboards.queries`; this module arranges panels, units and variables.
`dashboards.render` turns the builders into the JSON the Helm chart ships (`egs render`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from grafana_foundation_sdk.builders import bargauge, common, dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Panel,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)

from alerts.config import RulesConfig
from dashboards import queries as q

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RULES = RulesConfig()
"""The alerts' thresholds, which the panels draw where they show what an alert reads."""
Query = tuple[str, str]
"""(PromQL, legend)."""
PanelBuilder = Builder[Panel]


def _targets(panel: PanelBuilder, items: Sequence[Query], instant: bool = False) -> PanelBuilder:
    for i, (expr, legend) in enumerate(items):
        target = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + i))
        target = target.instant() if instant else target.range()
        panel.with_target(target)  # type: ignore[attr-defined]
    return panel


def series(title: str, description: str, unit: str, *items: Query, height: int = 8, width: int = 12) -> PanelBuilder:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(DATASOURCE)
        .height(height)
        .span(width)
    )
    return _targets(panel, items)


def number(title: str, description: str, unit: str, expr: str, width: int = 6) -> PanelBuilder:
    panel = stat.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE).height(4)
    return _targets(panel.span(width), [(expr, "")], instant=True)


def bars(title: str, description: str, unit: str, *items: Query, width: int = 12) -> PanelBuilder:
    panel = bargauge.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE).height(8)
    return _targets(panel.span(width), items, instant=True)


def rows(title: str, description: str, unit: str, *items: Query, width: int = 12) -> PanelBuilder:
    panel = table.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE).height(8)
    return _targets(panel.span(width), items, instant=True)


def threshold(panel: PanelBuilder, value: float, above: str = "red", below: str = "green") -> PanelBuilder:
    """Colour `panel` by an alert's (or a target's) threshold: `below` under `value`, `above` from it; a time
    series draws it as a dashed line. Cells and stats take the colour."""
    steps = dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE)
    panel.thresholds(steps.steps([Threshold(value=None, color=below), Threshold(value=value, color=above)]))  # type: ignore[attr-defined]
    if isinstance(panel, timeseries.Panel):
        panel.thresholds_style(common.GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.DASHED))
    return panel


def _variable(name: str, label: str, query: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .query(query)
        .datasource(DATASOURCE)
        .include_all(True)
        .all_value(".*")
        .multi(True)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )


def _board(uid: str, title: str, description: str, panels: Sequence[PanelBuilder]) -> dashboard.Dashboard:
    board = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["egs", "gpu"])
        .refresh("30s")
        .time("now-6h", "now")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .with_variable(dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_variable(_variable("cluster", "Cluster", q.cluster_values()))
        .with_variable(_variable("node", "Node", q.node_values()))
        .with_variable(_variable("gpu_model", "GPU model", q.gpu_model_values()))
        .with_variable(_variable("model", "Model", q.model_values()))
    )
    for panel in panels:
        board.with_panel(panel)
    return board


def fleet() -> dashboard.Dashboard:
    return _board(
        "egs-fleet",
        "EGS / Fleet overview",
        "GPU saturation by node and GPU model (memory, not compute, fills an LLM GPU), memory-bound GPUs, "
        "KV-cache usage and idle GPUs by GPU model.",
        [
            number("GPUs", "Whole GPUs reporting.", "none", q.gpus_total()),
            number(
                "Idle GPUs", "Whole GPUs below the idle saturation (no model on them).", "none", q.gpus_idle_total()
            ),
            threshold(
                number(
                    "VRAM-saturated GPUs",
                    "GPUs and MIG instances above 95% VRAM used (GPUVRAMSaturated pages on each).",
                    "none",
                    q.vram_saturated_gpus(),
                ),
                1,
            ),
            number("Free VRAM", "VRAM free on whole GPUs.", "mbytes", f"sum({q.vram_free_by_model()})"),
            threshold(
                series(
                    "Saturation by node",
                    "The most saturated GPU of each node; the dashed line is where GPUVRAMSaturated pages.",
                    "percentunit",
                    (q.saturation_by_node(), "{{Hostname}}"),
                ),
                RULES.vram_saturated_ratio,
            ),
            threshold(
                series(
                    "Saturation by GPU model",
                    "Mean and most saturated GPU of each GPU model; the dashed line is where GPUVRAMSaturated pages.",
                    "percentunit",
                    (q.saturation_by_gpu_model(), "{{modelName}} avg"),
                    (q.saturation_max_by_gpu_model(), "{{modelName}} max"),
                ),
                RULES.vram_saturated_ratio,
            ),
            threshold(
                series(
                    "VRAM used per GPU",
                    "VRAM used / (used + free + reserved); the dashed line is the 95% at which GPUVRAMSaturated pages.",
                    "percentunit",
                    (q.vram_used_by_gpu(), "{{Hostname}} {{gpu}}"),
                ),
                RULES.vram_saturated_ratio,
            ),
            series(
                "Compute per GPU", "DCGM GPU utilisation.", "percentunit", (q.compute_by_gpu(), "{{Hostname}} {{gpu}}")
            ),
            rows(
                "Memory-bound GPUs",
                "VRAM used minus compute utilisation: at the top, GPUs whose memory is full while compute idles.",
                "percentunit",
                (q.memory_bound_gpus(), "{{Hostname}} {{gpu}} {{modelName}}"),
            ),
            series(
                "KV-cache usage by model",
                "vLLM's KV-cache usage, the busiest replica.",
                "percentunit",
                (q.kv_cache_usage(), "{{model_name}}"),
            ),
            bars(
                "Idle GPUs by GPU model",
                "Whole GPUs holding no model, per GPU model.",
                "none",
                (q.idle_gpus_by_model(), "{{modelName}}"),
            ),
            bars("GPUs by GPU model", "Whole GPUs per GPU model.", "none", (q.gpus_by_model(), "{{modelName}}")),
        ],
    )


def models() -> dashboard.Dashboard:
    return _board(
        "egs-models",
        "EGS / Models",
        "Per model: demand now and a day and a week earlier (the forecast's seasonal inputs), demand per GPU "
        "model, queue, KV cache, the controller's forecast of each class's GPU need against capacity, and "
        "the endpoints waiting for capacity with their promised ready times.",
        [
            series(
                "Demand",
                "Requests per second now, a day and a week earlier.",
                "reqps",
                (q.demand(), "{{model_name}}"),
                (q.demand_a_day_earlier(), "{{model_name}} 1d ago"),
                (q.demand_a_week_earlier(), "{{model_name}} 1w ago"),
            ),
            series(
                "Demand by GPU model",
                "Requests per second served on each GPU model.",
                "reqps",
                (q.demand_by_gpu_model(), "{{modelName}}"),
            ),
            threshold(
                series(
                    "Queue",
                    "Requests waiting and running, summed over replicas; ModelQueueBacklog warns while the waiting "
                    "stay above the dashed line.",
                    "none",
                    (q.requests_waiting(), "{{model_name}} waiting"),
                    (q.requests_running(), "{{model_name}} running"),
                ),
                RULES.queue_backlog_requests,
                above="orange",
            ),
            series(
                "KV cache",
                "KV-cache usage: busiest replica and mean.",
                "percentunit",
                (q.kv_cache_usage(), "{{model_name}} max"),
                (q.kv_cache_usage_avg(), "{{model_name}} avg"),
            ),
            series(
                "Forecast GPU need by class",
                "From the controller: the GPUs each class's endpoints are forecast to need at the peak of the "
                "provisioning lead time, the point forecast and its upper quantile (the warm pool covers the "
                "rise). None until the demand history holds two samples five minutes apart.",
                "none",
                (q.forecast_gpus(), "{{gpu_class}} {{bound}}"),
            ),
            series(
                "Capacity by GPU class",
                "From the controller: GPUs on the Ready nodes of each class, the same classes as the forecast's.",
                "none",
                (q.capacity_gpus_by_class(), "{{gpu_class}} GPUs"),
            ),
            threshold(
                rows(
                    "Endpoints: seconds to promised ready time",
                    "From the controller: negative means late; red once EndpointProvisioningSlow warns.",
                    "s",
                    (q.endpoint_seconds_to_ready(), "{{namespace}}/{{endpoint}}"),
                ),
                -RULES.provisioning_grace_seconds,
                above="green",
                below="red",
            ),
            series(
                "Endpoints: replicas waiting for capacity",
                "From the controller.",
                "none",
                (q.endpoint_replicas_waiting(), "{{namespace}}/{{endpoint}} on {{gpu_class}}"),
            ),
            rows(
                "Endpoints ready",
                "From the controller: 1 once every wanted replica serves.",
                "none",
                (q.endpoints_ready(), "{{namespace}}/{{endpoint}}"),
            ),
        ],
    )


def warm_pools() -> dashboard.Dashboard:
    return _board(
        "egs-warm-pools",
        "EGS / Warm pools",
        "Per GPU class (catalogue names): the idle nodes the policy wants held, those held, the replicas "
        "waiting for capacity, the warm nodes taken, how long endpoints waited for capacity, what the idle "
        "GPUs cost per hour, how often promised ready times were kept, and the endpoints late on theirs.",
        [
            series(
                "Warm nodes: target and held",
                "Idle GPU nodes (ready or ordered) the warm-pool policy wants, and those held.",
                "none",
                (q.warm_pool_target(), "{{gpu_class}} target"),
                (q.warm_pool_idle(), "{{gpu_class}} held"),
                width=24,
            ),
            series(
                "Replicas waiting for capacity",
                "When this rises while the pool is empty, GPUWarmPoolExhausted fires.",
                "none",
                (q.replicas_waiting_by_pool(), "{{gpu_class}}"),
                width=24,
            ),
            series(
                "Warm nodes taken",
                "Warm nodes a replica (or another pod) took, per hour: each one an endpoint served without "
                "waiting for a node.",
                "none",
                (q.warm_nodes_taken_per_hour(), "{{gpu_class}}"),
            ),
            series(
                "Provisioning times",
                "How long endpoints waited for GPU capacity of each class (Provisioning until their replicas "
                "were placed), over the last hour: median and 95th percentile.",
                "s",
                (q.provisioning_seconds(0.5), "{{gpu_class}} p50"),
                (q.provisioning_seconds(0.95), "{{gpu_class}} p95"),
            ),
            series(
                "What the idle GPUs cost",
                "Per class, $/hour of the GPUs no pod holds (the warm pool's nodes and free room on busy ones), at "
                "the class's price (the Cost by team board has the rest).",
                "currencyUSD",
                (q.idle_dollars_per_hour_by_class(), "{{gpu_class}}"),
            ),
            bars(
                "ETAs kept",
                "Per class, the share of the ready times promised to endpoints (202 Accepted) that were kept "
                "over the dashboard's range: Ready by the promised time, against late or revised.",
                "percentunit",
                (q.etas_kept_share(), "{{gpu_class}}"),
            ),
            threshold(
                number(
                    "Endpoints late on their promise",
                    "Endpoints past their promised ready time and not ready yet (EndpointProvisioningSlow warns "
                    "after a grace period).",
                    "none",
                    q.endpoints_late(),
                    width=12,
                ),
                1,
            ),
        ],
    )


def cost() -> dashboard.Dashboard:
    return _board(
        "egs-cost",
        "EGS / Cost by team",
        "What each team (namespace) pays for the GPUs its pods hold, a shared GPU by the share of its memory a "
        "pod holds, and what the GPUs nobody holds cost, at each class's price per GPU-hour (the configured "
        "price, else the catalogue's). Teams plus idle add up to the fleet.",
        [
            number(
                "Fleet $/hour",
                "Every GPU on a Ready node, held or idle.",
                "currencyUSD",
                f"sum({q.dollars_per_hour_by_class()})",
            ),
            number(
                "Teams $/hour",
                "The GPUs the namespaces' pods hold.",
                "currencyUSD",
                f"sum({q.dollars_per_hour_by_namespace()})",
            ),
            number(
                "Idle $/hour",
                "The GPUs no pod holds: warm pools and free room on busy nodes.",
                "currencyUSD",
                f"sum({q.idle_dollars_per_hour_by_class()})",
            ),
            number(
                "Idle share",
                "Idle cost over the fleet's cost.",
                "percentunit",
                f"sum({q.idle_dollars_per_hour_by_class()}) / sum({q.dollars_per_hour_by_class()})",
            ),
            series(
                "$/hour by team",
                "Each namespace's GPUs (by the share held) times its classes' prices.",
                "currencyUSD",
                (q.dollars_per_hour_by_namespace(), "{{namespace}}"),
            ),
            series(
                "Idle $/hour by GPU class",
                "GPUs of the class no pod holds, times its price: what the warm pool and free room cost.",
                "currencyUSD",
                (q.idle_dollars_per_hour_by_class(), "{{gpu_class}}"),
            ),
            rows(
                "$ by team, last 24 hours and 7 days",
                "Each namespace's mean $/hour over the window times its hours.",
                "currencyUSD",
                (q.dollars_by_namespace_over("24h"), "{{namespace}} 24h"),
                (q.dollars_by_namespace_over("7d"), "{{namespace}} 7d"),
            ),
            rows(
                "$/hour by team and GPU class",
                "Which classes each namespace pays for, now.",
                "currencyUSD",
                (q.dollars_per_hour_by_namespace_and_class(), "{{namespace}} {{gpu_class}}"),
            ),
            series(
                "GPUs held by team",
                "GPUs each namespace's pods hold: a whole GPU counts 1, a quarter of one's memory 0.25.",
                "none",
                (q.gpus_by_namespace(), "{{namespace}}"),
            ),
            series(
                "$/hour by GPU class",
                "Every GPU of the class on a Ready node, held or idle, at its price.",
                "currencyUSD",
                (q.dollars_per_hour_by_class(), "{{gpu_class}}"),
            ),
            bars(
                "Price per GPU-hour by class",
                "The price the cost is computed at: the configured one, else the catalogue's list price.",
                "currencyUSD",
                (q.price_by_class(), "{{gpu_class}}"),
            ),
        ],
    )


def health() -> dashboard.Dashboard:
    return _board(
        "egs-health",
        "EGS / Exporter and controller health",
        "Scrape targets, the EGS exporter's self-metrics (collection time, snapshot age, read errors, lost "
        "GPUs, driver and kubelet), and the controller's reconcile loop.",
        [
            series(
                "Exporters up",
                "1 when Prometheus scrapes the target.",
                "none",
                (q.exporters_up(), "{{job}} {{instance}}"),
            ),
            series(
                "GPUs down",
                "GPUs (or instances) the exporter lost this cycle.",
                "none",
                (q.exporter_gpus_down(), "{{Hostname}}"),
            ),
            series(
                "Collection cycle",
                "Time one cycle takes to read every device.",
                "s",
                (q.exporter_collect_seconds(), "{{Hostname}}"),
            ),
            series(
                "Snapshot age", "Age of the snapshot a scrape served.", "s", (q.exporter_snapshot_age(), "{{Hostname}}")
            ),
            series(
                "Read errors",
                "Reads that gave no value, by reason.",
                "ops",
                (q.exporter_read_errors(), "{{Hostname}} {{reason}}"),
            ),
            series(
                "Driver and kubelet",
                "1 when the GPU driver initialised / the kubelet pod-resources socket answered.",
                "none",
                (q.exporter_driver_up(), "{{Hostname}} driver"),
                (q.exporter_pod_attribution_up(), "{{Hostname}} kubelet"),
            ),
            threshold(
                number(
                    "Since last reconcile",
                    "Controller: time since its last reconcile loop finished; red once AutoscalerNotReconciling warns.",
                    "s",
                    q.controller_seconds_since_reconcile(),
                    width=12,
                ),
                RULES.reconcile_stale_seconds,
            ),
            series(
                "Reconcile errors",
                "Controller: failed reconcile loops per second, by reason.",
                "ops",
                (q.controller_reconcile_errors(), "{{reason}}"),
            ),
        ],
    )


BOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "egs-fleet": fleet,
    "egs-models": models,
    "egs-warm-pools": warm_pools,
    "egs-cost": cost,
    "egs-health": health,
}
"""Dashboard uid -> its builder; each renders to `<uid>.json`."""
