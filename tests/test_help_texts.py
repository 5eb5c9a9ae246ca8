"""What `--help` says about the product matches the code it describes.

Covers two claims a newcomer acts on: which `egs plan` engine the controller uses, and what the `egs`
warm-pool policy of `egs simulate` reads. Help texts' formatting is tests/test_cli_options.py's.
"""

from __future__ import annotations

import re

import pytest

from autoscaler.decide.settings import Settings
from egs.cli import main


def _help(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_plan_help_names_the_engine_the_controller_really_uses(capsys: pytest.CaptureFixture[str]) -> None:
    said = re.findall(r"controller[^.;]* use (\w+)|(\w+): [^;]*\(the controller's engine\)", _help(capsys, "plan"))
    assert said, "the help says which engine the controller uses"
    assert {a or b for a, b in said} == {Settings().engine}


def test_simulate_help_does_not_say_the_egs_policy_reads_a_forecast(capsys: pytest.CaptureFixture[str]) -> None:
    egs_policy = re.search(r"--policy POLICY egs \((.*?)\), reactive", _help(capsys, "simulate"))
    assert egs_policy, "the help describes the egs policy"
    assert "forecast" not in egs_policy.group(1)  # autoscaler/pool.py: a function of the history alone
