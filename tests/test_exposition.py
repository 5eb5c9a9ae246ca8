"""The exposition passes `promtool check metrics`, but for the lint rules dcgm-exporter's own names break.

dcgm-exporter's names break three of promtool's lint rules, and EGS keeps them for compatibility:
camelCase `modelName`, counters without `_total`, and `DCGM_FI_DEV_PCIE_REPLAY_COUNTER` naming its
type. Those are allowed on DCGM_FI_* series only, and camelCase also on the two derived per-GPU
ratios, which carry the DCGM label set so that alerts on them name the `modelName`. EGS's other
series must lint clean.
"""

from __future__ import annotations

import re
import subprocess

from exporter.attribution import DeviceAssignment, PodRef
from exporter.backends.sim import SimBackend
from exporter.collector import Collector
from exporter.fields import FIELDS
from exporter.fleet import load_fleet
from tests.conftest import MIXED_FLEET

DCGM_LINT_EXCEPTIONS = (
    re.compile(
        r"^(DCGM_FI_\w+|egs_gpu_vram_used_ratio|egs_gpu_saturation_ratio) "
        r"label names should be written in 'snake_case' not 'camelCase'$"
    ),
    re.compile(r'^(DCGM_FI_\w+) counter metrics should have "_total" suffix$'),
    re.compile(r"^(DCGM_FI_DEV_PCIE_REPLAY_COUNTER) metric name should not include type 'counter'$"),
)


def _exposition(node: str, pods: list[DeviceAssignment] | None = None) -> bytes:
    collector = Collector(SimBackend(load_fleet(MIXED_FLEET).node(node)), node, pods=lambda: pods or [])
    collector.collect()
    return collector.last.body


def _lint(body: bytes) -> list[str]:
    result = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, check=False)
    output = (result.stdout + result.stderr).decode()
    assert "error while linting" not in output, output
    return [line for line in output.splitlines() if line.strip()]


def test_every_node_of_the_mixed_fleet_lints_clean_apart_from_dcgm_names() -> None:
    held = [DeviceAssignment("nvidia.com/mig-1g.10gb", "MIG-GPU-x/2/0", PodRef("ns", "p", "c"))]
    for node in ("sim-h100-0", "sim-a100-mig-0", "sim-l4-0", "sim-mi300x-cpx-0", "sim-mi210-0"):
        problems = _lint(_exposition(node, held))
        unexpected = [p for p in problems if not any(rule.match(p) for rule in DCGM_LINT_EXCEPTIONS)]
        assert unexpected == [], f"{node}: {unexpected}"


def test_the_linter_does_flag_a_broken_egs_series() -> None:
    broken = _exposition("sim-h100-0") + b"# HELP egs_badName x\n# TYPE egs_badName counter\negs_badName 1\n"
    problems = _lint(broken)
    assert any(p.startswith("egs_badName") for p in problems)


def test_dcgm_counters_keep_their_names_and_counter_type() -> None:
    body = _exposition("sim-h100-0").decode()
    for field in (f for f in FIELDS if f.kind == "counter"):
        assert f"# TYPE {field.name} counter\n" in body
        assert f"\n{field.name}{{" in body
        assert f"{field.name}_total" not in body


def test_pods_holding_a_time_sliced_gpu_each_get_a_series() -> None:
    backend = SimBackend(load_fleet(MIXED_FLEET).node("sim-h100-0"))
    uuid = backend.open().gpus[3].uuid
    pods = [
        DeviceAssignment("nvidia.com/gpu", f"{uuid}::0", PodRef("llm", "vllm-a", "server")),
        DeviceAssignment("nvidia.com/gpu", f"{uuid}::1", PodRef("llm", "vllm-b", "server")),
    ]
    collector = Collector(backend, "sim-h100-0", pods=lambda: pods)
    collector.collect()
    lines = [line for line in collector.last.body.decode().splitlines() if line.startswith("DCGM_FI_DEV_FB_USED{")]
    held = [line for line in lines if 'pod="' in line]
    assert len(lines) == 9
    assert sorted(re.findall(r'pod="([^"]+)"', " ".join(held))) == ["vllm-a", "vllm-b"]
    assert all('gpu="3"' in line and 'namespace="llm"' in line and 'container="server"' in line for line in held)
