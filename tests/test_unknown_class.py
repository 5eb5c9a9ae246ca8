"""A GPU class the catalogue lacks is refused naming the classes it has, wherever a user can write one.

Covers `egs plan --price`, a request's `gpu_classes` and the controller's `gpu_classes`: a newcomer who
writes `H100` is shown `H100-80GB` instead of being left to read scheduler/data/gpus.yaml.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from egs.cli import main
from tests.conftest import REPO

EXAMPLES = REPO / "examples"
PLAN = ["plan", "--fleet", str(EXAMPLES / "cluster-nodes.yaml"), "--models", str(EXAMPLES / "models.yaml")]


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """What `egs ARGS` says on stderr, once it has exited 2 (bad input)."""
    assert main(list(args)) == 2
    return capsys.readouterr().err


def yaml_file(path: Path, content: object) -> str:
    path.write_text(yaml.safe_dump(content))
    return str(path)


def test_plan_price_for_an_unknown_class_names_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(capsys, *PLAN, "--requests", str(EXAMPLES / "requests.yaml"), "--price", "H100=2")
    assert "prices.H100: no GPU class 'H100' in the catalogue (known: " in err and "H100-80GB" in err


def test_a_request_for_an_unknown_class_names_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content = {"requests": [{"name": "a", "model": "llama-3.1-8b-instruct", "gpu_classes": ["L40"]}]}
    err = refused(capsys, *PLAN, "--requests", yaml_file(tmp_path / "requests.yaml", content))
    assert "gpu_classes[0]: no GPU class 'L40' in the catalogue (known: " in err and "L40S" in err


def test_the_controller_s_unknown_class_names_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content = {"models": str(EXAMPLES / "models.yaml"), "gpu_classes": {"MI300": {"gpus_per_node": 8}}}
    err = refused(capsys, "controller", "--config", yaml_file(tmp_path / "egs.yaml", content), "--once")
    assert "gpu_classes.MI300: no GPU class 'MI300' in the catalogue (known: " in err and "MI300X" in err
