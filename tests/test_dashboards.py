"""The dashboards: valid Grafana 11.6 models, and every panel's PromQL answered by a real Prometheus.

Grafana has no server package here, so a dashboard is checked by the typed SDK (each rendered JSON
parses back into grafana-foundation-sdk's model and re-encodes to the same JSON) and by running every
panel query and variable against a real Prometheus with the `egs` rules, scraping the sim fleet's real
exporters, a fleet server with pods on its GPUs, and a vLLM stand-in serving those pods.

The queries that read a series only the controller writes (`autoscaler/metrics.py`) are run in
tests/test_end_to_end.py instead, against the Prometheus that scrapes the real `egs controller` there
(CONTROLLER_PANELS); here they must be valid PromQL that returns nothing. The demand a day and a week
earlier cannot return series: a fresh Prometheus has no such history (the promtool tests check those
rules on a week of data).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from alerts.config import RulesConfig
from alerts.promql import reads
from alerts.rules import render as render_rules
from autoscaler.metrics import NAMES as CONTROLLER_NAMES
from dashboards.render import rendered
from exporter.attribution import PodRef
from exporter.fleet import DEFAULT_FLEET, Fleet, SimNode
from localplay.fleet_server import FleetServer
from localplay.localstack import Prometheus, free_port
from localplay.vllm_standin import Server, VllmStandIn
from tests.conftest import SimCluster

BOARDS = {name: json.loads(text) for name, text in rendered().items()}
VARIABLES = {"cluster", "node", "gpu_model", "model"}
NEEDS_HISTORY = ("_1d_ago:", "_1w_ago:")
SERVING_NODE = "sim-serving-0"
VLLM = [
    Server("llama-3-8b", "llm", "vllm-llama-0", rps=4.0, waiting=3, running=12, kv_cache=0.62),
    Server("qwen-2.5-72b", "llm", "vllm-qwen-0", rps=1.5, waiting=25, running=30, kv_cache=0.91),
]


@dataclass(frozen=True)
class Panel:
    board: str
    title: str
    expr: str

    def __str__(self) -> str:
        return f"{self.board}: {self.title}"


PANELS = [
    Panel(board, p["title"], t["expr"])
    for board, model in BOARDS.items()
    for p in model["panels"]
    for t in p.get("targets", [])
]


def _recorded_from_the_controller() -> set[str]:
    """The recorded names computed from the controller's series alone (cost per team's)."""
    groups = yaml.safe_load(render_rules(RulesConfig()))["groups"]
    rules = [r for g in groups for r in g["rules"] if "record" in r]
    return {r["record"] for r in rules if {n.text for n in reads(r["expr"])} <= CONTROLLER_NAMES}


CONTROLLER_WRITTEN = CONTROLLER_NAMES | _recorded_from_the_controller()


def _controller_only(expr: str) -> set[str]:
    return {r.text for r in reads(expr)} & CONTROLLER_WRITTEN


CONTROLLER_PANELS = [p for p in PANELS if _controller_only(p.expr)]
"""Checked against the real controller's series in tests/test_end_to_end.py."""


def expand(expr: str) -> str:
    """The query as Grafana sends it with every variable at "All" (and a range of an hour)."""
    for name in VARIABLES:
        expr = expr.replace(f"${name}", ".*")
    return expr.replace("$__range", "1h")


def _pods(node: str, gpu: int) -> tuple[PodRef, ...]:
    return (PodRef(VLLM[gpu].namespace, VLLM[gpu].pod, "vllm"),) if gpu < len(VLLM) else ()


@pytest.fixture(scope="module")
def prometheus(sim_cluster: SimCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Real exporters (sim fleet), a node whose GPUs hold the vLLM pods, the vLLM stand-in, the rules."""
    work = tmp_path_factory.mktemp("dashboards")
    serving = Fleet(nodes=(SimNode(name=SERVING_NODE, gpus=DEFAULT_FLEET.nodes[0].gpus),))
    fleet = FleetServer(("127.0.0.1", free_port()), serving, pods=_pods)
    fleet.serve_in_thread()
    vllm = VllmStandIn(VLLM)
    rules = work / "rules.yaml"
    rules.write_text(render_rules(RulesConfig(slow_interval="1s")))
    scrape = [
        {"job_name": "egs-exporter", "static_configs": [{"targets": list(sim_cluster.exporters.values())}]},
        *fleet.scrape_configs("egs-exporter-serving", "1s"),
        {"job_name": "vllm", "honor_labels": True, "static_configs": [{"targets": [vllm.address]}]},
    ]
    prom = Prometheus(work / "prometheus", [], interval="1s", rule_files=[rules], scrape_configs=scrape)
    try:
        prom.start()
        assert prom.wait_for("modelName:requests:rate5m > 0", timeout_s=60), "demand per GPU class never recorded"
        # Every node counted by the inventory rules, so that counts no longer move between the queries
        # of one test (the serving node's series can arrive an evaluation after the others').
        nodes = len(sim_cluster.exporters) + 1
        assert prom.wait_for(f"count(Hostname:gpus:count) == {nodes}", timeout_s=60), "a node's GPUs never counted"
        yield prom
    finally:
        prom.stop()
        vllm.close()
        fleet.close()


def test_there_are_the_five_dashboards_with_their_variables() -> None:
    assert set(BOARDS) == {f"egs-{n}.json" for n in ("fleet", "models", "warm-pools", "cost", "health")}
    for name, board in BOARDS.items():
        names = {v["name"] for v in board["templating"]["list"]}
        assert names == VARIABLES | {"datasource"}, name
        assert board["uid"] == name.removesuffix(".json")


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_each_dashboard_parses_back_into_the_typed_model_unchanged(name: str) -> None:
    again = json.loads(json.dumps(Dashboard.from_json(BOARDS[name]), cls=JSONEncoder))
    assert again == BOARDS[name]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_panel_says_what_it_shows_and_reads_the_chosen_prometheus(name: str) -> None:
    for panel in BOARDS[name]["panels"]:
        assert panel["title"] and panel["description"], panel
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
        assert panel["targets"], panel["title"]


@pytest.mark.parametrize("panel", PANELS, ids=str)
def test_every_panel_query_returns_series_from_the_sim_fleet(prometheus: Prometheus, panel: Panel) -> None:
    expr = expand(panel.expr)
    if panel in CONTROLLER_PANELS:
        # No controller runs in this stack: valid PromQL that returns nothing here (test_end_to_end.py
        # runs these against the real controller's series).
        assert prometheus.query(expr) == [], f"{panel}: controller series {_controller_only(expr)} written here"
    elif any(tag in expr for tag in NEEDS_HISTORY):
        assert prometheus.query(expr) == [], f"{panel}: a fresh Prometheus has no day-ago history"
    else:
        assert prometheus.wait_for(expr, timeout_s=30), f"{panel}: {panel.expr} returned nothing"


def test_only_the_history_panels_are_excused_and_the_controller_panels_are_the_controller_s() -> None:
    excused = [p for p in PANELS if any(t in p.expr for t in NEEDS_HISTORY)]
    assert {p.board for p in excused} == {"egs-models.json"}
    assert len(excused) <= 2
    assert {p.board for p in CONTROLLER_PANELS} == {
        "egs-models.json",
        "egs-warm-pools.json",
        "egs-cost.json",
        "egs-health.json",
    }


def _variable_query(variable: dict[str, Any]) -> tuple[str, str]:
    query = variable["query"]
    query = query["query"] if isinstance(query, dict) else query
    assert query.startswith("label_values(") and query.endswith(")"), query
    selector, _, label = query.removeprefix("label_values(").removesuffix(")").rpartition(",")
    return expand(selector.strip()), label.strip()


def test_every_variable_has_values_except_cluster(prometheus: Prometheus) -> None:
    for name, board in BOARDS.items():
        for variable in board["templating"]["list"]:
            if variable["type"] != "query":
                continue
            selector, label = _variable_query(variable)
            values = prometheus.label_values(label, selector)
            if variable["name"] == "cluster":
                # `cluster` is an external label Thanos, Mimir or a relabelling adds; a single
                # Prometheus has none, and "All" (.*) then matches every series.
                assert values == [], name
            else:
                assert values, f"{name}: ${variable['name']} has no values"


def test_the_variables_offer_the_fleet_s_nodes_classes_and_models(prometheus: Prometheus) -> None:
    board = BOARDS["egs-fleet.json"]
    by_name = {v["name"]: _variable_query(v) for v in board["templating"]["list"] if v["type"] == "query"}
    assert SERVING_NODE in prometheus.label_values(by_name["node"][1], by_name["node"][0])
    assert "NVIDIA H100 80GB HBM3" in prometheus.label_values(by_name["gpu_model"][1], by_name["gpu_model"][0])
    assert set(prometheus.label_values(by_name["model"][1], by_name["model"][0])) == {s.model for s in VLLM}


ALERT_THRESHOLD = re.compile(r"^(?:time\(\) - (?:max\()?)?(?P<name>[\w:]+)\)?(?:\{[^}]*\})? > (?P<value>[\d.]+)")
"""An alert of the form `NAME > N` (or `time() - NAME > N`): a panel showing NAME must show N."""


def _alert_thresholds() -> dict[str, float]:
    groups = yaml.safe_load(render_rules(RulesConfig()))["groups"]
    found = {}
    for rule in (r for g in groups for r in g["rules"] if "alert" in r):
        match = ALERT_THRESHOLD.match(rule["expr"])
        if match:
            found[match["name"]] = float(match["value"])
    return found


def test_every_panel_showing_what_an_alert_compares_draws_the_alert_s_threshold() -> None:
    thresholds = _alert_thresholds()
    assert thresholds["gpu:vram_used:ratio"] == RulesConfig().vram_saturated_ratio == 0.95
    checked = []
    for name, board in BOARDS.items():
        for panel in board["panels"]:
            # the series as it is, or the time since / until it (not a difference of two series)
            shown = {re.sub(r"\{[^}]*\}|\s", "", t["expr"]) for t in panel["targets"]}
            for series, value in thresholds.items():
                if not shown & {series, f"time()-max({series})", f"{series}-time()"}:
                    continue
                defaults = panel["fieldConfig"]["defaults"]
                steps = {abs(s["value"]) for s in defaults.get("thresholds", {}).get("steps", []) if s["value"]}
                assert value in steps, f"{name}: {panel['title']} shows {series} without its alert's {value:g}"
                if panel["type"] == "timeseries":
                    assert defaults["custom"]["thresholdsStyle"]["mode"] in ("line", "dashed"), panel["title"]
                checked.append(panel["title"])
    assert {"VRAM used per GPU", "Queue", "Since last reconcile", "Endpoints: seconds to promised ready time"} <= set(
        checked
    )


def test_a_gpu_class_is_a_catalogue_class_and_a_gpu_model_dcgm_s_name_on_every_board() -> None:
    # One vocabulary: panels grouped by dcgm's modelName say "GPU model", those by gpu_class say "class",
    # so that the forecast (per class) and capacity (per class) read alike.
    for name, board in BOARDS.items():
        for panel in board["panels"]:
            legends = " ".join(t.get("legendFormat", "") for t in panel["targets"])
            words = f"{panel['title']} {panel['description']}".lower()
            if "{{modelName}}" in legends:
                assert "class" not in words, f"{name}: {panel['title']} groups by GPU model but says class"
            if "{{gpu_class}}" in legends:
                assert "gpu model" not in words, f"{name}: {panel['title']} groups by class but says GPU model"
        for var in board["templating"]["list"]:
            if var["name"] == "gpu_model":
                assert var["label"] == "GPU model" and "modelName" in str(var["query"])
    # the forecast and the capacity it is read against speak of the same classes
    first = {p["title"]: p["targets"][0]["legendFormat"] for p in BOARDS["egs-models.json"]["panels"]}
    assert first["Capacity by GPU class"].startswith("{{gpu_class}}")
    assert first["Forecast GPU need by class"].startswith("{{gpu_class}}")
