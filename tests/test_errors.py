"""The project's error types (`common.errors`) and how `egs` reports them.

Covers: an input error names its source once, whoever sets it; `egs` turns each expected error
into one line and its documented exit code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

import egs.plan_cli
from common.errors import EgsError, InputError, SetupError, TemporaryError, naming
from egs.cli import EXIT_CODES, main
from tests.conftest import REPO

EXAMPLES = REPO / "examples"
PLAN = [
    "plan",
    *("--fleet", str(EXAMPLES / "cluster-nodes.yaml")),
    *("--models", str(EXAMPLES / "models.yaml")),
    *("--requests", str(EXAMPLES / "requests.yaml")),
]


def test_naming_fills_in_the_source_of_an_input_error_that_has_none() -> None:
    with pytest.raises(InputError) as caught, naming("models.yaml"):
        raise InputError("models[0].name: required")
    assert str(caught.value) == "models.yaml: models[0].name: required"
    assert caught.value.message == "models[0].name: required"


def test_naming_keeps_the_source_an_inner_loader_already_gave() -> None:
    with pytest.raises(InputError) as caught, naming("--fleet"), naming("nodes.yaml"):
        raise InputError("not valid YAML", source="other.yaml")
    assert str(caught.value) == "other.yaml: not valid YAML"


def test_naming_leaves_other_errors_alone() -> None:
    with pytest.raises(KeyError), naming("x.yaml"):
        raise KeyError("a bug")


@pytest.mark.parametrize(
    ("error", "code"),
    [(InputError("bad field", source="f.yaml"), 2), (SetupError("no driver"), 3), (TemporaryError("busy"), 4)],
)
def test_an_expected_error_is_one_line_and_its_documented_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: EgsError, code: int
) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(egs.plan_cli, "schedule", fail)
    assert main(PLAN) == code == type(error).exit_code
    assert code in EXIT_CODES
    assert capsys.readouterr().err == f"egs: error: {error}\n"


def test_an_unexpected_exception_is_a_bug_and_propagates(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kwargs: object) -> None:
        raise ValueError("an off-by-one somewhere")

    monkeypatch.setattr(egs.plan_cli, "schedule", fail)
    with pytest.raises(ValueError, match="off-by-one"):
        main(PLAN)


def test_help_documents_every_exit_code() -> None:
    out = subprocess.run([sys.executable, "-m", "egs.cli", "--help"], capture_output=True, text=True).stdout
    for code, meaning in EXIT_CODES.items():
        assert f"{code}  {meaning}" in out


def test_a_reader_that_stops_early_ends_the_command_quietly_as_sigpipe_would() -> None:
    """`egs plan ... | head`: the reader closes the pipe before the plan is written. That is no bug, so no
    traceback and not exit 1, but 141 (128 + SIGPIPE), as a shell reports a command the signal ended."""
    proc = subprocess.Popen([sys.executable, "-m", "egs.cli", *PLAN], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command has started: its first write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 128 + signal.SIGPIPE, err
    assert err == ""
    assert 128 + signal.SIGPIPE in EXIT_CODES
