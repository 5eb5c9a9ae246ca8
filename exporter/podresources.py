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

The message classes and the stub are generated from `podresources.proto` beside this file into
`podresources_pb2.py` and `podresources_pb2_grpc.py` (`make stubs`); they ship generated, so that
grpcio-tools, which costs ~20 MB of RSS to compile the .proto at import, is not a runtime dependency.
`tests/test_podresources_stubs.py` fails when they no longer match the .proto.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import grpc

from exporter import podresources_pb2, podresources_pb2_grpc
from exporter.attribution import DeviceAssignment, PodRef

_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""The kubelet's own PodResources client allows 16 MiB; gRPC's default of 4 MiB can be too little
on a node with many pods, since every pod is listed with its CPU and memory assignments."""


class PodResourcesUnavailable(Exception):
    """The kubelet's PodResources API gave no usable answer this cycle.

    The caller exports the GPU metrics without pod labels, logs this once rather than every cycle,
    and calls `list()` again next cycle; the client reconnects by itself.
    """


class PodResourcesClient:
    """A client of the kubelet's PodResources v1 API on one unix socket.

    One channel is kept open and reused from cycle to cycle. After any failure it is dropped and the
    next call opens a fresh one: gRPC would reconnect an old channel by itself, but only after an
    exponential backoff of up to two minutes, and a restarted kubelet should be seen next cycle.
    """

    def __init__(self, socket_path: str, timeout_s: float = 2.0) -> None:
        self._socket_path = socket_path
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._stub: Any = None

    def list(self) -> list[DeviceAssignment]:
        """Every device id that the kubelet has assigned to a running container.

        One `DeviceAssignment` per device id; entries with an empty resource name or no device ids
        are skipped. Raises PodResourcesUnavailable, and nothing else, when there is no answer.
        """
        with self._lock:
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
        """Close the channel; a later `list()` opens a new one."""
        with self._lock:
            self._drop_channel()

    def _call(self) -> Any:
        if not os.path.exists(self._socket_path):
            self._drop_channel()
            raise PodResourcesUnavailable(
                f"{self._socket_path}: no such socket (kubelet down, or the pod-resources directory not mounted)"
            )
        if self._stub is None:
            self._channel = grpc.insecure_channel(
                f"unix://{self._socket_path}",
                options=[("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES)],
            )
            self._stub = podresources_pb2_grpc.PodResourcesListerStub(self._channel)
        try:
            return self._stub.List(podresources_pb2.ListPodResourcesRequest(), timeout=self._timeout_s)
        except grpc.RpcError as e:
            # An answer that does not parse arrives here too, as INTERNAL "Exception deserializing".
            self._drop_channel()
            raise PodResourcesUnavailable(f"{self._socket_path}: {_describe(e)}") from e

    def _drop_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = None
        self._stub = None


def _describe(error: grpc.RpcError) -> str:
    if isinstance(error, grpc.Call):
        return f"{error.code().name}: {error.details()}"
    return repr(error)
