"""Start-up: `egs --help` and each command's `--help` load only what that command needs.

`egs --help` lists the commands from `egs.cli.COMMANDS` alone, so it imports none of their modules;
a command's `--help` imports its own module, whose parser must not pull in scipy, numpy, the
Kubernetes client or FastAPI (they cost seconds and ~100 MB; `egs --help` took 1.2-1.6 s on a quiet
machine when it did). The modules are checked in a fresh interpreter, not timed:
`benchmarks/startup.py` measures the time and RSS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any

import pytest

from egs.cli import COMMANDS, _parser

HEAVY = ("scipy", "numpy", "kubernetes", "fastapi", "uvicorn", "pydantic", "prometheus_client", "jsonschema",
         "importlib.metadata")  # fmt: skip
"""importlib.metadata: `--version`'s lookup of the installed packages costs ~100 ms, so only `--version` does it."""


def loaded_by(argv: list[str]) -> list[str]:
    code = (
        "import contextlib, io, json, sys\n"
        "from egs.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        f"    main({argv!r})\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded: list[str] = json.loads(run.stdout)
    return loaded


@pytest.mark.parametrize(
    "argv",
    [["--help"], [], ["no-such-command"], ["exporter", "--help"], ["api", "--help"], ["controller", "--help"]],
    ids=" ".join,
)
def test_help_imports_no_heavy_library(argv: list[str]) -> None:
    assert loaded_by(argv) == [], f"egs {' '.join(argv)} imports {loaded_by(argv)}"


def command_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    found: argparse.ArgumentParser = sub.choices[name]
    return found


def test_every_command_is_listed_with_its_help_and_registered_by_its_module(capsys: Any) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["--help"])
    listing = " ".join(capsys.readouterr().out.split())
    for name, (_, help_) in COMMANDS.items():
        assert f"{name} {help_}" in listing
        # listed (-h and the global --log-level only), its module not loaded
        assert {a.dest for a in command_parser(_parser(), name)._actions} == {"help", "log_level"}
        assert len(command_parser(_parser(name), name)._actions) > 2, f"{name}'s module registers its options"
