"""NVIDIA's own dcgm-exporter dashboard works unchanged on EGS's exporter.

Every panel query and template variable of `shared/data/dcgm-exporter-dashboard`, with `$instance`
and `$gpu` set to `.*`, must return series from a real Prometheus scraping the sim exporters.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.conftest import SimCluster, found_shared_data, shared_data

DASHBOARD = "dcgm-exporter-dashboard/dcgm-exporter-dashboard.json"


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(shared_data(DASHBOARD).read_text())
    return data


def _panel_queries() -> list[tuple[str, str]]:
    """The panels' queries; none when the dashboard is missing, which the variables' test then reports (a
    failure or skip here, at collection, would stop every other test of the run from running)."""
    if found_shared_data(DASHBOARD) is None:
        return []
    return [(p["title"], t["expr"]) for p in _dashboard()["panels"] for t in p.get("targets", []) if t.get("expr")]


def _expand(expr: str) -> str:
    return expr.replace("$instance", ".*").replace("$gpu", ".*")


@pytest.mark.parametrize(("title", "expr"), _panel_queries())
def test_every_dcgm_dashboard_panel_returns_series(sim_cluster: SimCluster, title: str, expr: str) -> None:
    assert sim_cluster.prometheus.wait_for(_expand(expr)), f"panel {title!r}: {expr} returned nothing"


def test_every_dcgm_dashboard_variable_has_values(sim_cluster: SimCluster) -> None:
    variables = [v for v in _dashboard()["templating"]["list"] if v.get("type") == "query"]
    assert variables
    for v in variables:
        query = v.get("definition") or v["query"]
        query = query["query"] if isinstance(query, dict) else query
        match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query.strip())
        assert match, f"unexpected variable query {query!r}"
        metric, label = match.groups()
        assert sim_cluster.prometheus.label_values(label, metric), f"variable {v['name']} has no values"
