"""`egs exporter` loads only what it needs: it runs on every GPU node within 40 MB of RSS at 64 GPUs.

The other commands' modules (the scheduler and scipy for `egs plan`, the autoscaler for `egs
simulate`, ...) cost the exporter tens of MB; `egs/cli.py` imports them inside `_parser()`, and
only for their own command. This test fails when one of them is imported at the top of `egs/cli.py`
again. `benchmarks/exporter_scrape.py` measures the RSS itself.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from egs.cli import LIGHT_COMMANDS, _command

HEAVY = ("numpy", "scipy", "scheduler", "autoscaler", "grpc", "grpc_tools", "fastapi", "kubernetes", "matplotlib")


@pytest.mark.parametrize("command", LIGHT_COMMANDS)
def test_a_light_command_imports_none_of_the_other_commands_modules(command: str) -> None:
    code = (
        "import json, sys; from egs.cli import _parser; from exporter.podresources import PodResourcesClient; "
        f"_parser({command!r}).parse_args([{command!r}]); "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert loaded == [], f"egs {command} imports {loaded}: import them inside egs/cli.py's _parser()"


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["exporter", "--backend", "sim"], "exporter"),
        (["--log-level", "debug", "exporter"], "exporter"),
        (["--log-level=debug", "demo"], "demo"),
        (["plan", "exporter"], None),
        (["--help"], None),
        ([], None),
    ],
)
def test_the_light_command_is_read_from_the_first_word(argv: list[str], command: str | None) -> None:
    assert _command(argv) == command
