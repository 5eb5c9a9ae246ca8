"""`egs plan` as a user runs it, and the requests file it reads.

Covers: the requests loader (the example loads; each kind of bad input is refused with the path of
the bad field), and the command in a subprocess on the shipped examples: the table, the documented
JSON and YAML keys, `--manifests` files that validate, and bad input that exits 2 with the path
and writes nothing. Which replica lands where is the placement engine's business
(`scheduler/placement.py`); here only the shape of the output and its consistency are checked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from scheduler.catalog import Catalog
from scheduler.manifests import validate
from scheduler.registry import Registry
from scheduler.requests import RequestsError, load_requests, parse_requests

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
CATALOG = Catalog.load()
REGISTRY = Registry.load(EXAMPLES / "models.yaml", CATALOG)
EGS = [sys.executable, "-m", "egs.cli", "plan"]
INPUTS = [
    "--fleet",
    str(EXAMPLES / "cluster-nodes.yaml"),
    "--models",
    str(EXAMPLES / "models.yaml"),
    "--sharing",
    "L4=timeslice",
]
EXAMPLE_REQUESTS = ["--requests", str(EXAMPLES / "requests.yaml")]
GOOD = {"name": "chat", "model": "llama-3.1-8b-instruct"}


def egs_plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EGS, *args], capture_output=True, text=True, cwd=REPO)


def test_the_example_requests_load_with_defaults_filled_in() -> None:
    requests = load_requests(EXAMPLES / "requests.yaml", REGISTRY, CATALOG)
    assert 8 <= len(requests) <= 12
    by_name = {r.name: r for r in requests}
    assert by_name["frontier"].gpu_classes == ("GB200",)
    assert by_name["qwen-coder"].min_quality == 1.0
    assert by_name["mixtral"].replicas == 1 and by_name["mixtral"].namespace == "default"
    assert by_name["chat-small"].context == 4096 and by_name["mixtral"].context is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({**GOOD, "replica": 2}, r"requests\[1\]\.replica: unknown key"),
        ({**GOOD, "replicas": 0}, r"requests\[1\]\.replicas: 0 is less than or equal to the minimum of 0"),
        ({**GOOD, "replicas": "two"}, r"requests\[1\]\.replicas: 'two' is not of type 'integer'"),
        ({**GOOD, "replicas": True}, r"requests\[1\]\.replicas: True is not of type 'integer'"),
        ({**GOOD, "min_quality": 1.5}, r"requests\[1\]\.min_quality: 1\.5 is greater than the maximum of 1"),
        ({**GOOD, "namespace": "Team_A"}, r"requests\[1\]\.namespace: 'Team_A' is not a namespace name"),
        ({**GOOD, "context": 200_000}, r"requests\[1\]\.context: 200000 tokens is more than .* max_context of 131072"),
        ({**GOOD, "concurrency": -1}, r"requests\[1\]\.concurrency: -1 is less than or equal to the minimum of 0"),
        ({**GOOD, "model": "gpt-5"}, r"requests\[1\]\.model: no model 'gpt-5' in the registry"),
        ({**GOOD, "gpu_classes": ["L4", "TPU-v5"]}, r"requests\[1\]\.gpu_classes\[1\]: no GPU class 'TPU-v5'"),
        ({"name": "chat"}, r"requests\[1\]\.model: required"),
        ({**GOOD, "name": "first"}, r"requests\[1\]\.name: duplicate request name 'first'"),
    ],
)
def test_a_bad_request_is_refused_with_the_path_of_the_bad_field(entry: dict[str, Any], message: str) -> None:
    raw = {"requests": [{**GOOD, "name": "first"}, entry]}
    with pytest.raises(RequestsError, match=message):
        parse_requests(raw, REGISTRY, CATALOG)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("requests: []\n", r"requests: \[\] should be non-empty"),
        ("- name: chat\n", "the requests file: .* is not of type 'object'"),
        ("requests: [name: chat\n", "not valid YAML"),
    ],
)
def test_a_malformed_requests_file_is_refused(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "requests.yaml"
    path.write_text(text)
    with pytest.raises(RequestsError, match=message):
        load_requests(path, REGISTRY, CATALOG)


def test_help_explains_every_option() -> None:
    out = egs_plan("--help").stdout
    for option in (
        "--fleet",
        "--models",
        "--requests",
        "--allocations",
        "--sharing",
        "--engine",
        "--time-limit",
        "--output",
        "--manifests",
    ):
        assert option in out


def test_the_examples_print_a_table_of_placements_unplaced_replicas_and_cost() -> None:
    result = egs_plan(*INPUTS, *EXAMPLE_REQUESTS, "--time-limit", "30")  # the lower bound needs the exact engine
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "REQUEST",
        "REPLICA",
        "MODEL",
        "VARIANT",
        "CLASS",
        "NODE(S)",
        "GPUS",
        "VRAM",
        "GiB/GPU",
        "SHARING",
        "THROUGHPUT",
    ]
    assert any(line.startswith("frontier") and "gpu-gb200-0,gpu-gb200-1" in line for line in lines)
    assert "UNPLACED" in lines
    assert lines[-2].startswith("GPUs used: ") and "/hour" in lines[-2]
    assert lines[-1].startswith("engine: ")
    # The bound is on the cost per unit of throughput, which may be above the cost billed beside it.
    assert re.search(r"lower bound \$[0-9.]+/hour per unit of throughput", lines[-1]), lines[-1]


def test_json_output_has_the_documented_keys_and_yaml_says_the_same() -> None:
    # A limit that start-up on a busy machine cannot eat: the lower bound needs the exact engine, and
    # the YAML run the same limit, or it may get the online plan where the JSON run got the exact one.
    limit = ("--time-limit", "30")
    result = egs_plan(*INPUTS, *EXAMPLE_REQUESTS, "-o", "json", *limit)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert {"placements", "unplaced", "cost_per_hour"} <= set(plan)
    assert plan["placements"] and plan["unplaced"]
    for placement in plan["placements"]:
        assert {"request", "model", "variant", "node", "gpus", "vram_gib", "vram_mib_per_gpu", "sharing"} <= set(
            placement
        )
        assert placement["vram_gib"] == round(placement["vram_mib_per_gpu"] / 1024, 2)
    for unplaced in plan["unplaced"]:
        assert {"request", "reason"} <= set(unplaced)
    assert isinstance(plan["cost_per_hour"], float) and plan["cost_per_hour"] > 0
    assert plan["engine"] in ("online", "exact") and isinstance(plan["optimal"], bool)
    assert plan["cost_per_hour"] <= plan["effective_cost_per_hour"]
    assert plan["lower_bound"] is not None and plan["lower_bound"] <= plan["effective_cost_per_hour"] + 1e-6
    as_yaml = egs_plan(*INPUTS, *EXAMPLE_REQUESTS, "-o", "yaml", *limit)
    same = yaml.safe_load(as_yaml.stdout)
    assert same.pop("seconds") >= 0 and plan.pop("seconds") >= 0  # wall time differs between runs
    assert same == plan


def test_manifests_are_written_one_file_per_request_and_validate(tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    result = egs_plan(*INPUTS, *EXAMPLE_REQUESTS, "-o", "json", "--manifests", str(out))
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stderr
    placed = {p["request"] for p in json.loads(result.stdout)["placements"]}
    assert {f.stem for f in out.glob("*.yaml")} == placed
    kinds = set()
    for file in out.glob("*.yaml"):
        objects = list(yaml.safe_load_all(file.read_text()))
        assert objects[-1]["kind"] == "Service"
        for obj in objects:
            validate(obj)
            kinds.add(obj["kind"])
    assert kinds == {"Deployment", "LeaderWorkerSet", "Service"}


def test_a_bad_requests_file_exits_2_with_the_path_and_writes_nothing(tmp_path: Path) -> None:
    requests = tmp_path / "requests.yaml"
    requests.write_text("requests:\n  - {name: chat, model: llama-3.1-8b-instruct, replicas: 0}\n")
    out = tmp_path / "manifests"
    result = egs_plan(*INPUTS, "--requests", str(requests), "--manifests", str(out))
    assert result.returncode == 2
    assert result.stderr.startswith(f"egs: error: {requests}: requests[0].replicas: ")
    assert result.stdout == ""
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--sharing", "MI300X=kai"], "--sharing MI300X=kai: AMD GPUs"),
        (["--sharing", "TPU=kai"], "--sharing: sharing.by_class.TPU: no GPU class 'TPU'"),
        (["--sharing", "L4=sliced"], "'sliced' is not one of"),
        (["--sharing", "T4=mig"], "T4 has no MIG profiles"),
    ],
)
def test_a_bad_sharing_option_exits_2(option: list[str], message: str) -> None:
    result = egs_plan(*INPUTS, *EXAMPLE_REQUESTS, *option)
    assert result.returncode == 2
    assert message in result.stderr


def test_prices_from_flags_and_a_file_change_the_plan_and_its_cost(tmp_path: Path) -> None:
    base = json.loads(egs_plan(*INPUTS, *EXAMPLE_REQUESTS, "--engine", "online", "-o", "json").stdout)
    prices = tmp_path / "prices.yaml"
    prices.write_text("prices:\n  L4: 0.05\n  H100-80GB: 0.5\n")
    cheaper = egs_plan(*INPUTS, *EXAMPLE_REQUESTS, "--engine", "online", "--prices", str(prices), "-o", "json")
    assert cheaper.returncode == 0, cheaper.stderr
    assert json.loads(cheaper.stdout)["cost_per_hour"] < base["cost_per_hour"]
    # A flag beats the file: L4 back to a high price moves replicas off the L4s.
    flagged = egs_plan(
        *INPUTS, *EXAMPLE_REQUESTS, "--engine", "online", "--prices", str(prices), "--price", "L4=50", "-o", "json"
    )
    on_l4 = [p for p in json.loads(flagged.stdout)["placements"] if p["gpu_class"] == "L4"]
    assert len(on_l4) < len([p for p in json.loads(cheaper.stdout)["placements"] if p["gpu_class"] == "L4"])


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--price", "L4"], "expected CLASS=USD_PER_GPU_HOUR"),
        (["--price", "L4=cheap"], "'cheap' is not a number"),
        (["--price", "L4=-1"], "finite, non-negative"),
        (["--price", "L4=inf"], "finite, non-negative"),
        (["--price", "TPU=1"], "--price: prices.TPU: no GPU class 'TPU'"),
        (["--price", "L4=1", "--price", "L4=2"], "given more than once"),
    ],
)
def test_a_bad_price_exits_2(option: list[str], message: str) -> None:
    result = egs_plan(*INPUTS, *EXAMPLE_REQUESTS, *option)
    assert result.returncode == 2 and message in result.stderr and result.stdout == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [("- 1\n", "a mapping of GPU class to USD"), ("L4: lots\n", "prices.L4: a non-negative number")],
)
def test_a_bad_prices_file_exits_2_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(text)
    result = egs_plan(*INPUTS, *EXAMPLE_REQUESTS, "--prices", str(prices))
    assert result.returncode == 2 and str(prices) in result.stderr and message in result.stderr


def test_request_tolerations_are_read_with_kubernetes_defaults(tmp_path: Path) -> None:
    entry = GOOD | {"tolerations": [{"key": "dedicated", "value": "batch"}, {"operator": "Exists"}]}
    [request] = parse_requests({"requests": [entry]}, REGISTRY, CATALOG)
    assert [(t.key, t.operator, t.value, t.effect) for t in request.tolerations] == [
        ("dedicated", "Equal", "batch", ""),
        ("", "Exists", "", ""),
    ]
    with pytest.raises(RequestsError, match=r"requests\[0\]\.tolerations\[0\]\.value: .*Exists takes no value"):
        parse_requests(
            {"requests": [GOOD | {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}]},
            REGISTRY,
            CATALOG,
        )


def test_the_time_limit_counts_from_the_process_start() -> None:
    """`--time-limit` covers the whole command: what the process spent before the parser was built
    (Python's start-up, imports) is read from /proc and taken off the engines' time. /proc gives the
    start in whole clock ticks, rounded down, so the age read may pass the true one by one tick."""
    script = "import time; from egs.plan_cli import startup_seconds; print(startup_seconds())"
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    wall = time.perf_counter() - began
    assert 0 < float(result.stdout) <= wall + 1 / os.sysconf("SC_CLK_TCK")


def test_plan_help_imports_neither_the_engines_nor_the_schema_checker() -> None:
    """`egs plan --help` builds the parser only: numpy, HiGHS, scipy and jsonschema come with `run`."""
    code = (
        "import contextlib, io, sys\n"
        "from egs.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['plan', '--help'])\n"
        "print(' '.join(m for m in ('numpy', 'highspy', 'scipy', 'jsonschema') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.split() == []
