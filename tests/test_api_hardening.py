"""The endpoint API under hostile or failing conditions: what a caller can cost, and what a
Kubernetes error becomes.

Covers: a body over the limit is answered 413 before it is read and before any TokenReview (declared
by Content-Length, and chunked), and a 300 MB one leaves the real process's RSS where it was; a flood
of made-up tokens costs at most the rate limit's TokenReviews, is answered 429 beyond it, keeps the
cache bounded and keyed by a hash, and does not lock out a caller already reviewed; every Kubernetes
error during review, create and status write is a 4xx or 503 with the API server's message and no
traceback; a POST whose status write fails leaves nothing (or, when the rollback fails too, a retry
that answers as the first POST would, not 409); TokenReview audiences; HTTPS from a self-signed
certificate made here, and plain HTTP refused off loopback; connections beyond `--max-connections`
answered 503. Skips: certificate rotation (files are
read once, at start).
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from autoscaler.adapters.api import Services, create_app
from autoscaler.adapters.api_limits import Limits
from autoscaler.adapters.kubernetes import Cluster
from egs.cli import main
from localplay.kube_standin import KubeCluster
from localplay.localstack import free_port
from tests.conftest import REPO
from tests.test_decide import CATALOG, REGISTRY, SETTINGS, endpoint, h100
from tests.test_endpoint_api import ALICE, ENDPOINTS, NOW, body, post

SMALL = Limits(max_body_bytes=4096, reviews_per_s=1.0, review_burst=5, cached_answers=50)


@pytest.fixture
def kube() -> Iterator[KubeCluster]:
    cluster = KubeCluster().start()
    cluster.emulator.tokens["t-alice"] = ("alice", ("team-a",))
    for verb in ("create", "get", "list", "delete"):
        cluster.emulator.grants.add(("alice", verb, "team-a"))
    yield cluster
    cluster.stop()


def app(kube: KubeCluster, limits: Limits = SMALL, clock: Callable[[], float] = lambda: NOW) -> TestClient:
    services = Services(Cluster(kube.api_client()), SETTINGS, REGISTRY, CATALOG, clock=clock, limits=limits)
    return TestClient(create_app(services), raise_server_exceptions=False)


def reviews(kube: KubeCluster) -> int:
    return sum(1 for r in kube.requests("POST") if r.url.path.endswith("/tokenreviews"))


# -- the body limit ------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413_before_any_token_review(kube: KubeCluster) -> None:
    api = app(kube)
    declared = api.post("/v1/namespaces/team-a/endpoints", content=b"x" * 5000, headers=ALICE)
    chunked = api.post(
        "/v1/namespaces/team-a/endpoints", content=iter([b"{" + b" " * 3000, b" " * 3000]), headers=ALICE
    )
    for answer in (declared, chunked):
        assert answer.status_code == 413, answer.text
        assert answer.json() == {"detail": "the body is larger than 4096 bytes", "field": None}
    assert reviews(kube) == 0 and kube.all(ENDPOINTS) == []
    assert post(api, body()).status_code == 202  # a body within the limit, chunked or not, is read as before
    assert api.post("/v1/namespaces/team-a/endpoints", content=iter([b"{}"]), headers=ALICE).status_code == 422


# -- token floods ----------------------------------------------------------------------------------


def test_a_flood_of_made_up_tokens_costs_at_most_the_rate_limits_reviews(kube: KubeCluster) -> None:
    clock = [NOW]
    api = app(kube, clock=lambda: clock[0])
    assert api.get("/v1/namespaces/team-a/endpoints", headers=ALICE).status_code == 200  # reviewed, cached
    codes = [api.get("/v1/namespaces/team-a/endpoints", headers={"Authorization": f"Bearer f{i}"}).status_code
             for i in range(300)]  # fmt: skip
    assert codes == [401] * 4 + [429] * 296  # the burst of 5 less alice's, then nothing is reviewed
    assert reviews(kube) == 5
    assert api.get("/v1/namespaces/team-a/endpoints", headers=ALICE).status_code == 200  # alice is still served
    limited = api.get("/v1/namespaces/team-a/endpoints", headers={"Authorization": "Bearer f999"})
    assert limited.headers["Retry-After"] == "1"
    clock[0] += 2  # the bucket refills at 1 review per second
    assert [api.get("/healthz").status_code] == [200]  # no token, no review
    assert api.get("/v1/namespaces/team-a/endpoints", headers={"Authorization": "Bearer f1000"}).status_code == 401
    assert reviews(kube) == 6


def test_the_review_cache_is_bounded(kube: KubeCluster) -> None:
    clock = [NOW]
    api = app(kube, clock=lambda: clock[0])
    kube.emulator.tokens |= {f"t{i}": (f"u{i}", ()) for i in range(60)}
    kube.emulator.grants |= {(f"u{i}", "list", "team-a") for i in range(60)}

    def ask(i: int) -> None:
        clock[0] += 1  # within the rate limit, and the answers (10 s) still fresh
        answer = api.get("/v1/namespaces/team-a/endpoints", headers={"Authorization": f"Bearer t{i}"})
        assert answer.status_code == 200

    for i in range(55):
        ask(i)
    clock[0] -= 55  # back in time: every answer would still be fresh, if kept
    reviewed = reviews(kube)
    ask(54)
    assert reviews(kube) == reviewed  # the most recent is kept
    ask(0)
    assert reviews(kube) == reviewed + 1  # the oldest went: SMALL keeps 50


# -- Kubernetes errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path_part", "status", "expected"),
    [
        ("POST", "/tokenreviews", 500, 503),
        ("POST", "/tokenreviews", 403, 503),  # the API's own ServiceAccount may not review tokens
        ("POST", "/tokenreviews", 400, 401),
        ("POST", "/subjectaccessreviews", 429, 503),
        ("GET", "/nodes", 500, 503),
        ("POST", "/inferenceendpoints", 404, 404),  # the namespace does not exist
        ("POST", "/inferenceendpoints", 422, 422),  # the API server's own validation
        ("POST", "/inferenceendpoints", 410, 503),  # anything else it answers
        ("PATCH", "/status", 500, 503),
        ("PATCH", "/status", 404, 404),  # deleted between create and status write
    ],
)
def test_every_kubernetes_error_is_a_4xx_or_503_without_a_traceback(
    kube: KubeCluster, method: str, path_part: str, status: int, expected: int
) -> None:
    api = app(kube, Limits())
    kube.fail(method, status, times=5, path_part=path_part)
    answer = post(api, body())
    assert answer.status_code == expected, answer.text
    assert "Traceback" not in answer.text and answer.json()["detail"]
    if expected == 503:
        assert answer.headers["Retry-After"] == "10"
    assert kube.all(ENDPOINTS) == []  # nothing half made


def test_errors_of_reads_and_deletes_are_mapped_too(kube: KubeCluster) -> None:
    api = app(kube, Limits())
    kube.fail("GET", 500, path_part="/inferenceendpoints")
    assert api.get("/v1/namespaces/team-a/endpoints", headers=ALICE).status_code == 503
    kube.put(ENDPOINTS, endpoint("chat"))
    kube.fail("DELETE", 409, path_part="/inferenceendpoints")
    answer = api.delete("/v1/namespaces/team-a/endpoints/chat", headers=ALICE)
    assert answer.status_code == 503 and "Traceback" not in answer.text


# -- a POST that fails midway ----------------------------------------------------------------------


def test_a_post_whose_status_write_fails_leaves_nothing_and_its_retry_succeeds(kube: KubeCluster) -> None:
    api = app(kube, Limits())
    kube.fail("PATCH", 503, path_part="/status")  # the apply's retries are for 409 only
    assert post(api, body()).status_code == 503
    assert kube.all(ENDPOINTS) == []
    again = post(api, body())
    assert again.status_code == 202 and again.json()["estimatedReadyTime"]


def test_when_the_rollback_fails_too_the_retry_completes_the_endpoint_instead_of_409(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    api = app(kube, Limits())
    first_clean = app(kube, Limits())
    kube.fail("PATCH", 503, path_part="/status")
    kube.fail("DELETE", 503, path_part="/inferenceendpoints")
    assert post(api, body()).status_code == 503
    (left,) = kube.all(ENDPOINTS)
    assert not left.get("status")  # created, without a promise
    again = post(api, body())
    assert again.status_code == 201, again.text  # what the first POST would have answered
    assert again.headers["Location"] == "/v1/namespaces/team-a/endpoints/chat"
    assert kube.get(ENDPOINTS, "team-a", "chat")["status"]["phase"] == again.json()["phase"]  # type: ignore[index]
    other = post(first_clean, body(qualityFloor=1.0))
    assert other.status_code == 409  # another spec under the same name is still a conflict
    assert post(first_clean, body()).status_code == 409  # and so is the same spec once it has its promise


# -- TokenReview audiences -------------------------------------------------------------------------


def test_a_token_is_reviewed_for_the_configured_audiences(kube: KubeCluster) -> None:
    kube.emulator.audiences["t-alice"] = ("egs-api",)
    kube.emulator.tokens["t-other"] = ("alice", ("team-a",))
    kube.emulator.audiences["t-other"] = ("vault",)
    api = app(kube, Limits(token_audiences=("egs-api",)))
    assert api.get("/v1/namespaces/team-a/endpoints", headers=ALICE).status_code == 200
    assert api.get("/v1/namespaces/team-a/endpoints", headers={"Authorization": "Bearer t-other"}).status_code == 401
    (review, *_) = [r for r in kube.requests("POST") if r.url.path.endswith("/tokenreviews")]
    assert review.data["spec"]["audiences"] == ["egs-api"]


# -- the real process: memory, TLS -----------------------------------------------------------------


def start_api(kube: KubeCluster, workdir: Path, *options: str) -> tuple[subprocess.Popen[bytes], int]:
    config = workdir / "egs.yaml"
    config.write_text(yaml.safe_dump({"gpu_classes": {"H100-80GB": {"gpus_per_node": 8}}}))
    port = free_port()
    args = ["--kubeconfig", str(kube.kubeconfig(workdir / "kubeconfig")), "--config", str(config)]
    args += ["--models", str(REPO / "examples" / "models.yaml"), "--listen", f"127.0.0.1:{port}", *options]
    log = (workdir / "api.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "egs.cli", "api", *args], stdout=log, stderr=subprocess.STDOUT)
    return proc, port


def wait_ready(url: str, proc: subprocess.Popen[bytes], verify: Any = True) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"egs api exited with {proc.returncode}"
        try:
            if httpx.get(f"{url}/healthz", verify=verify, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} not ready")


def rss_kib(pid: int, field: str = "VmHWM") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(field)


def send_huge_body(port: int, chunked: bool, total: int = 300_000_000) -> bytes:
    """POST `total` bytes of body from one thread while this one reads the answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    framing = b"Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}".encode()
    sock.sendall(
        b"POST /v1/namespaces/team-a/endpoints HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t-alice\r\n"
        b"Content-Type: application/json\r\n" + framing + b"\r\n\r\n"
    )
    piece = b"x" * (1 << 20)
    frame = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece

    def pour() -> None:
        try:
            for _ in range(total // len(piece)):
                sock.sendall(frame)
        except OSError:
            pass  # the server answered and closed: what is measured

    writer = threading.Thread(target=pour, daemon=True)
    writer.start()
    answer = b""
    try:
        while b"\r\n\r\n" not in answer:
            got = sock.recv(65536)
            if not got:
                break
            answer += got
    finally:
        writer.join(30)
        sock.close()
    return answer


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_300_mb_body_leaves_the_real_process_rss_where_it_was(
    kube: KubeCluster, tmp_path: Path, chunked: bool
) -> None:
    proc, port = start_api(kube, tmp_path)
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        before = rss_kib(proc.pid)
        answer = send_huge_body(port, chunked)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        grown_mib = (rss_kib(proc.pid) - before) / 1024
        assert grown_mib < 16, f"peak RSS grew by {grown_mib:.0f} MiB"  # was 154 -> 975 MB
        assert reviews(kube) == 0
    finally:
        proc.terminate()
        proc.wait(10)


def test_connections_beyond_the_limit_are_answered_503(kube: KubeCluster, tmp_path: Path) -> None:
    proc, port = start_api(kube, tmp_path, "--max-connections", "3")
    idle: list[socket.socket] = []
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        time.sleep(0.5)  # the server has accepted them
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 503
        for s in idle:
            s.close()
        time.sleep(0.5)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)


def self_signed(workdir: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl binary to make a certificate with")
    cert, key = workdir / "tls.crt", workdir / "tls.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_https_is_served_from_the_certificate_files(kube: KubeCluster, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    proc, port = start_api(kube, tmp_path, "--tls-cert-file", str(cert), "--tls-key-file", str(key))
    try:
        wait_ready(f"https://127.0.0.1:{port}", proc, verify=ssl.create_default_context(cafile=str(cert)))
        answer = httpx.get(
            f"https://127.0.0.1:{port}/v1/namespaces/team-a/endpoints",
            headers=ALICE,
            verify=ssl.create_default_context(cafile=str(cert)),
        )
        assert answer.status_code == 200 and answer.json() == {"items": []}
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)  # no plain HTTP beside it
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--listen", "0.0.0.0:8443"], "--listen: 0.0.0.0 is not a loopback address: serve HTTPS"),
        (["--listen", "[::]:8443"], "--listen: :: is not a loopback address"),
        (["--tls-cert-file", "{cert}"], "--tls-key-file: --tls-cert-file and --tls-key-file go together"),
        (["--tls-cert-file", "{key}", "--tls-key-file", "{key}"], "not a usable certificate and key"),
        (["--tls-cert-file", "{dir}/none.crt", "--tls-key-file", "{key}"], "none.crt: cannot read: No such file"),
    ],
)
def test_plain_http_off_loopback_and_bad_certificates_are_refused_in_one_line(
    tmp_path: Path, capsys: Any, options: list[str], message: str
) -> None:
    cert, key = self_signed(tmp_path)
    argv = [o.format(cert=cert, key=key, dir=tmp_path) for o in options]
    assert main(["api", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("egs: error: ") and message in err and "Traceback" not in err


def test_insecure_http_is_allowed_off_loopback_when_asked_for(capsys: Any) -> None:
    assert main(["api", "--listen", "0.0.0.0:8443", "--insecure-http"]) == 2
    assert "a model registry is needed" in capsys.readouterr().err  # past the loopback check, to the next


def test_a_loopback_address_is_one_every_resolved_address_of_is() -> None:
    from egs.api_cli import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("no-such-host.invalid")
