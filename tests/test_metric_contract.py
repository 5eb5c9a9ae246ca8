"""The metric contract: every metric a rule, an alert or a dashboard reads is written by someone.

Writers, each taken from what it really writes: the exporter (its rendered exposition, parsed), the
controller (its exposition after a decision, parsed), the recording rules, and the outside
components named in EXTERNAL. A declaration is not a writer: a name whose writer is not built yet
goes on NOT_BUILT_YET, with the module expected to write it. That list is exact: the check fails
when a name on it gains a writer, when a name is read that nobody writes, and the day the expected
writer exists while the test does not read its series yet.

Readers: every expression in alerts/*.rules.yaml (one file per GPU source) and every query (panel
targets, query variables) of every Grafana dashboard JSON under dashboards/ and helm/, parsed as PromQL
(`alerts/promql.py`).
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from alerts.promql import reads
from autoscaler.controller import ControllerMetrics, Outcome
from autoscaler.cost import Holdings
from autoscaler.decide import Decision, EndpointDecision, Hold, Observation, PoolDecision
from autoscaler.forecast import Forecast
from exporter.attribution import DeviceAssignment, PodRef
from exporter.backends.sim import SimBackend
from exporter.collector import Collector
from exporter.exposition import age_line
from exporter.fleet import load_fleet
from tests.conftest import MIXED_FLEET, REPO

RULES = sorted((REPO / "alerts").glob("*.rules.yaml"))
DASHBOARD_DIRS = ("dashboards", "helm")
EXTERNAL = {
    "up": "Prometheus, for every scrape target",
    "ALERTS": "Prometheus, for every pending or firing alert (GPUVRAMSaturated's hysteresis reads its own)",
    "vllm:request_success_total": "vLLM",
    "vllm:num_requests_waiting": "vLLM",
    "vllm:num_requests_running": "vLLM",
    "vllm:kv_cache_usage_perc": "vLLM (>= 0.10)",
    "vllm:gpu_cache_usage_perc": "vLLM (older name of kv_cache_usage_perc)",
}
NOT_BUILT_YET: dict[str, str] = {
    # name -> the module expected to write it
}
# Grafana's templating functions around PromQL: label_values(<expr>, label) and query_result(<expr>)
GRAFANA_FUNCTION = re.compile(r"^\s*(?:label_values\((?P<expr>.+),\s*\w+\s*\)|query_result\((?P<query>.+)\))\s*$", re.S)
GRAFANA_NO_METRIC = re.compile(r"^\s*(?:label_values\(\s*\w+\s*\)|label_names\(\)|metrics\(.*\))\s*$", re.S)


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


def controller_names() -> set[str]:
    """What the controller's exposition holds after a decision with an endpoint waiting and a pool with
    a forecast, and a namespace holding a quarter of a GPU."""
    registry = CollectorRegistry()
    waiting = EndpointDecision("ns", "chat", "m", 1, 0, 1, 0, "fp8", "H100-80GB", 1.0, "Provisioning")
    pool = PoolDecision("H100-80GB", 0, 1, forecast=Forecast(1.0, "seasonal", 8.0, 12.0))
    decision = Decision((), {}, (waiting,), (pool,), (Hold("ns/chat", "a hold", "a hold"),))
    cost = Holdings({("ns", "H100-80GB"): 0.25}, {"H100-80GB": 8}, {"H100-80GB": 2.5})
    outcome = Outcome(True, 1, 0, ["temporary"], decision, Observation(nodes=(), endpoints=()), cost)
    ControllerMetrics(registry).record(outcome, 0.1, 1.0)
    text = generate_latest(registry).decode()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def rules() -> list[dict[str, Any]]:
    return [r for path in RULES for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]


def dashboard_queries(root: Path = REPO) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every query of every Grafana dashboard JSON under `root`'s DASHBOARD_DIRS."""
    for directory in DASHBOARD_DIRS:
        for path in sorted((root / directory).rglob("*.json")):
            board = json.loads(path.read_text())
            if isinstance(board, dict) and "panels" in board:
                yield from _board_queries(path.relative_to(root).as_posix(), board)


def _board_queries(name: str, board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    panels = list(board.get("panels", []))
    while panels:
        panel = panels.pop(0)
        panels.extend(panel.get("panels", []))  # a row's panels
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield f"{name}: {panel.get('title')}", target["expr"]
    for var in board.get("templating", {}).get("list", []):
        query = var.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        if var.get("type") != "query" or not query or GRAFANA_NO_METRIC.match(query):
            continue
        inner = GRAFANA_FUNCTION.match(query)
        yield f"{name}: ${var['name']}", (inner["expr"] or inner["query"]) if inner else query


def written() -> set[str]:
    recorded = {r["record"] for r in rules() if "record" in r}
    return exporter_names() | controller_names() | recorded | set(EXTERNAL)


def readers() -> Iterator[tuple[str, str]]:
    for rule in rules():
        yield rule.get("record") or rule["alert"], rule["expr"]
    yield from dashboard_queries()


def unwritten(reads_: Iterator[tuple[str, str]], writes: set[str]) -> dict[str, set[str]]:
    """Reader -> the names (or `__name__` patterns) it reads that nothing in `writes` writes."""
    missing = {}
    for reader, expr in reads_:
        names = {r.text for r in reads(expr) if not any(r.matches(w) for w in writes)}
        if names:
            missing[reader] = names
    return missing


def off_the_list(writes: set[str]) -> tuple[set[str], set[str]]:
    """(names read that nobody writes and NOT_BUILT_YET does not excuse, listed names that are
    written or no longer read)."""
    missing: set[str] = set().union(*unwritten(readers(), writes).values())
    return missing - set(NOT_BUILT_YET), set(NOT_BUILT_YET) - missing


def test_every_name_read_is_written_except_the_listed_ones_whose_writer_is_not_built_yet() -> None:
    assert off_the_list(written()) == (set(), set())


def test_the_list_fails_when_a_listed_name_gains_a_writer_or_a_read_name_loses_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with monkeypatch.context() as listed:
        listed.setitem(NOT_BUILT_YET, "egs_endpoint_ready", "autoscaler.controller")
        assert off_the_list(written()) == (set(), {"egs_endpoint_ready"})
    assert off_the_list(written() - {"DCGM_FI_DEV_FB_USED"}) == ({"DCGM_FI_DEV_FB_USED"}, set())


def test_a_name_waits_for_a_writer_only_until_that_writer_exists() -> None:
    built = {name: module for name, module in NOT_BUILT_YET.items() if importlib.util.find_spec(module)}
    assert built == {}, "these writers exist now: read their series in written() and take the names off NOT_BUILT_YET"


def test_the_contract_check_catches_a_name_nobody_writes() -> None:
    reads_ = iter(
        [
            ("GPUVRAMSaturated", "gpu:vram_used:ratio > 0.95"),
            ("typo", "DCGM_FI_DEV_FB_USE > 0"),
            ("by __name__", 'sum({__name__="DCGM_FI_DEV_FB_USE"})'),
            ("pattern", '{__name__=~"DCGM_FI_DEV_FB_(USED|FREE)"}'),
            ("bad pattern", '{__name__=~"DCGM_FI_DEV_FB_NOPE.*"}'),
        ]
    )
    assert unwritten(reads_, written()) == {
        "typo": {"DCGM_FI_DEV_FB_USE"},
        "by __name__": {"DCGM_FI_DEV_FB_USE"},
        "bad pattern": {"DCGM_FI_DEV_FB_NOPE.*"},
    }


def test_a_bad_name_in_a_dashboard_fails_the_contract(tmp_path: Path) -> None:
    board = {
        "title": "Fleet",
        "panels": [
            {"title": "VRAM", "targets": [{"expr": 'max(DCGM_FI_DEV_FB_USED{Hostname=~"$node"})'}]},
            {
                "type": "row",
                "title": "Saturation",
                "panels": [{"title": "Busy", "targets": [{"expr": "rate(egs_gpu_busy_typo[$__rate_interval])"}]}],
            },
        ],
        "templating": {
            "list": [
                {"name": "node", "type": "query", "query": {"query": "label_values(DCGM_FI_DEV_GPU_TMP, Hostname)"}},
                {"name": "class", "type": "query", "query": "label_values(gpu_class)"},
                {"name": "interval", "type": "interval", "query": "1m,5m"},
            ]
        },
    }
    (tmp_path / "helm" / "egs" / "dashboards").mkdir(parents=True)
    (tmp_path / "helm" / "egs" / "dashboards" / "fleet.json").write_text(json.dumps(board))
    assert unwritten(dashboard_queries(tmp_path), written()) == {
        "helm/egs/dashboards/fleet.json: Busy": {"egs_gpu_busy_typo"},
        "helm/egs/dashboards/fleet.json: $node": {"DCGM_FI_DEV_GPU_TMP"},
    }


def test_a_dashboard_query_that_is_not_promql_fails(tmp_path: Path) -> None:
    (tmp_path / "dashboards").mkdir()
    board = {"panels": [{"title": "x", "targets": [{"expr": "rate(DCGM_FI_DEV_FB_USED[5m)"}]}]}
    (tmp_path / "dashboards" / "x.json").write_text(json.dumps(board))
    with pytest.raises(ValueError):
        unwritten(dashboard_queries(tmp_path), written())


def test_the_exporter_writes_every_catalogue_field_and_its_own_series() -> None:
    names = exporter_names()
    assert {"DCGM_FI_DEV_FB_USED", "egs_gpu_vram_used_ratio", "egs_gpu_info", "egs_gpu_p2p_link"} <= names
    assert {"egs_exporter_read_errors_total", "egs_exporter_snapshot_age_seconds"} <= names
