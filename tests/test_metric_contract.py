"""The metric contract: every metric a rule, an alert or a dashboard reads is written by someone.

Writers: the exporter (its rendered exposition, so nothing is taken on trust), the recording rules,
the autoscaler's series catalogue, and the outside components named in EXTERNAL. Readers: every
expression in alerts/egs.rules.yaml and every query in the generated dashboards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from alerts.promql import metric_names
from autoscaler.metrics import NAMES as AUTOSCALER_NAMES
from exporter.attribution import DeviceAssignment, PodRef
from exporter.backends.sim import SimBackend
from exporter.collector import Collector
from exporter.exposition import age_line
from exporter.fleet import load_fleet
from tests.conftest import MIXED_FLEET, REPO

RULES = REPO / "alerts" / "egs.rules.yaml"
EXTERNAL = {
    "up": "Prometheus, for every scrape target",
    "vllm:request_success_total": "vLLM",
    "vllm:num_requests_waiting": "vLLM",
    "vllm:num_requests_running": "vLLM",
    "vllm:kv_cache_usage_perc": "vLLM (>= 0.10)",
    "vllm:gpu_cache_usage_perc": "vLLM (older name of kv_cache_usage_perc)",
}


def exporter_names() -> set[str]:
    names: set[str] = set()
    for node in load_fleet(MIXED_FLEET).nodes:
        backend = SimBackend(node)
        first = backend.open().gpus[0]
        pods = [DeviceAssignment("nvidia.com/gpu", first.uuid, PodRef("ns", "pod", "c"))]
        collector = Collector(backend, node.name, pods=lambda pods=pods: pods)  # type: ignore[misc]
        collector.collect()
        text = (collector.last.body + age_line(0.0)).decode()
        names |= {s.name for family in text_string_to_metric_families(text) for s in family.samples}
    return names


def rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def dashboard_queries() -> Iterator[tuple[str, str]]:
    for path in sorted((REPO / "dashboards").rglob("*.json")):
        board = json.loads(path.read_text())
        for panel in board.get("panels", []):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield f"{path.name}: {panel.get('title')}", target["expr"]
        for var in board.get("templating", {}).get("list", []):
            query = var.get("query")
            if var.get("type") == "query" and query:
                yield f"{path.name}: ${var['name']}", query["query"] if isinstance(query, dict) else query


def written() -> set[str]:
    recorded = {r["record"] for r in rules() if "record" in r}
    return exporter_names() | recorded | AUTOSCALER_NAMES | set(EXTERNAL)


def readers() -> Iterator[tuple[str, str]]:
    for rule in rules():
        yield rule.get("record") or rule["alert"], rule["expr"]
    yield from dashboard_queries()


def unwritten(reads: Iterator[tuple[str, str]], writes: set[str]) -> dict[str, set[str]]:
    missing = {}
    for reader, expr in reads:
        names = metric_names(expr) - writes
        if names:
            missing[reader] = names
    return missing


def test_every_metric_read_by_a_rule_alert_or_dashboard_is_written() -> None:
    assert unwritten(readers(), written()) == {}


def test_the_contract_check_catches_a_name_nobody_writes() -> None:
    reads = iter([("GPUVRAMSaturated", "gpu:vram_used:ratio > 0.95"), ("typo", "DCGM_FI_DEV_FB_USE > 0")])
    assert unwritten(reads, written()) == {"typo": {"DCGM_FI_DEV_FB_USE"}}


def test_the_exporter_writes_every_catalogue_field_and_its_own_series() -> None:
    names = exporter_names()
    assert {"DCGM_FI_DEV_FB_USED", "egs_gpu_vram_used_ratio", "egs_gpu_info", "egs_gpu_p2p_link"} <= names
    assert {"egs_exporter_read_errors_total", "egs_exporter_snapshot_age_seconds"} <= names
