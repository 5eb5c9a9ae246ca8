"""The rules files, one per GPU source: generated from alerts/rules.py and current, valid for promtool,
unit-tested on the input each source really writes, the same recorded names and alerts for both, and
every alert named, annotated and linked to a runbook section that exists."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.config import SOURCES, RulesConfig, Source
from alerts.promql import reads
from alerts.rules import VRAM_TOTAL, main, render, rule_groups
from autoscaler.metrics import NAMES as CONTROLLER_NAMES
from exporter.derived import derive
from tests.conftest import REPO

ALERTS = [r for g in rule_groups()["groups"] for r in g["rules"] if "alert" in r]
TESTS = REPO / "alerts" / "tests"
COMMON = ("common", "common-week")
"""The promtool tests of the rules that read no GPU exporter's series, run against every source's rules.
The week-long one has a file of its own, evaluated at its input's 5-minute step (every minute over 7.5
days took 20-40 s per source)."""


def rules_file(source: Source) -> Path:
    return REPO / "alerts" / f"{source}.rules.yaml"


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *map(str, args)], cwd=REPO, capture_output=True, text=True)


@pytest.mark.parametrize("source", SOURCES)
def test_the_checked_in_rules_file_is_the_generated_one(source: Source) -> None:
    assert rules_file(source).read_text() == render(RulesConfig(source=source)), (
        f"run: python -m alerts.rules --source {source} > alerts/{source}.rules.yaml"
    )


def test_the_command_prints_the_rules_of_the_source_asked_for(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--source", "dcgm-exporter"]) == 0
    assert capsys.readouterr().out == rules_file("dcgm-exporter").read_text()
    with pytest.raises(SystemExit):
        main(["--source", "nvml"])
    assert "invalid choice: 'nvml'" in capsys.readouterr().err


@pytest.mark.parametrize("source", SOURCES)
def test_promtool_checks_the_rules_clean(source: Source) -> None:
    result = promtool("check", "rules", rules_file(source))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("source", SOURCES)
def test_promtool_unit_tests_pass_on_what_the_source_writes(source: Source) -> None:
    result = promtool("test", "rules", TESTS / f"{source}-rules-test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("common", COMMON)
@pytest.mark.parametrize("source", SOURCES)
def test_the_rules_that_read_no_gpu_series_pass_the_same_tests_for_every_source(
    source: Source, common: str, tmp_path: Path
) -> None:
    tests = yaml.safe_load((TESTS / f"{common}-rules-test.yaml").read_text())
    tests["rule_files"] = [str(rules_file(source))]
    tests["group_eval_order"] = _group_names(source)
    test_file = tmp_path / f"{common}-rules-test.yaml"
    test_file.write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", test_file)
    assert result.returncode == 0, result.stdout + result.stderr


def _group_names(source: Source) -> list[str]:
    return [g["name"] for g in rule_groups(RulesConfig(source=source))["groups"]]


@pytest.mark.parametrize(
    ("test_file", "source"),
    [("egs", "egs"), ("dcgm-exporter", "dcgm-exporter"), *((common, "egs") for common in COMMON)],
)
def test_promtool_evaluates_the_groups_in_the_rules_file_s_order(test_file: str, source: Source) -> None:
    # promtool picks a group order of its own unless told: groups that read each other would then
    # see one another's results a step late on some runs and not on others.
    tests = yaml.safe_load((TESTS / f"{test_file}-rules-test.yaml").read_text())
    assert tests["group_eval_order"] == _group_names(source)


def _defined(source: Source) -> set[str]:
    return {
        r.get("record") or r["alert"] for g in rule_groups(RulesConfig(source=source))["groups"] for r in g["rules"]
    }


@pytest.mark.parametrize("source", SOURCES)
def test_every_recording_rule_and_alert_has_a_promtool_unit_test(source: Source) -> None:
    tests = "".join((TESTS / f"{name}-rules-test.yaml").read_text() for name in (source, *COMMON))
    tested = set(re.findall(r"expr: ([\w:]+)", tests)) | set(re.findall(r"alertname: (\w+)", tests))
    assert _defined(source) - tested == set()


def test_both_sources_record_the_same_names_and_raise_the_same_alerts() -> None:
    # The dcgm-exporter source records one input of its own: the VRAM total EGS's exporter computes itself.
    assert _defined("egs") == _defined("dcgm-exporter") - {VRAM_TOTAL}


def test_the_dcgm_exporter_rules_read_no_series_only_egs_writes() -> None:
    # The controller's series (cost per team's egs_gpu_class_* among them) are there whatever the source.
    exprs = [r["expr"] for g in rule_groups(RulesConfig(source="dcgm-exporter"))["groups"] for r in g["rules"]]
    read = {n.text for e in exprs for n in reads(e)}
    assert {n for n in read if n.startswith("egs_")} - CONTROLLER_NAMES == set()


def test_an_unknown_source_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="one of egs, dcgm-exporter, got 'dcgm'"):
        RulesConfig(source="dcgm")  # type: ignore[arg-type]


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


@pytest.mark.parametrize("source", SOURCES)
def test_the_demand_window_sets_every_vllm_rate(source: Source) -> None:
    """`egs demo` compresses time: each demand rate must follow its window, or endpoints flap there."""
    text = render(RulesConfig(source=source, demand_window="20s"))
    rates = re.findall(r"rate\(vllm:[a-z_]+\[(\w+)\]\)", text)
    assert len(rates) >= 3 and set(rates) == {"20s"}
    assert set(re.findall(r"rate\(vllm:[a-z_]+\[(\w+)\]\)", render(RulesConfig(source=source)))) == {"5m"}
