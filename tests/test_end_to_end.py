"""End to end: the real `egs api` and `egs controller` processes on a kmock cluster, with a real
Prometheus recording from sim exporters and a stand-in vLLM.

kmock runs no scheduler, kubelet or workload controllers, so the test plays them: it adds the GPU
node (labelled as GPU Feature Discovery labels it) and marks the Deployment's replicas ready.

POST -> 202 with an ETA -> the Deployment, Service and warm-pool object appear -> a GPU node joins ->
the endpoint is Ready with its url; a POST whose variant fits the warm GPUs now -> 201. Then a warm
node joins and an endpoint of eight GPUs a replica takes it, another team's pod holds a quarter of a GPU
(`egs cost` charges it that quarter), and every dashboard panel that reads the
controller's series (tests/test_dashboards.py: CONTROLLER_PANELS) returns series from the Prometheus that
scrapes the controller, its demand forecast from an hour of demand history backfilled into that
Prometheus before it starts. Each test first runs the steps of the story before its own, unless they
have run on the module's stack (`_once`), so that any one of them can run alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from egs.cli import main
from localplay.kube_standin import KubeCluster
from localplay.localstack import Prometheus, free_port, wait_http
from localplay.vllm_standin import Server, VllmStandIn
from tests.conftest import REPO, SimCluster
from tests.test_dashboards import CONTROLLER_PANELS, Panel, expand
from tests.test_decide import h100

ENDPOINTS = "egs.dev/v1alpha1/inferenceendpoints"
DEPLOYMENTS = "apps/v1/deployments"
TOKEN = {"Authorization": "Bearer t-alice"}


@dataclass
class Stack:
    kube: KubeCluster
    api: str
    vllm: VllmStandIn
    prom: Prometheus
    done: set[str] = field(default_factory=set)
    """The steps of the story that have run on this stack (`_once`)."""


def _egs(*args: str, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen([sys.executable, "-m", "egs.cli", *args], stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def stack(sim_cluster: SimCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("e2e")
    kube = KubeCluster().start()
    kube.emulator.tokens["t-alice"] = ("alice", ("team-a",))
    for verb in ("create", "get", "list", "delete"):
        kube.emulator.grants.add(("alice", verb, "team-a"))
    vllm = VllmStandIn(
        [Server("llama-3.1-8b-instruct", "team-a", "chat-0", rps=0.5, waiting=0, running=1, kv_cache=0.3)]
    )
    controller_metrics = f"127.0.0.1:{free_port()}"
    jobs = [
        {"job_name": "vllm", "static_configs": [{"targets": [vllm.address]}]},
        {"job_name": "egs-exporter", "static_configs": [{"targets": list(sim_cluster.exporters.values())}]},
        {"job_name": "egs-controller", "static_configs": [{"targets": [controller_metrics]}]},
    ]
    rules = [REPO / "alerts" / "egs.rules.yaml"]
    prom = Prometheus(workdir / "prom", [], interval="1s", rule_files=rules, scrape_configs=jobs)
    prom.backfill(_demand_history("llama-3.1-8b-instruct", rps=0.5)).start()
    config = workdir / "egs.yaml"
    classes = {"H100-80GB": {"gpus_per_node": 8, "pool": "balloon", "static_nodes": 1}}
    config.write_text(yaml.safe_dump({"models": str(REPO / "examples" / "models.yaml"), "gpu_classes": classes}))
    kubeconfig = str(kube.kubeconfig(workdir / "kubeconfig"))
    port = free_port()
    api = _egs("api", "--kubeconfig", kubeconfig, "--config", str(config), "--listen", f"127.0.0.1:{port}",
               log=workdir / "api.log")  # fmt: skip
    controller = _egs(
        "controller", "--kubeconfig", kubeconfig, "--config", str(config), "--prometheus", prom.url,
        "--interval", "1", "--metrics-listen", controller_metrics, log=workdir / "controller.log",
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/openapi.json", timeout_s=30, proc=api)
        yield Stack(kube, f"http://127.0.0.1:{port}", vllm, prom)
    finally:
        for proc in (api, controller):
            proc.terminate()
            proc.wait(10)
        prom.stop()
        vllm.close()
        kube.stop()


def _demand_history(model: str, rps: float, minutes: int = 60) -> list[str]:
    """The last hour of `model:requests:rate5m` for `model`, a sample a minute: the controller's demand
    history, which a fresh Prometheus would not have for five minutes."""
    now = int(time.time())
    lines = ["# TYPE model:requests:rate5m gauge"]
    return lines + [
        f'model:requests:rate5m{{model_name="{model}"}} {rps} {now - 60 * i}' for i in range(minutes, 0, -1)
    ]


def _eventually(what: str, probe: Callable[[], Any], timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout_s:.0f}s")


def _status(kube: KubeCluster, name: str) -> dict[str, Any]:
    status: dict[str, Any] = (kube.get(ENDPOINTS, "team-a", name) or {}).get("status") or {}
    return status


def _workloads(kube: KubeCluster, name: str) -> list[dict[str, Any]]:
    return [d for d in kube.all(DEPLOYMENTS) if d["metadata"].get("annotations", {}).get("egs.io/request-name") == name]


def _once(stack: Stack, step: Callable[[Stack], None]) -> None:
    """Run a step of the story unless it has run: each test runs the steps before its own, so that any
    one of them can run alone (`pytest -k`) and still start from the state it needs."""
    if step.__name__ not in stack.done:
        step(stack)
        stack.done.add(step.__name__)


def _serve(stack: Stack) -> None:
    """POST -> 202 -> objects -> a node joins -> Ready with a url; then a POST that fits warm GPUs -> 201."""
    kube = stack.kube
    body: dict[str, Any] = {
        "name": "chat",
        "model": "llama-3.1-8b-instruct",
        "qualityFloor": 0.99,
        "replicas": {"min": 1, "max": 2},
    }
    answer = requests.post(f"{stack.api}/v1/namespaces/team-a/endpoints", json=body, headers=TOKEN, timeout=10)
    assert answer.status_code == 202, answer.text
    eta = answer.json()["estimatedReadyTime"]
    assert eta and answer.headers["Location"] == "/v1/namespaces/team-a/endpoints/chat"

    workloads = _eventually("the Deployment", lambda: _workloads(kube, "chat"))
    assert workloads[0]["metadata"]["ownerReferences"][0]["name"] == "chat"
    _eventually("the Service", lambda: kube.get("v1/services", "team-a", "chat"))
    balloons = _eventually(
        "the warm pool", lambda: [d for d in kube.all(DEPLOYMENTS) if d["metadata"]["namespace"] == "egs-system"]
    )
    assert balloons[0]["spec"]["template"]["spec"]["priorityClassName"] == "egs-warm-pool"
    status = _eventually("the status", lambda: _status(kube, "chat").get("conditions"))
    assert _status(kube, "chat")["estimatedReadyTime"] == eta  # the controller keeps the API's promise
    assert status[0]["reason"] == "WaitingForCapacity"
    # Prometheus reads the promise's class at 0 before it resolves: the kept one is then an increase.
    kept = 'egs_endpoint_promises_total{gpu_class="H100-80GB", outcome="kept"} == 0'
    assert stack.prom.wait_for(kept), "the pending promise's outcomes were never scraped at 0"

    # A GPU node joins (the node autoscaler's work), and the Deployment's pods become ready on it.
    kube.put("v1/nodes", h100("gpu-h100-0"))
    for deployment in _workloads(kube, "chat"):
        replicas = deployment["spec"]["replicas"]
        kube.patch(DEPLOYMENTS, "team-a", deployment["metadata"]["name"], {"status": {"readyReplicas": replicas}})

    status = _eventually(
        "Ready", lambda: _status(kube, "chat") if _status(kube, "chat").get("phase") == "Ready" else None
    )
    assert status["url"] == "http://chat.team-a.svc:8000"
    assert status["readyReplicas"] == status["desiredReplicas"] >= 1

    small = {**body, "name": "docs", "model": "mistral-7b-instruct-v0.3"}
    answer = requests.post(f"{stack.api}/v1/namespaces/team-a/endpoints", json=small, headers=TOKEN, timeout=10)
    assert answer.status_code == 201, answer.text
    assert answer.json()["gpuClass"] == "H100-80GB"


def _take_a_warm_node(stack: Stack) -> None:
    """A warm node joins, an endpoint of eight GPUs a replica takes it, and another waits with an ETA."""
    _once(stack, _serve)
    kube, prom = stack.kube, stack.prom
    kube.put("v1/nodes", h100("gpu-h100-1"))
    assert prom.wait_for('egs_warm_pool_idle_nodes{gpu_class="H100-80GB"} == 1'), "the warm node never counted idle"
    # Eight GPUs a replica: only the idle node has them (the first node's replicas hold some of its GPUs).
    big: dict[str, Any] = {
        "name": "big",
        "model": "llama-3.1-405b-instruct",
        "qualityFloor": 0.99,
        "replicas": {"min": 1, "max": 1},
    }
    answer = requests.post(f"{stack.api}/v1/namespaces/team-a/endpoints", json=big, headers=TOKEN, timeout=10)
    assert answer.status_code == 201, answer.text
    assert prom.wait_for('egs_warm_pool_taken_nodes_total{gpu_class="H100-80GB"} >= 1'), "no warm node taken"
    assert prom.wait_for('egs_endpoint_provisioning_seconds_count{gpu_class="H100-80GB"} == 1'), "no wait observed"
    # One more such endpoint waits for a node: the promised ready time the dashboards show.
    answer = requests.post(
        f"{stack.api}/v1/namespaces/team-a/endpoints", json={**big, "name": "big-2"}, headers=TOKEN, timeout=10
    )
    assert answer.status_code in (201, 202), answer.text
    etas = prom.wait_for("egs_endpoint_estimated_ready_timestamp_seconds")
    assert etas, [(n, _status(kube, n).get("phase"), _status(kube, n).get("message")) for n in ("big", "big-2")]
    # Another team's job holds a quarter of one GPU through KAI Scheduler (an annotation, no resource):
    # cost per team charges it a quarter, not the GPU.
    kube.put("v1/pods", _kai_pod("research", "notebook", "gpu-h100-0", "0.25"))


def _kai_pod(namespace: str, name: str, node: str, fraction: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "annotations": {"gpu-fraction": fraction}},
        "spec": {"nodeName": node, "schedulerName": "kai-scheduler", "containers": [{"name": "c", "image": "x"}]},
        "status": {"phase": "Running"},
    }


def test_post_waits_for_a_node_then_serves_and_a_warm_fit_is_created_at_once(stack: Stack) -> None:
    _once(stack, _serve)


def test_a_warm_node_is_taken_and_a_second_big_endpoint_gets_an_eta(stack: Stack) -> None:
    _once(stack, _take_a_warm_node)


def test_egs_cost_prints_what_each_team_holds_and_teams_plus_idle_is_the_fleet(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    _once(stack, _take_a_warm_node)
    assert stack.prom.wait_for('namespace:egs_gpu_cost_usd_per_hour:sum{namespace="research"}'), "no cost recorded"
    assert main(["cost", "--prometheus", stack.prom.url, "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {n["namespace"]: n["gpus"] for n in doc["namespaces"]}["research"] == {"H100-80GB": 0.25}
    assert [(c["gpu_class"], c["gpus"]) for c in doc["gpu_classes"]] == [("H100-80GB", 16)]
    assert doc["teams_usd_per_hour"] + doc["idle_usd_per_hour"] == pytest.approx(doc["fleet_usd_per_hour"], rel=0.01)


@pytest.mark.parametrize("panel", CONTROLLER_PANELS, ids=str)
def test_every_dashboard_panel_of_the_controller_s_series_returns_series(stack: Stack, panel: Panel) -> None:
    _once(stack, _take_a_warm_node)
    assert stack.prom.wait_for(expand(panel.expr), timeout_s=30), f"{panel}: {panel.expr} returned nothing"
