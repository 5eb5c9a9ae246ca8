"""The `egs` command's own options, the same for every command: --version, `python -m egs`, --log-level
before or after the command, and help text free of stray format characters.

In-process where the parser alone answers (fast); one subprocess for `python -m egs`.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from egs.cli import COMMANDS, _command, _parser, main

STRAY_FORMAT = re.compile(r"%[%(]|%[sdfr]\b")
"""What argparse leaves when a help or description is %-formatted twice or not at all (`0.5%%`, `%(default)s`)."""


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert re.fullmatch(r"egs \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


def test_python_dash_m_egs_is_the_egs_command() -> None:
    done = subprocess.run([sys.executable, "-m", "egs", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("egs "), done.stderr


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        (["render", "--check"], "info"),
        (["--log-level", "error", "render", "--check"], "error"),
        (["render", "--check", "--log-level", "debug"], "debug"),
        (["render", "--log-level=warning", "--check"], "warning"),
        (["trace", "convert", "--servegen", "a.csv", "--model", "m", "-o", "b.csv", "--log-level", "debug"], "debug"),
    ],
)
def test_log_level_is_taken_before_or_after_the_command(argv: list[str], level: str) -> None:
    assert _parser(_command(argv)).parse_args(argv).log_level == level


def _help_texts() -> dict[str, str]:
    """`egs --help` and every command's and subcommand's help, as argparse prints them."""
    texts = {"egs": _parser().format_help()}
    for name in COMMANDS:
        todo = [(name, _subparsers(_parser(name))[name])]
        while todo:
            path, parser = todo.pop()
            texts[path] = parser.format_help()
            todo += [(f"{path} {sub}", p) for sub, p in _subparsers(parser).items()]
    return texts


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return {
        name: sub
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for name, sub in action.choices.items()
    }


def test_no_help_text_shows_a_stray_format_character() -> None:
    texts = _help_texts()
    assert set(COMMANDS) | {"egs", "trace convert"} <= set(texts)
    assert {path: STRAY_FORMAT.findall(text) for path, text in texts.items() if STRAY_FORMAT.search(text)} == {}


def test_every_command_s_help_offers_the_log_level() -> None:
    assert [path for path, text in _help_texts().items() if "--log-level" not in text] == []
