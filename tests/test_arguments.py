"""The numeric options' argparse types (`egs/arguments.py`): text, nan, inf and values past a bound are
refused with a sentence, and every command that takes such an option refuses them the same way."""

from __future__ import annotations

import argparse

import pytest

from egs.arguments import POSITIVE, number
from egs.cli import main


@pytest.mark.parametrize(
    ("text", "message"),
    [("soon", "must be a number, got 'soon'"), ("nan", "must be a finite number"), ("inf", "must be a finite"),
     ("0", "must be above 0, got 0"), ("-1", "must be above 0")],
)  # fmt: skip
def test_positive_refuses_what_is_not_a_finite_number_above_zero(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        POSITIVE(text)


def test_a_lower_bound_and_a_unit_are_said() -> None:
    days = number(at_least=1, unit="days")
    assert days("1") == 1.0 and days("2.5") == 2.5
    with pytest.raises(argparse.ArgumentTypeError, match=r"must be at least 1, got 0\.5"):
        days("0.5")
    with pytest.raises(argparse.ArgumentTypeError, match="must be a number of days, got 'x'"):
        days("x")


@pytest.mark.parametrize(
    "argv",
    [["controller", "--interval", "nan"], ["plan", "--time-limit", "inf"], ["api", "--capacity-ttl", "-1"],
     ["demo", "--minutes", "0"], ["simulate", "--train-days", "nan", "--score-days", "1"]],
)  # fmt: skip
def test_every_command_refuses_a_bad_number(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert f"argument {argv[1]}: must be" in capsys.readouterr().err
