"""The rules file: generated from alerts/rules.py and current, valid for promtool, unit-tested, and
every alert named, annotated and linked to a runbook section that exists."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest

from alerts.rules import render, rule_groups
from exporter.derived import derive
from tests.conftest import REPO

ALERTS = [r for g in rule_groups()["groups"] for r in g["rules"] if "alert" in r]


def test_the_checked_in_rules_file_is_the_generated_one() -> None:
    assert (REPO / "alerts" / "egs.rules.yaml").read_text() == render(), (
        "run: python -m alerts.rules > alerts/egs.rules.yaml"
    )


def test_promtool_checks_the_rules_clean() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", "alerts/egs.rules.yaml"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run(
        ["promtool", "test", "rules", "alerts/tests/egs-rules-test.yaml"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_recording_rule_and_alert_has_a_promtool_unit_test() -> None:
    tests = (REPO / "alerts" / "tests" / "egs-rules-test.yaml").read_text()
    tested = set(re.findall(r"expr: ([\w:]+)", tests)) | set(re.findall(r"alertname: (\w+)", tests))
    defined = {r.get("record") or r["alert"] for g in rule_groups()["groups"] for r in g["rules"]}
    assert defined - tested == set()


@pytest.mark.parametrize("alert", ALERTS, ids=[a["alert"] for a in ALERTS])
def test_every_alert_has_severity_annotations_and_a_runbook_section(alert: dict[str, Any]) -> None:
    name = str(alert["alert"])
    assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", name)
    assert alert["labels"] == {"severity": alert["labels"]["severity"]}
    assert alert["labels"]["severity"] in {"page", "warning", "info"}
    annotations = alert["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert annotations["summary"].endswith(".") and "{{" not in annotations["summary"]
    anchor = annotations["runbook_url"].rsplit("#", 1)[1]
    assert anchor == f"alert-name-{name.lower()}"
    assert f'<a id="{anchor}"></a>' in (REPO / "alerts" / "runbook.md").read_text()


def test_vram_pages_only_alert_on_vram_saturation() -> None:
    pages = {a["alert"] for a in ALERTS if a["labels"]["severity"] == "page"}
    assert pages == {"GPUVRAMSaturated", "GPULost"}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # 30% compute, 96% VRAM: saturated by memory.
        (
            {
                "DCGM_FI_DEV_FB_USED": 76800,
                "DCGM_FI_DEV_FB_FREE": 2700,
                "DCGM_FI_DEV_FB_RESERVED": 500,
                "DCGM_FI_DEV_MEM_COPY_UTIL": 30,
            },
            (0.96, 0.96),
        ),
        # Memory bandwidth beyond VRAM: saturation follows bandwidth.
        ({"DCGM_FI_DEV_FB_USED": 20000, "DCGM_FI_DEV_FB_FREE": 80000, "DCGM_FI_DEV_MEM_COPY_UTIL": 90}, (0.2, 0.9)),
        # AMD: no FB_RESERVED; a MIG instance: no MEM_COPY_UTIL, DRAM_ACTIVE instead.
        ({"DCGM_FI_DEV_FB_USED": 50, "DCGM_FI_DEV_FB_FREE": 50}, (0.5, 0.5)),
        ({"DCGM_FI_DEV_FB_USED": 10, "DCGM_FI_DEV_FB_FREE": 90, "DCGM_FI_PROF_DRAM_ACTIVE": 0.7}, (0.1, 0.7)),
    ],
)
def test_derived_ratios(values: dict[str, float], expected: tuple[float, float]) -> None:
    ratios = derive(values)
    assert (ratios["egs_gpu_vram_used_ratio"], ratios["egs_gpu_saturation_ratio"]) == pytest.approx(expected)


def test_no_ratio_is_made_up_without_its_inputs() -> None:
    assert derive({"DCGM_FI_DEV_FB_USED": 10}) == {}
    assert derive({"DCGM_FI_DEV_FB_USED": 0, "DCGM_FI_DEV_FB_FREE": 0}) == {}
