"""Every file a command reads: bytes that are not UTF-8 are refused in one line naming the file.

A YAML or CSV file with invalid UTF-8 was a `UnicodeDecodeError` traceback (`common/schema.py`
caught only OSError, and the kubeconfig loader nothing but its own errors). One row per file option
of every command, each given a working file made undecodable by two bytes (0xc3 then "(", not a
UTF-8 sequence) in front: the command exits 2 with `egs: error: <that file>: ...`. `egs render
--check` reads the generated files it compares: a damaged one is out of date, not a traceback.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from egs.cli import main
from tests.conftest import REPO

EXAMPLES = REPO / "examples"
BAD = b"\xc3("
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""
PLAN = ["plan", "--fleet", "{cluster-nodes.yaml}", "--models", "{models.yaml}", "--requests", "{requests.yaml}"]
SIMULATE = ["simulate", "--trace", "{demand-day.csv}", "--scenario", "{scenario-servegen.yaml}", "--policy", "reactive",
            "--train-days", "1", "--score-days", "1"]  # fmt: skip
CONVERT = ["trace", "convert", "--servegen", "{aggregate.csv}", "--model", "m", "-o", "{out}"]
CLUSTER = ["--models", "{models.yaml}", "--kubeconfig", "{kubeconfig}"]

CASES = {
    "exporter --fleet": (["exporter", "--backend", "sim", "--fleet", "{fleet-mixed.yaml}"], "fleet-mixed.yaml"),
    "demo --fleet": (["demo", "--fleet", "{fleet-mixed.yaml}"], "fleet-mixed.yaml"),
    "demo --trace": (["demo", "--trace", "{demand-day.csv}"], "demand-day.csv"),
    "plan --fleet": (PLAN, "cluster-nodes.yaml"),
    "plan --models": (PLAN, "models.yaml"),
    "plan --requests": (PLAN, "requests.yaml"),
    "plan --allocations": ([*PLAN, "--allocations", "{allocations.yaml}"], "allocations.yaml"),
    "plan --prices": ([*PLAN, "--prices", "{prices.yaml}"], "prices.yaml"),
    "simulate --trace": (SIMULATE, "demand-day.csv"),
    "simulate --scenario": (SIMULATE, "scenario-servegen.yaml"),
    "trace convert --servegen": (CONVERT, "aggregate.csv"),
    "trace convert --clients": ([*CONVERT, "--clients", "{clients.csv}"], "clients.csv"),
    "controller --config": (["controller", "--once", *CLUSTER, "--config", "{config.yaml}"], "config.yaml"),
    "controller --models": (["controller", "--once", *CLUSTER], "models.yaml"),
    "controller --kubeconfig": (["controller", "--once", *CLUSTER], "kubeconfig"),
    "api --config": (["api", *CLUSTER, "--config", "{config.yaml}"], "config.yaml"),
    "api --models": (["api", *CLUSTER], "models.yaml"),
    "api --kubeconfig": (["api", *CLUSTER], "kubeconfig"),
}


def working_files(tmp_path: Path) -> dict[str, Path]:
    """A working file for every placeholder, in `tmp_path`."""
    files = {p.name: p for p in EXAMPLES.iterdir()}
    written = {
        "allocations.yaml": "[]\n",
        "prices.yaml": "H100-80GB: 2.49\n",
        "config.yaml": "gpu_classes: {}\n",
        "kubeconfig": KUBECONFIG,
        "aggregate.csv": "window_start_s,total_rate_rps,active_clients\n0,1.5,3\n",
        "clients.csv": "window_start_s,client_id,rate_rps\n0,a,1.5\n",
    }
    for name, text in written.items():
        files[name] = tmp_path / name
        files[name].write_text(text)
    files["out"] = tmp_path / "out.csv"
    return files


@pytest.mark.parametrize(("argv", "bad"), CASES.values(), ids=CASES.keys())
def test_a_file_that_is_not_utf8_is_refused_in_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], bad: str
) -> None:
    files = working_files(tmp_path)
    damaged = tmp_path / "damaged" / bad
    damaged.parent.mkdir()
    damaged.write_bytes(BAD + files[bad].read_bytes())
    files[bad] = damaged
    args = [files[a[1:-1]].as_posix() if a.startswith("{") else a for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"egs: error: {damaged}") and err.count("\n") == 1, err
    assert "utf-8" in err.lower() and "Traceback" not in err


def test_render_check_calls_a_damaged_generated_file_out_of_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(REPO / "helm", tmp_path / "helm")
    shutil.copytree(REPO / "alerts", tmp_path / "alerts")
    rules = tmp_path / "alerts" / "egs.rules.yaml"
    rules.write_bytes(BAD + rules.read_bytes())
    assert main(["render", "--root", str(tmp_path), "--check"]) == 5
    assert capsys.readouterr().err.startswith("egs render: out of date: alerts/egs.rules.yaml\n")
    assert main(["render", "--root", str(tmp_path)]) == 0
    assert main(["render", "--root", str(tmp_path), "--check"]) == 0
