"""`egs render` writes the chart's generated files; `egs render --check` fails when one is stale."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from egs.render_cli import CHART, generated_files
from tests.conftest import REPO


def egs(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "egs.cli", *args], cwd=cwd, capture_output=True, text=True)


def test_the_checked_in_generated_files_are_current() -> None:
    result = egs("render", "--check")
    assert result.returncode == 0, result.stderr


def test_check_names_every_stale_or_missing_file_and_writes_nothing(tmp_path: Path) -> None:
    shutil.copytree(REPO / CHART, tmp_path / CHART)
    (tmp_path / CHART / "dashboards" / "egs-cost.json").write_text("{}\n")
    (tmp_path / CHART / "rules" / "dcgm-exporter.rules.yaml").unlink()
    result = egs("render", "--check", "--root", str(tmp_path))
    assert result.returncode == 5, "a failed check, not the exit code of a bug (egs --help)"
    assert "out of date: helm/egs/dashboards/egs-cost.json" in result.stderr
    assert "out of date: helm/egs/rules/dcgm-exporter.rules.yaml" in result.stderr
    assert "out of date: alerts/egs.rules.yaml" in result.stderr  # not copied here: missing
    assert (tmp_path / CHART / "dashboards" / "egs-cost.json").read_text() == "{}\n"


def test_render_writes_what_check_then_accepts(tmp_path: Path) -> None:
    shutil.copytree(REPO / CHART, tmp_path / CHART)
    (tmp_path / CHART / "dashboards" / "egs-fleet.json").write_text("{}\n")
    assert egs("render", "--root", str(tmp_path)).returncode == 0
    assert egs("render", "--check", "--root", str(tmp_path)).returncode == 0
    for path, text in generated_files().items():
        assert (tmp_path / path).read_text() == text


def test_render_outside_a_checkout_says_where_it_looked(tmp_path: Path) -> None:
    result = egs("render", "--check", cwd=tmp_path)
    assert result.returncode == 2
    assert "helm/egs/Chart.yaml not found" in result.stderr
