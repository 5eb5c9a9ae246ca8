"""Schemathesis against the running `egs api` process (uvicorn on 127.0.0.1) over kmock: no 5xx.

Bounded: a fixed seed, a cap on examples per operation and on the whole run's time. The caller is
authorised everywhere, so that generated requests reach validation, the decide step and the cluster.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from localplay.kube_standin import KubeCluster
from localplay.localstack import free_port, wait_http
from tests.conftest import REPO
from tests.test_decide import h100

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture(scope="module")
def running_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("api")
    kube = KubeCluster().start()
    kube.emulator.tokens["t-fuzz"] = ("fuzz", ())
    for verb in ("create", "get", "list", "delete"):
        kube.emulator.grants.add(("fuzz", verb, "*"))
    kube.put("v1/nodes", h100("gpu-0"))
    config = workdir / "egs.yaml"
    config.write_text(yaml.safe_dump({"gpu_classes": {"H100-80GB": {"gpus_per_node": 8, "static_nodes": 1}}}))
    port = free_port()
    args = ["--kubeconfig", str(kube.kubeconfig(workdir / "kubeconfig")), "--config", str(config)]
    args += ["--models", str(REPO / "examples" / "models.yaml"), "--listen", f"127.0.0.1:{port}"]
    log = (workdir / "api.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "egs.cli", "api", *args], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/openapi.json", timeout_s=30, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        kube.stop()


def test_schemathesis_finds_no_server_error(running_api: str, tmp_path: Path) -> None:
    command = [
        str(SCHEMATHESIS), "run", f"{running_api}/openapi.json",
        "--checks", "not_a_server_error",
        "--header", "Authorization: Bearer t-fuzz",
        "--max-examples", "15", "--max-time", "25", "--seed", "11", "--workers", "1",
        "--request-timeout", "10", "--report-dir", str(tmp_path),
    ]  # fmt: skip
    run = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,  # schemathesis keeps a cache in its working directory
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "passed" in run.stdout.lower()
