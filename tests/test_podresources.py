"""The kubelet PodResources client against a real gRPC server on a unix socket.

Each test starts a `grpc.server` that plays the kubelet, built from the same .proto the client
compiles, and checks that a good answer becomes the right DeviceAssignments (and, through
`attribute()`, the right GPUs), and that every way the kubelet can fail ends in
PodResourcesUnavailable, never in a gRPC exception, within the client's timeout.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import DecodeError

from exporter import podresources_pb2 as pb2
from exporter import podresources_pb2_grpc as services
from exporter.attribution import DeviceAssignment, PodRef, attribute
from exporter.gpu import GpuIdentity
from exporter.h2grpc import GrpcError
from exporter.podresources import PodResourcesClient, PodResourcesUnavailable

TIMEOUT_S = 0.5
# For the tests of what a failed answer says: under load a 0.5 s deadline can pass first and say another cause.
PATIENT_TIMEOUT_S = 5.0
GARBAGE = b"\xff\xff\xff garbage"

GPU0_UUID = "GPU-0a0a0a0a-1111-2222-3333-444444444444"
GPU1_UUID = "GPU-1b1b1b1b-1111-2222-3333-444444444444"
GPU2_UUID = "GPU-2c2c2c2c-1111-2222-3333-444444444444"
MIG_UUID = "MIG-9d9d9d9d-5555-6666-7777-888888888888"
AMD_PCI = "0000:c1:00.0"

TRAINER = PodRef("ml", "trainer-0", "main")
CHAT_A = PodRef("serving", "chat-a", "vllm")
CHAT_B = PodRef("serving", "chat-b", "vllm")
NOTEBOOK = PodRef("research", "notebook", "jupyter")
ROCM = PodRef("ml", "rocm-job", "worker")

NODE_GPUS = [
    GpuIdentity(0, GPU0_UUID, "00000000:3B:00.0", "NVIDIA H100", "nvidia", "nvidia0", "550.54"),
    GpuIdentity(1, GPU1_UUID, "00000000:5E:00.0", "NVIDIA H100", "nvidia", "nvidia1", "550.54"),
    GpuIdentity(
        2,
        GPU2_UUID,
        "00000000:86:00.0",
        "NVIDIA A100",
        "nvidia",
        "nvidia2",
        "550.54",
        instance_profile="1g.10gb",
        instance_id="3",
        instance_uuid=MIG_UUID,
    ),
    GpuIdentity(3, "amd-3", "0000:C1:00.0", "AMD Instinct MI300X", "amd", "card3", "6.8.5"),
]


def _devices(resource: str, *ids: str) -> Any:
    return pb2.ContainerDevices(resource_name=resource, device_ids=list(ids))


def _pod(ref: PodRef, *devices: Any) -> Any:
    container = pb2.ContainerResources(name=ref.container, devices=list(devices))
    return pb2.PodResources(name=ref.pod, namespace=ref.namespace, containers=[container])


KUBELET_ANSWER = pb2.ListPodResourcesResponse(
    pod_resources=[
        _pod(TRAINER, _devices("nvidia.com/gpu", GPU0_UUID)),
        # Time-slicing: two replicas of one GPU, told apart by the `::N` suffix.
        _pod(CHAT_A, _devices("nvidia.com/gpu", f"{GPU1_UUID}::0")),
        _pod(CHAT_B, _devices("nvidia.com/gpu", f"{GPU1_UUID}::1")),
        _pod(NOTEBOOK, _devices("nvidia.com/mig-1g.10gb", MIG_UUID)),
        _pod(
            ROCM,
            _devices("amd.com/gpu", AMD_PCI),
            _devices("", "orphan-id"),
            _devices("example.com/nic"),
        ),
        pb2.PodResources(name="web", namespace="default", containers=[pb2.ContainerResources(name="nginx")]),
    ]
)


class FakeKubelet:
    """Answers `List` as the kubelet would; registered with the generated `add_..._to_server`."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def List(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.answer


ServerFactory = Callable[[Callable[[grpc.Server], None]], grpc.Server]


@pytest.fixture
def socket_path(tmp_path: Path) -> str:
    return str(tmp_path / "kubelet.sock")


@pytest.fixture
def serve(socket_path: str) -> Iterator[ServerFactory]:
    """Start a server on `socket_path` with whatever `register` adds to it; stopped at teardown."""
    servers: list[grpc.Server] = []

    def start(register: Callable[[grpc.Server], None]) -> grpc.Server:
        server = grpc.server(ThreadPoolExecutor(max_workers=2))
        register(server)
        server.add_insecure_port(f"unix://{socket_path}")
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(grace=None).wait()


def kubelet(answer: Any = KUBELET_ANSWER) -> Callable[[grpc.Server], None]:
    return lambda server: services.add_PodResourcesListerServicer_to_server(FakeKubelet(answer), server)


def list_handler(
    behaviour: Callable[[bytes, grpc.ServicerContext], bytes], response: bytes | None = None
) -> Callable[[grpc.Server], None]:
    """A raw handler for `/v1.PodResourcesLister/List`, for servers that misbehave."""
    handler = grpc.unary_unary_rpc_method_handler(
        behaviour, response_serializer=(lambda _: response) if response is not None else None
    )
    generic = grpc.method_handlers_generic_handler("v1.PodResourcesLister", {"List": handler})
    return lambda server: server.add_generic_rpc_handlers((generic,))


@pytest.fixture
def client(socket_path: str) -> Iterator[PodResourcesClient]:
    c = PodResourcesClient(socket_path, timeout_s=TIMEOUT_S)
    yield c
    c.close()


@pytest.fixture
def patient_client(socket_path: str) -> Iterator[PodResourcesClient]:
    c = PodResourcesClient(socket_path, timeout_s=PATIENT_TIMEOUT_S)
    yield c
    c.close()


def leave_stale_socket(path: str) -> None:
    """What a kubelet that died without cleaning up leaves behind: a socket file nobody listens on."""
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()


def assert_unavailable_in_time(client: PodResourcesClient, timeout_s: float = TIMEOUT_S) -> PodResourcesUnavailable:
    started = time.monotonic()
    with pytest.raises(PodResourcesUnavailable) as caught:
        client.list()
    assert time.monotonic() - started < timeout_s + 1
    return caught.value


def test_lists_one_assignment_per_device_id_and_skips_empty_entries(serve, client):
    serve(kubelet())

    assert client.list() == [
        DeviceAssignment("nvidia.com/gpu", GPU0_UUID, TRAINER),
        DeviceAssignment("nvidia.com/gpu", f"{GPU1_UUID}::0", CHAT_A),
        DeviceAssignment("nvidia.com/gpu", f"{GPU1_UUID}::1", CHAT_B),
        DeviceAssignment("nvidia.com/mig-1g.10gb", MIG_UUID, NOTEBOOK),
        DeviceAssignment("amd.com/gpu", AMD_PCI, ROCM),
    ]


def test_a_container_with_several_gpus_gets_one_assignment_each(serve, client):
    answer = pb2.ListPodResourcesResponse(pod_resources=[_pod(TRAINER, _devices("nvidia.com/gpu", "0", "1"))])
    serve(kubelet(answer))

    assert client.list() == [
        DeviceAssignment("nvidia.com/gpu", "0", TRAINER),
        DeviceAssignment("nvidia.com/gpu", "1", TRAINER),
    ]


def test_nvidia_uuids_mig_uuids_and_amd_pci_ids_attribute_to_the_right_gpus(serve, client):
    serve(kubelet())

    assert attribute(NODE_GPUS, client.list()) == {
        "0": [TRAINER],
        "1": [CHAT_A, CHAT_B],
        "2/3": [NOTEBOOK],
        "3": [ROCM],
    }


def test_an_empty_node_lists_nothing(serve, client):
    serve(kubelet(pb2.ListPodResourcesResponse()))

    assert client.list() == []


def test_missing_socket_is_unavailable_not_a_crash(client, socket_path):
    error = assert_unavailable_in_time(client)

    assert socket_path in str(error)


def test_stale_socket_with_nobody_listening_is_unavailable(client, socket_path):
    leave_stale_socket(socket_path)

    error = assert_unavailable_in_time(client)

    assert isinstance(error.__cause__, GrpcError) and error.__cause__.code == "UNAVAILABLE"


def test_an_answer_that_does_not_parse_is_unavailable(serve, patient_client):
    with pytest.raises(DecodeError):
        pb2.ListPodResourcesResponse.FromString(GARBAGE)
    serve(list_handler(lambda request, context: b"", response=GARBAGE))

    error = assert_unavailable_in_time(patient_client, PATIENT_TIMEOUT_S)

    assert isinstance(error.__cause__, DecodeError)


@pytest.mark.parametrize("code", [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL])
def test_an_error_status_from_the_kubelet_is_unavailable(serve, patient_client, code):
    def fail(request, context):  # untyped: mypy cannot see that abort() never returns
        context.abort(code, "kubelet is unwell")

    serve(list_handler(fail))

    error = assert_unavailable_in_time(patient_client, PATIENT_TIMEOUT_S)

    assert code.name in str(error)
    assert "kubelet is unwell" in str(error)


def test_a_kubelet_that_does_not_answer_in_time_is_unavailable(serve, client):
    release = threading.Event()

    def hang(request: bytes, context: grpc.ServicerContext) -> bytes:
        release.wait(3)
        return b""

    serve(list_handler(hang))
    try:
        error = assert_unavailable_in_time(client)
    finally:
        release.set()

    assert grpc.StatusCode.DEADLINE_EXCEEDED.name in str(error)


def test_the_client_recovers_when_the_kubelet_restarts_on_the_same_socket(serve, client, socket_path):
    first = serve(kubelet())
    assert client.list()

    first.stop(grace=None).wait()
    assert_unavailable_in_time(client)
    leave_stale_socket(socket_path)
    assert_unavailable_in_time(client)

    serve(kubelet())
    assert client.list()


def test_a_kubelet_restart_between_two_cycles_goes_unnoticed(serve, client):
    first = serve(kubelet())
    assert client.list() == client.list()

    first.stop(grace=None).wait()
    serve(kubelet())

    assert len(client.list()) == 5


def test_close_then_list_opens_a_new_channel(serve, client):
    serve(kubelet())
    client.list()

    client.close()

    assert len(client.list()) == 5


def test_a_large_answer_arrives_whole(serve, client):
    """A node with many pods answers in many HTTP/2 frames, past the default 64 KiB window."""
    pods = [_pod(PodRef("ns", f"pod-{i}", "c"), _devices("nvidia.com/gpu", f"GPU-{i:040d}")) for i in range(20000)]
    answer = pb2.ListPodResourcesResponse(pod_resources=pods)
    assert answer.ByteSize() > 1024 * 1024
    serve(kubelet(answer))

    assignments = client.list()

    assert len(assignments) == 20000 and assignments[-1].device_id == f"GPU-{19999:040d}"


def test_an_answer_over_16_mib_is_unavailable_not_read_whole(serve, patient_client):
    serve(list_handler(lambda request, context: b"", response=b"\x0a" * (17 * 1024 * 1024)))

    error = assert_unavailable_in_time(patient_client, PATIENT_TIMEOUT_S)

    assert "RESOURCE_EXHAUSTED" in str(error)
