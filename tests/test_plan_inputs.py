"""`egs plan` against hostile input and a failing disk: each bad value gets a clear message, nothing half-written.

Covers: label and resource counts no node can have (refused with the node and the label, before the
inventory makes one object per GPU), `.inf` / `.nan` in the registry, an alias bomb, the
`--manifests DIR` replacement (all or nothing, stale files gone, a file or a foreign directory as DIR
refused), and `--fail-unplaced`. The command runs in this process (`egs.cli.main`), and once in a
subprocess as a script would run it.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from common.errors import InputError, SetupError
from egs.cli import main
from egs.exit_codes import CHECK_FAILED_EXIT
from egs.manifest_dir import MARKER, replace_directory
from exporter.fleet import FleetError, load_fleet
from tests.conftest import REPO
from tests.test_input_files import billion_laughs

EXAMPLES = REPO / "examples"
FLEET, MODELS, REQUESTS = EXAMPLES / "cluster-nodes.yaml", EXAMPLES / "models.yaml", EXAMPLES / "requests.yaml"


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def egs_plan(*args: str | Path, fleet: Path = FLEET, models: Path = MODELS) -> Ran:
    """`egs plan` on the example requests, in this process (as `egs.cli.main`, exit code included)."""
    inputs = ["--fleet", str(fleet), "--models", str(models), "--requests", str(REQUESTS)]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["plan", *inputs, *map(str, args)])
    return Ran(code, out.getvalue(), err.getvalue())


def fleet_with(tmp_path: Path, label: str, value: str, node: int = 0) -> Path:
    nodes = yaml.safe_load(FLEET.read_text())
    nodes["items"][node]["metadata"]["labels"][label] = value
    path = tmp_path / "nodes.yaml"
    path.write_text(yaml.safe_dump(nodes))
    return path


def test_a_gpu_count_no_node_can_have_is_refused_naming_the_file_the_node_and_the_label(tmp_path: Path) -> None:
    fleet = fleet_with(tmp_path, "nvidia.com/gpu.count", "100000000")
    inputs = ["--fleet", str(fleet), "--models", str(MODELS), "--requests", str(REQUESTS)]
    command = [sys.executable, "-m", "egs.cli", "plan", *inputs]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f'egs: error: {fleet}: items[0].metadata.labels["nvidia.com/gpu.count"]: '
        "node 'gpu-h100-0' says 100000000 GPUs; a node has at most 64\n"
    )


@pytest.mark.parametrize(
    ("label", "value", "message"),
    [
        ("nvidia.com/gpu.replicas", "100000", "100000 time-slicing replicas per GPU; a node has at most 64"),
        ("nvidia.com/gpu.memory", "99999999", "99999999 MiB of memory per GPU; a node has at most 1048576"),
        ("nvidia.com/gpu.count", "9" * 5000, "longer than 12 characters"),
    ],
)
def test_other_impossible_labels_are_refused(tmp_path: Path, label: str, value: str, message: str) -> None:
    result = egs_plan(fleet=fleet_with(tmp_path, label, value))
    assert result.returncode == 2 and message in result.stderr and label in result.stderr, result.stderr


def test_a_gpu_resource_no_node_can_have_is_refused(tmp_path: Path) -> None:
    nodes = yaml.safe_load(FLEET.read_text())
    nodes["items"][0]["status"]["allocatable"]["nvidia.com/gpu"] = "100000000"
    fleet = tmp_path / "nodes.yaml"
    fleet.write_text(yaml.safe_dump(nodes))
    result = egs_plan(fleet=fleet)
    assert result.returncode == 2
    assert "items[0].status.allocatable[\"nvidia.com/gpu\"]: node 'gpu-h100-0' says 100000000 devices" in result.stderr


@pytest.mark.parametrize("value", [".inf", ".nan"])
def test_a_non_finite_registry_number_exits_2_with_the_file_and_the_path(tmp_path: Path, value: str) -> None:
    models = tmp_path / "models.yaml"
    models.write_text(MODELS.read_text().replace("weights_gib: 5.34", f"weights_gib: {value}", 1))
    result = egs_plan(models=models)
    assert result.returncode == 2
    shown = value.lstrip(".")
    assert result.stderr == f"egs: error: {models}: models[0].variants[2].weights_gib: {shown} is not a finite number\n"


def test_an_alias_bomb_exits_2_at_once(tmp_path: Path) -> None:
    models = tmp_path / "models.yaml"
    models.write_text(billion_laughs())
    result = egs_plan(models=models)
    assert result.returncode == 2
    assert result.stderr.startswith(f"egs: error: {models}: its aliases expand 28 YAML nodes to ")


def test_a_simulated_node_with_more_gpus_than_a_node_can_have_is_refused(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        "nodes:\n  - name: big\n    gpus:\n      - {model: X, vendor: nvidia, count: 2000, memory_mib: 1}\n"
    )
    with pytest.raises(FleetError, match=r"nodes\[0\]\.gpus: node 'big' has 2000 GPUs; a node has at most 64"):
        load_fleet(fleet)


def test_manifests_replace_the_directory_and_drop_files_the_plan_no_longer_has(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "manifests"
    assert replace_directory(out, {"a.yaml": "a: 1\n", "b.yaml": "b: 1\n", "c.yaml": "c: 1\n"}) == 0
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "a.yaml", "b.yaml", "c.yaml"]
    assert replace_directory(out, {"a.yaml": "a: 2\n"}) == 2
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "a.yaml"]
    assert (out / "a.yaml").read_text() == "a: 2\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["manifests"], "no temporary directory is left"


def test_a_write_that_fails_partway_leaves_the_previous_plan_whole(tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    replace_directory(out, {"old.yaml": "old: 1\n"})
    files = {f"r{i}.yaml": f"r: {i}\n" for i in range(10)}
    files["x" * 300 + ".yaml"] = "a name longer than the filesystem allows\n"  # fails after several files
    with pytest.raises(SetupError, match=r"--manifests .*manifests: nothing written: File name too long"):
        replace_directory(out, files)
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "old.yaml"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifests"], "no temporary directory is left"


def test_a_directory_egs_did_not_write_is_not_replaced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    with pytest.raises(InputError, match="holds files egs plan did not write"):
        replace_directory(tmp_path, {"a.yaml": "a: 1\n"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_manifests_dir_that_is_a_file_exits_2_and_leaves_it_alone(tmp_path: Path) -> None:
    target = tmp_path / "manifests"
    target.write_text("not a directory\n")
    result = egs_plan("--manifests", target)
    assert result.returncode == 2
    assert result.stderr == f"egs: error: --manifests: {target} exists and is not a directory\n"
    assert target.read_text() == "not a directory\n"


def test_a_second_plan_into_the_same_directory_replaces_the_first(tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    first = egs_plan("--manifests", out, "-o", "json")
    assert first.returncode == 0, first.stderr
    stale = out / "retired-endpoint.yaml"
    stale.write_text("kind: Service\n")
    second = egs_plan("--manifests", out, "-o", "json")
    assert second.returncode == 0, second.stderr
    assert not stale.exists() and "removed 1 of the previous plan" in second.stderr
    placed = {p["request"] for p in json.loads(first.stdout)["placements"]}
    assert {p.stem for p in out.glob("*.yaml")} == placed


def test_fail_unplaced_makes_an_incomplete_plan_a_non_zero_exit() -> None:
    plain = egs_plan("-o", "json")
    assert plain.returncode == 0 and json.loads(plain.stdout)["unplaced"], "the examples leave a replica unplaced"
    strict = egs_plan("-o", "json", "--fail-unplaced")
    assert strict.returncode == CHECK_FAILED_EXIT == 5
    assert json.loads(strict.stdout) == json.loads(plain.stdout) | {"seconds": json.loads(strict.stdout)["seconds"]}
