"""The `egs` command: wires the components together. No logic of its own lives here.

Exit codes, the same for every subcommand (`EXIT_CODES`, printed by `egs --help`): what a command
expects to go wrong is one of `common.errors`' types, reported as one line `egs: error: ...` on
stderr with that type's code. Anything else is a bug: it is not caught, so Python prints its
traceback and exits 1.

Start-up: each command's options and imports live in its own module (`COMMANDS`), imported only when
that command runs. `egs --help` lists the commands from the table alone, so it imports none of them
(scipy, numpy, the Kubernetes client and FastAPI cost seconds and 100 MB; `egs exporter` runs on
every GPU node within an RSS budget). `benchmarks/startup.py` measures it; `tests/test_startup.py`
and `tests/test_exporter_imports.py` fail when a heavy module is imported again.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from common.errors import EgsError
from egs.exit_codes import EXIT_CODES as EXIT_CODES
from egs.exit_codes import STDOUT_CLOSED_EXIT

log = logging.getLogger("egs")

COMMANDS: Mapping[str, tuple[str, str]] = {
    "exporter": ("egs.exporter_cli", "serve GPU metrics (dcgm-exporter names) on /metrics"),
    "demo": (
        "egs.demo_cli",
        "run the whole local stack and replay a day of demand: exporters, Prometheus, Alertmanager, controller, API",
    ),
    "plan": ("egs.plan_cli", "place inference requests on a fleet; print the plan or write its Kubernetes manifests"),
    "simulate": (
        "egs.simulate_cli",
        "replay a demand trace through a warm-pool policy: waits, node-hours, cost, ETA accuracy",
    ),
    "trace": ("egs.trace_cli", "convert demand traces for `egs simulate`"),
    "render": (
        "egs.render_cli",
        "write the rules and dashboards into the Helm chart (and alerts/); --check: fail if stale",
    ),
    "controller": (
        "egs.controller_cli",
        "run the InferenceEndpoint operator: place, scale and keep warm capacity for every endpoint",
    ),
    "cost": ("egs.cost_cli", "GPU cost per team (namespace) and idle cost per GPU class, read from Prometheus"),
    "api": (
        "egs.api_cli",
        "serve the endpoint API: POST an endpoint, get 201 or 202 Accepted with its estimated ready time",
    ),
}
"""Each command: the module whose `add_parser(sub)` registers its options (without `help=`, which is
here, so that listing the commands imports none of them), and its line in `egs --help`."""


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser(_command(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.run(args))
    except EgsError as e:
        print(f"egs: error: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        # Whoever read stdout stopped (`egs plan | head`): not a bug. Python would flush stdout again at exit and
        # fail the same way, so it is pointed at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return STDOUT_CLOSED_EXIT


def _command(argv: Sequence[str]) -> str | None:
    """The command that `argv` runs, or None when it names none (`egs --help`, `egs`, a typo) or asks
    for the list of commands before naming one (`egs --help plan`)."""
    words = iter(argv)
    for word in words:
        if word in ("-h", "--help"):
            return None
        if word == "--log-level":
            next(words, None)
        elif not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_LEVEL_HELP = "what is logged, on stderr only (default info); before or after the command"


class _CommandParser(argparse.ArgumentParser):
    """A command's parser (and its subcommands'): it takes the global options too, so that they may follow
    the command (`egs plan ... --log-level debug`); given nowhere, the value before the command stands."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("--log-level", choices=LOG_LEVELS, default=argparse.SUPPRESS, help=LOG_LEVEL_HELP)


class _Version(argparse.Action):
    """`--version`: the installed distribution's version, looked up only when asked for (reading the
    installed packages' metadata costs ~100 ms, more than the rest of `egs --help`)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        import importlib.metadata

        try:
            version = importlib.metadata.version("egs")
        except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
            version = "unknown (not installed)"
        print(f"{parser.prog} {version}")  # on stdout, as argparse's own version action
        parser.exit()


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command listed and `command`'s options (its module is the only one imported)."""
    parser = argparse.ArgumentParser(
        prog="egs",
        description="Elastic GPU Service: GPU monitoring and autoscaling for LLM inference on Kubernetes.",
        epilog="exit codes:\n" + "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_CODES.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_Version, help="show the version of egs and exit")
    parser.add_argument("--log-level", default="info", choices=LOG_LEVELS, help=LOG_LEVEL_HELP)
    sub = parser.add_subparsers(required=True, metavar="COMMAND", parser_class=_CommandParser)
    for name, (module, help_) in COMMANDS.items():
        if name == command:
            importlib.import_module(module).add_parser(sub)
        else:
            sub.add_parser(name, help=help_)
    return parser


if __name__ == "__main__":
    sys.exit(main())
