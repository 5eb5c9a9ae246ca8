"""The docs are true to the code: every `egs` command line they show parses with the real parser and names
files that exist, the first `egs plan` example runs, and every relative link resolves.

A line of `...` stands for the arguments of the same command shown above it (`egs plan ... -o json`);
`[--opt X]` is an optional part, checked as given. Paths outside the repository (`../shared/data`) and
files an earlier example writes are parsed, not looked for. Commands for other tools (helm, make) are
exercised by their own tests (tests/test_helm_chart.py, the Makefile in CI).
"""

from __future__ import annotations

import json
import re
import shlex

import pytest

from egs.cli import _command, _parser, main
from tests.conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"```(?:sh|bash|console|text)?\n(.*?)```", re.S)
LINK = re.compile(r"\]\((?!https?:|#|mailto:)([^)#\s]+)(?:#[^)]*)?\)")


def documented_commands() -> list[tuple[str, list[str]]]:
    """(page, argv after `egs`) for every `egs` line of the pages' code blocks, `...` filled in."""
    found: list[tuple[str, list[str]]] = []
    full: dict[str, list[str]] = {}
    for page in PAGES:
        for block in BLOCK.findall(page.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.split(r"\s#\s", line.strip())[0]
                if not line.startswith("egs ") or "|" in line:  # `a|b` is a synopsis of choices, not a command
                    continue
                argv = shlex.split(line.replace("[", " ").replace("]", " "))[1:]
                command = " ".join(a for a in argv[:2] if not a.startswith("-") and a != "...")
                if "..." in argv:
                    i = argv.index("...")
                    argv = argv[:i] + full.get(command, [])[i:] + argv[i + 1 :]
                else:
                    full[command] = argv
                found.append((page.name, argv))
    return found


COMMANDS = documented_commands()


def test_the_docs_show_the_commands_a_newcomer_runs() -> None:
    shown = {tuple(argv[:2]) for _, argv in COMMANDS}
    assert {("plan", "--fleet"), ("render",), ("render", "--check"), ("trace", "convert")} <= shown | {
        tuple(argv[:1]) for _, argv in COMMANDS
    }


@pytest.mark.parametrize(("page", "argv"), COMMANDS, ids=[" ".join(a) for _, a in COMMANDS])
def test_every_documented_egs_command_parses_and_names_files_that_exist(page: str, argv: list[str]) -> None:
    _parser(_command(argv)).parse_args(argv)  # exits 2 on an option or value the command does not take
    for arg in argv:
        if re.match(r"^(examples|helm|alerts|autoscaler|scheduler|exporter)/\S+\.\w+$", arg):
            assert (REPO / arg).exists(), f"{page}: egs {' '.join(argv)}: {arg} does not exist"


def test_the_first_plan_example_runs_as_documented(capsys: pytest.CaptureFixture[str]) -> None:
    plan = next(argv for _, argv in COMMANDS if argv[:1] == ["plan"] and "-o" not in argv)
    assert main([*plan, "-o", "json", "--engine", "online"]) == 0
    assert json.loads(capsys.readouterr().out)["placements"]


def test_every_relative_link_in_the_docs_resolves() -> None:
    broken = [
        f"{page.relative_to(REPO)}: {target}"
        for page in PAGES
        for target in LINK.findall(page.read_text())
        if not (page.parent / target).exists()
    ]
    assert broken == []
