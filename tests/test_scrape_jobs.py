"""The metric contract per install mode: what each mode's alerts, recording rules and dashboards read is
written by a job the chart scrapes in that mode, and every `job` they select is one it scrapes.

tests/test_metric_contract.py checks that every name read is written by something; this checks it per
mode of the chart, from what `helm template` renders: the jobs are the ServiceMonitors' and PodMonitor's
(a ServiceMonitor's `job` is the one its relabelling sets; the PodMonitor's vLLM pods), each job writes
what its process really writes (the exporter's and the controller's expositions, as in the metric
contract; dcgm-exporter's fields as the GPU Operator's counters file has them; the API's process
series; vLLM's names), Prometheus writes `up` for each, and the mode's PrometheusRule records the rest.
The readers are that PrometheusRule's rules and the dashboards the mode ships. Modes: the documented
values sets (default, beside the GPU Operator, helm/egs/ci/*, kind).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import promql_parser
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from alerts.promql import reads
from autoscaler.adapters.api import _process_series
from localplay.dcgm_standin import DCP_METRICS_INCLUDED
from tests.test_helm_chart import VALUE_SETS, of_kind
from tests.test_metric_contract import EXTERNAL, _board_queries, controller_names, exporter_names

MODES = ["default", "beside-the-gpu-operator", "kind-e2e", *(v for v in VALUE_SETS if v.startswith("ci/"))]
PROMETHEUS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
"""What Prometheus itself writes for every target."""


def api_names() -> set[str]:
    registry = _process_series()  # what a Services' exposition holds: the API's GET /metrics
    text = generate_latest(registry).decode()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def job_writes(component: str) -> set[str]:
    """The names the process behind a ServiceMonitor of `component` writes."""
    writers: dict[str, Callable[[], set[str]]] = {
        "exporter": exporter_names,
        "controller": controller_names,
        "api": api_names,
        "dcgm-exporter": lambda: set(DCP_METRICS_INCLUDED),
    }
    return writers[component]()


def scrape_jobs(values: str) -> dict[str, set[str]]:
    """job -> the names it writes, for every job the mode's monitors create."""
    jobs: dict[str, set[str]] = {}
    for monitor in of_kind(values, "ServiceMonitor"):
        component = monitor["metadata"]["labels"]["app.kubernetes.io/component"]
        (endpoint,) = monitor["spec"]["endpoints"]
        (job,) = [r["replacement"] for r in endpoint.get("relabelings", []) if r.get("targetLabel") == "job"]
        jobs[job] = job_writes(component) | PROMETHEUS
    for monitor in of_kind(values, "PodMonitor"):  # the vLLM servers: job <namespace>/<PodMonitor name>
        vllm = {name for name, writer in EXTERNAL.items() if writer.startswith("vLLM")}
        jobs[f"{monitor['metadata']['namespace']}/{monitor['metadata']['name']}"] = vllm | PROMETHEUS
    return jobs


def mode_readers(values: str) -> Iterator[tuple[str, str]]:
    """(reader, PromQL) for the mode's recording rules, alerts and dashboard queries."""
    for rule_object in of_kind(values, "PrometheusRule"):
        for group in rule_object["spec"]["groups"]:
            for rule in group["rules"]:
                yield rule.get("record") or rule["alert"], rule["expr"]
    for config_map in of_kind(values, "ConfigMap"):
        for name, text in config_map.get("data", {}).items():
            if name.endswith(".json"):
                yield from _board_queries(name, json.loads(text))


def recorded(values: str) -> set[str]:
    """What the mode's PrometheusRule writes: its recording rules' names, and Prometheus' ALERTS series
    for its alerts (GPUVRAMSaturated's hysteresis reads its own)."""
    rules = [r for o in of_kind(values, "PrometheusRule") for g in o["spec"]["groups"] for r in g["rules"]]
    alerts = {"ALERTS", "ALERTS_FOR_STATE"} if any("alert" in r for r in rules) else set()
    return {r["record"] for r in rules if "record" in r} | alerts


def job_matchers(expr: str) -> set[tuple[str, str]]:
    """(operator, value) of every `job` matcher in `expr`'s selectors."""
    found: set[tuple[str, str]] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector | promql_parser.MatrixSelector):
            selector = node.vector_selector if isinstance(node, promql_parser.MatrixSelector) else node
            for m in selector.matchers.matchers:
                if m.name == "job":
                    found.add(("=~" if m.op == promql_parser.MatchOp.Re else "=", m.value))

    promql_parser.walk(promql_parser.parse(re.sub(r"\$\{?__\w+\}?", "5m", expr)), visit)
    return found


def unscraped(values: str) -> dict[str, set[str]]:
    """Reader -> what it reads that no job of the mode writes and no rule of it records, or a `job` it
    selects that the mode does not scrape."""
    jobs = scrape_jobs(values)
    written = set().union(*jobs.values()) | recorded(values)
    missing: dict[str, set[str]] = {}
    for reader, expr in mode_readers(values):
        names = {r.text for r in reads(expr) if not any(r.matches(w) for w in written)}
        for op, value in job_matchers(expr):
            if not any((re.fullmatch(value, job) if op == "=~" else value == job) for job in jobs):
                names.add(f"job{op}{value!r}")
        if names:
            missing[reader] = names
    return missing


@pytest.mark.parametrize("values", MODES)
def test_every_series_each_mode_reads_is_written_by_a_job_it_scrapes(values: str) -> None:
    assert unscraped(values) == {}


def test_each_mode_scrapes_its_gpu_source_the_controller_and_the_api() -> None:
    assert set(scrape_jobs("default")) == {"egs-exporter", "egs-controller", "egs-api", "egs-system/egs-vllm"}
    assert set(scrape_jobs("beside-the-gpu-operator")) == {
        "dcgm-exporter",
        "egs-controller",
        "egs-api",
        "egs-system/egs-vllm",
    }


def test_a_mode_that_stops_scraping_a_job_fails_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = of_kind

    def without_the_controller_s_monitor(values: str, kind: str) -> list[dict[str, Any]]:
        found = rendered(values, kind)
        return [o for o in found if not (kind == "ServiceMonitor" and o["metadata"]["name"].endswith("-controller"))]

    monkeypatch.setitem(globals(), "of_kind", without_the_controller_s_monitor)
    missing = unscraped("default")
    assert "job='egs-controller'" in " ".join(missing["AutoscalerAbsent"])
    assert any("egs_autoscaler_leader" in names for names in missing.values())


def test_the_dashboards_leave_out_the_exporter_s_own_panels_where_it_does_not_run() -> None:
    def panels(values: str) -> set[str]:
        (health,) = [m for m in of_kind(values, "ConfigMap") if "egs-health.json" in m.get("data", {})]
        return {p["title"] for p in json.loads(health["data"]["egs-health.json"])["panels"]}

    assert {"GPUs down", "Snapshot age", "Exporters up", "Since last reconcile"} <= panels("default")
    beside = panels("beside-the-gpu-operator")
    assert "Snapshot age" not in beside and {"Exporters up", "Since last reconcile"} <= beside


def test_job_matchers_are_read_from_every_selector() -> None:
    expr = 'absent(up{job="egs-controller"} == 1) or rate(x{job=~"(nvidia-)?dcgm-exporter"}[5m])'
    assert job_matchers(expr) == {("=", "egs-controller"), ("=~", "(nvidia-)?dcgm-exporter")}
