"""`egs render`: write every generated file the Helm chart ships, or check that they are current.

Composition only: the rules come from `alerts.rules` (one file per GPU source, also kept in `alerts/`
for a plain Prometheus), the dashboards from `dashboards.render`; the InferenceEndpoint CRD and the
default model registry are copied in (Helm reads no file outside the chart). The chart reads them with
`.Files.Get`: `helm/egs/rules/<source>.rules.yaml` becomes the PrometheusRule's groups and
`helm/egs/dashboards/<uid>.json` a dashboard ConfigMap. `--check` writes nothing and exits 5 (a failed check) naming
every file that is missing or differs (a test runs it), so a change to a rule or a panel cannot reach
the chart without its rendered files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from alerts.config import SOURCES, RulesConfig
from alerts.rules import render as render_rules
from egs.exit_codes import CHECK_FAILED_EXIT

CHART = Path("helm") / "egs"
REPO = Path(__file__).resolve().parent.parent
CRD = REPO / "autoscaler" / "data" / "inferenceendpoint-crd.yaml"
MODELS = REPO / "examples" / "models.yaml"


def generated_files() -> dict[Path, str]:
    """Path relative to the repository root -> its content."""
    # Grafana's SDK is the `render` extra: the control-plane image, whose `egs` registers this command's
    # parser too, does not have it.
    from dashboards.render import rendered as rendered_dashboards

    files: dict[Path, str] = {}
    for source in SOURCES:
        text = render_rules(RulesConfig(source=source))
        files[Path("alerts") / f"{source}.rules.yaml"] = text
        files[CHART / "rules" / f"{source}.rules.yaml"] = text
    for name, text in rendered_dashboards().items():
        files[CHART / "dashboards" / name] = text
    # Helm reads nothing outside the chart: the controller's CRD and the default model registry travel in it.
    files[CHART / "crds" / "inferenceendpoint-crd.yaml"] = CRD.read_text()
    files[CHART / "files" / "models.yaml"] = MODELS.read_text()
    return files


def stale(root: Path) -> list[Path]:
    """The generated files under `root` that are missing or differ from what the code renders."""
    return [p for p, text in generated_files().items() if not _holds(root / p, text)]


def _holds(path: Path, text: str) -> bool:
    """Whether `path` holds `text` as UTF-8; compared as bytes, so that a file damaged into bytes that
    are not UTF-8 is out of date rather than a traceback."""
    return path.is_file() and path.read_bytes() == text.encode()


def add_parser(sub: Any) -> None:
    """Register `egs render` on the `egs` command's subparsers."""
    render = sub.add_parser(
        "render",
        description="Render the recording rules and alerts for each GPU source and the Grafana dashboards, "
        "and write them where the Helm chart (helm/egs/rules, helm/egs/dashboards) and a plain Prometheus "
        "(alerts/*.rules.yaml) read them, and copy the InferenceEndpoint CRD and the model registry into the chart "
        f"(helm/egs/crds, helm/egs/files). With --check, write nothing: exit {CHECK_FAILED_EXIT} listing the files "
        "that are missing or out of date.",
    )
    render.add_argument(
        "--root", type=Path, default=Path("."), help="the repository's root directory (default: the current one)"
    )
    render.add_argument(
        "--check", action="store_true", help=f"write nothing; exit {CHECK_FAILED_EXIT} when a file is out of date"
    )
    render.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    root: Path = args.root
    if not (root / CHART / "Chart.yaml").is_file():
        print(
            f"egs render: {root / CHART / 'Chart.yaml'} not found: run it from the repository root, or --root",
            file=sys.stderr,
        )
        return 2
    if args.check:
        out_of_date = stale(root)
        for path in out_of_date:
            print(f"egs render: out of date: {path}", file=sys.stderr)
        if out_of_date:
            print("egs render: run `egs render` and commit the result", file=sys.stderr)
            return CHECK_FAILED_EXIT
        return 0
    for path, text in generated_files().items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not _holds(target, text):
            target.write_bytes(text.encode())
            print(f"egs render: wrote {path}", file=sys.stderr)
    return 0
