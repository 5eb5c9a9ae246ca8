"""`egs exporter` loads only what it needs: it runs on every GPU node within 40 MB of RSS at 64 GPUs.

The other commands' modules (the scheduler and scipy for `egs plan`, the autoscaler for `egs
simulate`, ...) cost the exporter tens of MB; `egs/cli.py` imports a command's module only when
that command runs. This test fails when one of them is imported by `egs/cli.py` or the exporter's or
demo's command module again. `benchmarks/exporter_scrape.py` measures the RSS itself.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from egs.cli import _command

HEAVY = ("numpy", "scipy", "scheduler", "autoscaler", "grpc", "grpc_tools", "fastapi", "kubernetes", "matplotlib")


@pytest.mark.parametrize("command", ["exporter", "demo"])
def test_a_light_command_imports_none_of_the_other_commands_modules(command: str) -> None:
    code = (
        "import json, sys; from egs.cli import _parser; from exporter.podresources import PodResourcesClient; "
        f"_parser({command!r}).parse_args([{command!r}]); "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert loaded == [], f"egs {command} imports {loaded}: import them where its command runs"


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["exporter", "--backend", "sim"], "exporter"),
        (["--log-level", "debug", "exporter"], "exporter"),
        (["--log-level=debug", "demo"], "demo"),
        (["plan", "exporter"], "plan"),
        (["--help"], None),
        (["--help", "plan"], None),
        (["no-such-command"], None),
        ([], None),
    ],
)
def test_the_light_command_is_read_from_the_first_word(argv: list[str], command: str | None) -> None:
    assert _command(argv) == command
