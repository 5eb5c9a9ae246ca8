"""The import contracts of pyproject.toml (`[tool.importlinter]`) catch the imports they forbid.

`make lint` runs `lint-imports` on the tree as it is; these tests run it on a copy of the tree with
one import added, and check that the contract meant to catch it breaks (and names that import), and
that the imports the layout allows (an adapter importing its library, the controller its adapters,
a dashboard the metric names, the local play the product) keep every contract. New modules are
among the additions, because the rules must cover a core module the day it is written.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("egs", "localplay", "common", "exporter", "scheduler", "autoscaler", "alerts", "dashboards")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# contract id -> the file that gains an import, the import, and the chain the report must show
FORBIDDEN = [
    ("cores-import-no-outside-library", "scheduler/placement.py", "import pynvml", "scheduler.placement -> pynvml"),
    ("cores-import-no-outside-library", "alerts/rules.py", "import grpc", "alerts.rules -> grpc"),
    (
        "cores-import-no-outside-library",
        "autoscaler/forecast_x.py",
        "import kubernetes",
        "autoscaler.forecast_x -> kubernetes",
    ),
    (
        "cores-import-no-outside-library",
        "autoscaler/pool_x.py",
        "import exporter.podresources",
        "autoscaler.pool_x -> exporter.podresources",
    ),
    (
        "cores-import-no-outside-library",
        "autoscaler/controller.py",
        "import fastapi",
        "autoscaler.controller -> fastapi",
    ),
    (
        "autoscaler-core-imports-no-adapter",
        "autoscaler/decide_x.py",
        "import autoscaler.adapters.kube",
        "autoscaler.decide_x -> autoscaler.adapters.kube",
    ),
    (
        "autoscaler-core-imports-no-adapter",
        "autoscaler/decide_x.py",
        "import autoscaler.controller",
        "autoscaler.decide_x -> autoscaler.controller",
    ),
    ("no-component-imports-egs", "scheduler/plan.py", "import egs.plan_cli", "scheduler.plan -> egs.plan_cli"),
    ("no-component-imports-egs", "exporter/fields.py", "from egs import cli", "exporter.fields -> egs.cli"),
    (
        "no-product-module-imports-localplay",
        "autoscaler/controller.py",
        "import localplay.kube_standin",
        "autoscaler.controller -> localplay.kube_standin",
    ),
    (
        "no-product-module-imports-localplay",
        "egs/cli.py",
        "from localplay import localstack",
        "egs.cli -> localplay.localstack",
    ),
    (
        "no-product-module-imports-localplay",
        "exporter/fields.py",
        "import localplay.dcgm_standin",
        "exporter.fields -> localplay.dcgm_standin",
    ),
    ("common-imports-no-component", "common/errors.py", "import scheduler.plan", "common.errors -> scheduler.plan"),
    (
        "exporter-imports-no-component",
        "exporter/collector.py",
        "import scheduler.plan",
        "exporter.collector -> scheduler.plan",
    ),
    ("exporter-imports-no-component", "exporter/fleet.py", "import alerts.config", "exporter.fleet -> alerts.config"),
    (
        "scheduler-imports-no-autoscaler",
        "scheduler/plan.py",
        "import autoscaler.metrics",
        "scheduler.plan -> autoscaler.metrics",
    ),
    (
        "dashboards-read-names-only",
        "dashboards/fleet_x.py",
        "import autoscaler.forecast_x",
        "dashboards.fleet_x -> autoscaler.forecast_x",
    ),
    (
        "autoscaler-metrics-stand-alone",
        "autoscaler/metrics.py",
        "import autoscaler.forecast_x",
        "autoscaler.metrics -> autoscaler.forecast_x",
    ),
]
# What the layout allows: adapters import their libraries, the controller its adapters, dashboards
# the metric names, a core module numpy and the scheduler.
ALLOWED = {
    "autoscaler/adapters/__init__.py": "",
    "autoscaler/adapters/kube.py": "import kubernetes\nimport fastapi\nimport prometheus_api_client",
    "autoscaler/controller.py": "import autoscaler.adapters.kube\nimport autoscaler.forecast_x",
    "autoscaler/forecast_x.py": "import numpy\nimport scheduler.plan\nimport autoscaler.metrics",
    "dashboards/fleet_x.py": "import autoscaler.metrics\nimport alerts.config\nimport exporter.fields",
    "egs/controller_cli.py": "import autoscaler.controller",
    "localplay/kube_standin.py": "import autoscaler.controller\nimport egs.cli",
}


def tree_with(tmp_path: Path, additions: dict[str, str]) -> Path:
    """A copy of the packages and pyproject.toml, each file in `additions` created or appended to."""
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    for name, text in additions.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        with path.open("a") as f:
            f.write(f"\n{text}\n")
    return tmp_path


def lint_imports(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_IMPORTS), *args], cwd=tree, capture_output=True, text=True)


@pytest.mark.parametrize(("contract", "file", "line", "chain"), FORBIDDEN)
def test_a_forbidden_import_breaks_its_contract(
    tmp_path: Path, contract: str, file: str, line: str, chain: str
) -> None:
    tree = tree_with(tmp_path, {**ALLOWED, file: line})
    result = lint_imports(tree, "--contract", contract)
    assert result.returncode == 1, result.stdout
    assert "BROKEN" in result.stdout and chain in result.stdout


def test_the_imports_the_layout_allows_keep_every_contract(tmp_path: Path) -> None:
    result = lint_imports(tree_with(tmp_path, ALLOWED))
    assert result.returncode == 0, result.stdout
    assert "0 broken" in result.stdout


def test_every_directory_of_modules_is_a_package_so_the_contracts_see_its_modules() -> None:
    # lint-imports (grimp) leaves out a directory without __init__.py: its imports would go unchecked
    missing = [
        str(d.relative_to(REPO))
        for package in PACKAGES
        for d in [REPO / package, *(REPO / package).rglob("*")]
        if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py")) and not (d / "__init__.py").exists()
    ]
    assert missing == []
