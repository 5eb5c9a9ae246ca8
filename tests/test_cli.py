"""The `egs` command as a user runs it: help, bad input, no driver, pod labels from a real kubelet."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from exporter import podresources_pb2 as protos
from exporter import podresources_pb2_grpc as services
from exporter.backends.sim import SimBackend
from exporter.fleet import DEFAULT_FLEET
from localplay.localstack import free_port, wait_http

EGS = [sys.executable, "-m", "egs.cli"]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, without: str = "") -> str:
        """`egs exporter ARGS`; `without` names a module the child process cannot import."""
        port = free_port()
        egs = EGS
        if without:
            egs = [
                sys.executable,
                "-c",
                f"import sys; sys.modules[{without!r}] = None; from egs.cli import main; sys.exit(main())",
            ]
        proc = subprocess.Popen([*egs, "exporter", "--listen", f"127.0.0.1:{port}", *args], stderr=subprocess.PIPE)
        procs.append(proc)
        wait_http(f"http://127.0.0.1:{port}/", 20, proc)
        return f"http://127.0.0.1:{port}"

    yield start
    for p in procs:
        p.terminate()
        p.wait(10)


def test_help_explains_every_exporter_option() -> None:
    out = subprocess.run([*EGS, "exporter", "--help"], capture_output=True, text=True, check=True).stdout
    for option in (
        "--backend",
        "--listen",
        "--fleet",
        "--kubelet-socket",
        "--collect-interval",
        "--read-timeout",
    ):
        assert option in out


def test_a_bad_fleet_file_is_refused_with_the_path_of_the_bad_field(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("nodes:\n  - name: a\n    gpus:\n      - {model: X, vendor: intel, count: 1, memory_mib: 1}\n")
    result = subprocess.run(
        [*EGS, "exporter", "--backend", "sim", "--fleet", str(fleet)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert f"{fleet}: nodes[0].gpus[0].vendor" in result.stderr


def test_a_bad_listen_address_is_refused() -> None:
    result = subprocess.run([*EGS, "exporter", "--listen", "nowhere"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "HOST:PORT" in result.stderr


def test_without_a_driver_the_exporter_serves_self_metrics_and_fails_health(exporter: Any) -> None:
    # pynvml made unimportable, so that the NVML backend finds no driver on a GPU machine too
    url = exporter("--backend", "nvml", "--kubelet-socket", "none", "--collect-interval", "0.2", without="pynvml")
    status, body = _get(f"{url}/health")
    assert (status, body.strip()) == (503, "no GPU driver")
    status, metrics = _get(f"{url}/metrics")
    assert status == 200
    assert "egs_exporter_driver_up 0.0" in metrics
    assert "egs_exporter_snapshot_age_seconds" in metrics
    assert "DCGM_FI_" not in metrics


def test_pod_labels_come_from_a_real_kubelet_socket(exporter: Any, tmp_path: Path) -> None:
    gpu = SimBackend(DEFAULT_FLEET.nodes[0]).open().gpus[5]
    devices = protos.ContainerDevices(resource_name="nvidia.com/gpu", device_ids=[gpu.uuid])
    container = protos.ContainerResources(name="vllm", devices=[devices])
    answer = protos.ListPodResourcesResponse(
        pod_resources=[protos.PodResources(name="llama-0", namespace="serving", containers=[container])]
    )

    class Kubelet(services.PodResourcesListerServicer):  # type: ignore[misc]
        def List(self, request: Any, context: Any) -> Any:
            return answer

    socket_path = tmp_path / "kubelet.sock"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    services.add_PodResourcesListerServicer_to_server(Kubelet(), server)
    server.add_insecure_port(f"unix://{socket_path}")
    server.start()
    try:
        url = exporter("--backend", "sim", "--kubelet-socket", str(socket_path), "--collect-interval", "0.2")
        wait_http(f"{url}/health", 10)
        _, metrics = _get(f"{url}/metrics")
        held = [line for line in metrics.splitlines() if line.startswith("DCGM_FI_DEV_FB_USED{") and "pod=" in line]
        assert len(held) == 1
        assert 'gpu="5"' in held[0] and 'pod="llama-0"' in held[0] and 'namespace="serving"' in held[0]
        assert "egs_exporter_pod_attribution_up 1.0" in metrics
    finally:
        server.stop(None)
