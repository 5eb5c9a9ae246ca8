"""docs/concepts.md names every alert the rules define, under the severity the rules give it.

The list is the one a newcomer reads to know what pages and what only warns; it had lost the three
controller alerts (`AutoscalerAbsent`, `AutoscalerNoLeader`, `AutoscalerPrometheusUnreachable`).
"""

from __future__ import annotations

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
