"""One unary gRPC call over HTTP/2 on a unix socket: all that the exporter asks of the kubelet.

Where: `exporter.podresources.PodResourcesClient` calls `unary_call()` once per collection cycle.

Why not grpcio: importing it costs ~14 MB of RSS (a 17 MB C extension, asyncio, its own TLS) on
every GPU node, a third of the exporter's 40 MB budget, to make one call every 10 s. h2
(python-hyper's HTTP/2 state machine, under 1 MB) does the framing and flow control; this module
adds the few rules gRPC sets on top (grpc/grpc: doc/PROTOCOL-HTTP2.md): a POST to
`/package.Service/Method` with `content-type: application/grpc` and `te: trailers`, each message
prefixed by a compressed-flag byte and a 4-byte big-endian length, and the outcome in the
`grpc-status` and `grpc-message` trailers (or in the headers of a trailers-only answer). The tests
run it against grpcio's own server.

Errors: every failure raises `GrpcError`, whose `code` is a gRPC status name: UNAVAILABLE (no
socket, nobody listening, the connection dropped), DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED (an answer
over the size limit), INTERNAL (the server broke HTTP/2 or gRPC framing), or whatever status the
server sent.
"""

from __future__ import annotations

import socket
import time
import urllib.parse

import h2.config
import h2.connection
import h2.events
import h2.exceptions

STATUS_NAMES = (
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
)
"""gRPC status codes by number (grpc/grpc: doc/statuscodes.md)."""

_READ_BYTES = 65536


class GrpcError(Exception):
    """A gRPC call that gave no answer; `code` is the status name, `details` why."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details


def unary_call(socket_path: str, method: str, request: bytes, timeout_s: float, max_response_bytes: int) -> bytes:
    """Send one serialized request to `method` (`/package.Service/Method`) and return the answer's bytes."""
    deadline = time.monotonic() + timeout_s
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(socket_path)
        except TimeoutError as e:
            raise GrpcError("DEADLINE_EXCEEDED", f"connecting to {socket_path} took over {timeout_s:g}s") from e
        except OSError as e:
            raise GrpcError("UNAVAILABLE", f"cannot connect to {socket_path}: {e.strerror or e}") from e
        call = _Call(sock, deadline, max_response_bytes)
        return call.run(method, request, timeout_s)


class _Call:
    """One stream on one connection, driven until the server ends it."""

    def __init__(self, sock: socket.socket, deadline: float, max_response_bytes: int) -> None:
        self._sock = sock
        self._deadline = deadline
        self._max = max_response_bytes
        self._conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self._body = bytearray()
        self._meta: dict[str, str] = {}
        self._ended = False

    def run(self, method: str, request: bytes, timeout_s: float) -> bytes:
        conn = self._conn
        conn.initiate_connection()
        # Room for the whole answer at once: the kubelet need not wait for window updates.
        conn.increment_flow_control_window(self._max)
        stream = conn.get_next_available_stream_id()
        conn.send_headers(
            stream,
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", method),
                (":authority", "localhost"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
                ("grpc-timeout", f"{max(1, int(timeout_s * 1000))}m"),
            ],
        )
        conn.increment_flow_control_window(self._max, stream_id=stream)
        conn.send_data(stream, _frame(request), end_stream=True)
        self._flush()
        while not self._ended:
            self._receive(stream)
        try:
            conn.close_connection()
            self._flush()
        except OSError:
            pass  # the answer is in; a server that already hung up costs nothing
        return self._answer()

    def _receive(self, stream: int) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise GrpcError("DEADLINE_EXCEEDED", "no answer within the deadline")
        self._sock.settimeout(remaining)
        try:
            data = self._sock.recv(_READ_BYTES)
        except TimeoutError as e:
            raise GrpcError("DEADLINE_EXCEEDED", "no answer within the deadline") from e
        except OSError as e:
            raise GrpcError("UNAVAILABLE", f"connection failed: {e.strerror or e}") from e
        if not data:
            raise GrpcError("UNAVAILABLE", "the server closed the connection before answering")
        try:
            events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            raise GrpcError("INTERNAL", f"the server broke HTTP/2: {e}") from e
        for event in events:
            self._handle(event, stream)
        self._flush()

    def _handle(self, event: h2.events.Event, stream: int) -> None:
        if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
            self._meta.update((str(k), str(v)) for k, v in event.headers or ())
        elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream:
            self._body += event.data or b""
            if len(self._body) > self._max + 5:
                raise GrpcError("RESOURCE_EXHAUSTED", f"the answer is over {self._max} bytes")
        elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
            self._ended = True
        elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream:
            raise GrpcError("UNAVAILABLE", f"the server reset the call (HTTP/2 error {event.error_code})")
        elif isinstance(event, h2.events.ConnectionTerminated) and not self._ended:
            raise GrpcError("UNAVAILABLE", f"the server went away (GOAWAY, HTTP/2 error {event.error_code})")

    def _flush(self) -> None:
        out = self._conn.data_to_send()
        if out:
            try:
                self._sock.sendall(out)
            except OSError as e:
                raise GrpcError("UNAVAILABLE", f"connection failed: {e.strerror or e}") from e

    def _answer(self) -> bytes:
        if self._meta.get(":status", "200") != "200":
            raise GrpcError("UNAVAILABLE", f"HTTP status {self._meta[':status']}")
        status = self._meta.get("grpc-status")
        if status is None:
            raise GrpcError("INTERNAL", "the answer has no grpc-status")
        if status != "0":
            code = STATUS_NAMES[int(status)] if status.isdigit() and int(status) < len(STATUS_NAMES) else "UNKNOWN"
            raise GrpcError(code, urllib.parse.unquote(self._meta.get("grpc-message", "")))
        body = bytes(self._body)
        if len(body) < 5 or body[0] != 0:
            raise GrpcError("INTERNAL", "the answer is not one uncompressed gRPC message")
        length = int.from_bytes(body[1:5], "big")
        if length != len(body) - 5:
            raise GrpcError("INTERNAL", f"the answer says {length} bytes and carries {len(body) - 5}")
        return body[5:]


def _frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: not compressed, then its length in 4 big-endian bytes."""
    return b"\x00" + len(message).to_bytes(4, "big") + message
