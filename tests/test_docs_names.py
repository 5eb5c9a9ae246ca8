"""The names a newcomer looks for are the product's: alerts and dashboards, as the pages say them.

docs/concepts.md names every alert the rules define, under the severity the rules give it (the list had
lost the three controller alerts); install.md and the chart's NOTES.txt name the dashboards by their
titles in Grafana (both said "EGS / Cost" for "EGS / Cost by team").
"""

from __future__ import annotations

import json
import re

import yaml

from alerts.config import SOURCES
from tests.conftest import REPO


def _severities() -> dict[str, str]:
    found: dict[str, str] = {}
    for source in SOURCES:
        for group in yaml.safe_load((REPO / "alerts" / f"{source}.rules.yaml").read_text())["groups"]:
            found.update({r["alert"]: r["labels"]["severity"] for r in group["rules"] if "alert" in r})
    return found


def test_the_concepts_page_lists_every_alert_with_its_severity() -> None:
    text = " ".join((REPO / "docs" / "concepts.md").read_text().split())
    listed = re.search(r"- Alerts, each with .*?: (.*?) page \(`severity: page`\); (.*?) warn\.", text)
    assert listed, "the alert list in docs/concepts.md"
    paged, warned = (set(re.findall(r"`(\w+)`", part)) for part in listed.groups())
    severities = _severities()
    assert paged == {a for a, s in severities.items() if s == "page"}
    assert warned == {a for a, s in severities.items() if s == "warning"}


def test_install_and_the_chart_s_notes_name_every_dashboard_by_its_title() -> None:
    titles = {json.loads(f.read_text())["title"] for f in (REPO / "helm" / "egs" / "dashboards").glob("*.json")}
    for page in (REPO / "docs" / "install.md", REPO / "helm" / "egs" / "templates" / "NOTES.txt"):
        named = set(re.findall(r'"(EGS / [^"]+)"', " ".join(page.read_text().split())))
        assert named == titles, page.name
