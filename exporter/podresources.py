"""Ask the kubelet which container holds which device: the PodResources v1 `List` call.

Where: the exporter's collector calls `PodResourcesClient.list()` once per collection cycle and
hands the result, with the node's GPUs, to `exporter.attribution.attribute()`, which matches device
ids to GPUs. The kubelet serves the API on a unix socket, by default
`/var/lib/kubelet/pod-resources/kubelet.sock`, which the DaemonSet mounts read-only.

Why: so that every GPU series carries the namespace, pod and container that use the GPU, as
dcgm-exporter's pod labels do; dashboards, alerts and the autoscaler group by them.

Error contract: `list()` raises only `PodResourcesUnavailable`, whatever went wrong (no socket,
kubelet down or restarting, deadline exceeded, any gRPC error, an answer that does not parse). The
GPU metrics never depend on the kubelet: the collector exports them without pod labels, logs the
failure once and calls `list()` again next cycle.

The call goes through `exporter.h2grpc` (a unary gRPC call on h2, not grpcio: see there why). The
message classes are generated from `podresources.proto` beside this file into `podresources_pb2.py`
(with `podresources_pb2_grpc.py`, the service for grpcio, which the tests' stand-in kubelet uses)
by `make stubs`; they ship generated, so that no protobuf compiler runs, or is installed, at
runtime. `tests/test_podresources_stubs.py` fails when they no longer match the .proto.
"""

from __future__ import annotations

import os

from google.protobuf.message import DecodeError

from exporter import podresources_pb2
from exporter.attribution import DeviceAssignment, PodRef
from exporter.h2grpc import GrpcError, unary_call

_LIST = "/v1.PodResourcesLister/List"
_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""The kubelet's own PodResources client allows 16 MiB; gRPC's default of 4 MiB can be too little
on a node with many pods, since every pod is listed with its CPU and memory assignments."""


class PodResourcesUnavailable(Exception):
    """The kubelet's PodResources API gave no usable answer this cycle.

    The caller exports the GPU metrics without pod labels, logs this once rather than every cycle,
    and calls `list()` again next cycle.
    """


class PodResourcesClient:
    """A client of the kubelet's PodResources v1 API on one unix socket.

    Each call opens its own connection: once per cycle, a unix-socket connect is nothing, and a
    kubelet restarted between two cycles is simply reached anew (nothing to reconnect, no backoff).
    Safe to call from several threads.
    """

    def __init__(self, socket_path: str, timeout_s: float = 2.0) -> None:
        self._socket_path = socket_path
        self._timeout_s = timeout_s

    def list(self) -> list[DeviceAssignment]:
        """Every device id that the kubelet has assigned to a running container.

        One `DeviceAssignment` per device id; entries with an empty resource name or no device ids
        are skipped. Raises PodResourcesUnavailable, and nothing else, when there is no answer.
        """
        response = self._call()
        assignments: list[DeviceAssignment] = []
        for pod in response.pod_resources:
            for container in pod.containers:
                ref = PodRef(namespace=pod.namespace, pod=pod.name, container=container.name)
                for devices in container.devices:
                    if not devices.resource_name:
                        continue
                    assignments.extend(
                        DeviceAssignment(resource=devices.resource_name, device_id=device_id, pod=ref)
                        for device_id in devices.device_ids
                        if device_id
                    )
        return assignments

    def close(self) -> None:
        """Nothing stays open between calls; kept so that callers need not know that."""

    def _call(self) -> podresources_pb2.ListPodResourcesResponse:
        if not os.path.exists(self._socket_path):
            raise PodResourcesUnavailable(
                f"{self._socket_path}: no such socket (kubelet down, or the pod-resources directory not mounted)"
            )
        request = podresources_pb2.ListPodResourcesRequest().SerializeToString()
        try:
            answer = unary_call(self._socket_path, _LIST, request, self._timeout_s, _MAX_MESSAGE_BYTES)
        except GrpcError as e:
            raise PodResourcesUnavailable(f"{self._socket_path}: {e}") from e
        try:
            return podresources_pb2.ListPodResourcesResponse.FromString(answer)
        except DecodeError as e:
            raise PodResourcesUnavailable(f"{self._socket_path}: the answer does not parse: {e}") from e
