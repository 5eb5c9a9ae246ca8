"""Every benchmark's `--help` explains each of its options: a reader reruns a figure from the command line
alone (churn's `--endpoints`, `--settle` and `--seed`, and others, had a bare name)."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "benchmarks").glob("*.py"))
BENCHMARKS.remove("__init__")


class Parsed(Exception):
    """Raised where a benchmark's `main` parses its arguments, with the parser it built."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_option_of_a_benchmark_has_help(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def parse(parser: argparse.ArgumentParser, *_: Any, **__: Any) -> None:
        raise Parsed(parser)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse)
    with pytest.raises(Parsed) as parsed:
        importlib.import_module(f"benchmarks.{name}").main()
    parser = parsed.value.parser
    bare = [a.option_strings for a in parser._actions if not a.help]
    assert bare == [], f"benchmarks/{name}.py: options without help"
