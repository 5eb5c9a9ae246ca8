"""`egs api`: serve the endpoint API (`autoscaler.adapters.api`) with uvicorn.

Composition only: the same configuration and registry as `egs controller` (`load_config`), the
Kubernetes adapter for the cluster, and uvicorn on `--listen`. Logs go to stderr.

Bearer tokens travel in every request, so the API serves HTTPS from `--tls-cert-file` and
`--tls-key-file` (a Secret mounted by the chart), and plain HTTP only on a loopback address or when
`--insecure-http` says so (behind a TLS-terminating proxy or mesh). Both files are loaded before
anything else, so a bad one is one line naming it, not a traceback from uvicorn. The files are read
once: a renewed certificate takes effect when the pod restarts.
"""

from __future__ import annotations

import argparse
import ipaddress
import socket
import ssl
from pathlib import Path
from typing import Any

from autoscaler.adapters.api_limits import CAPACITY_TTL_S, Limits
from common.errors import InputError
from egs.arguments import number
from egs.controller_cli import add_cluster_options, add_prometheus_options, connect_prometheus, load_config


def add_parser(sub: Any) -> None:
    """Register `egs api` on the `egs` command's subparsers."""
    api = sub.add_parser(
        "api",
        description="Serve POST/GET/DELETE /v1/namespaces/{ns}/endpoints[/{name}], /openapi.json and /healthz. "
        "Callers authenticate with a Kubernetes bearer token (TokenReview) and need RBAC on inferenceendpoints in "
        "the namespace (SubjectAccessReview). HTTPS with --tls-cert-file and --tls-key-file; plain HTTP only on a "
        "loopback address or with --insecure-http.",
    )
    add_cluster_options(api)
    add_prometheus_options(
        api,
        "KAI Scheduler's shared GPUs are numbered by EGS, not by NVML's index (the GPU exporter's UUID and gpu labels)",
        "each read of the GPU indexes (every decide step)",
    )
    api.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT to serve on (default %(default)s)")
    api.add_argument("--tls-cert-file", type=Path, metavar="FILE", help="PEM certificate (chain) to serve HTTPS with")
    api.add_argument("--tls-key-file", type=Path, metavar="FILE", help="PEM private key of --tls-cert-file")
    api.add_argument(
        "--insecure-http",
        action="store_true",
        help="serve plain HTTP on a non-loopback address (bearer tokens in clear text: only behind a TLS proxy)",
    )
    api.add_argument(
        "--token-audience",
        action="append",
        default=[],
        metavar="AUDIENCE",
        help="accept only tokens issued for this audience (TokenReview spec.audiences); repeatable "
        "(default: the API server's own audiences)",
    )
    api.add_argument(
        "--capacity-ttl",
        type=number(at_least=0, unit="seconds"),
        default=CAPACITY_TTL_S,
        metavar="SECONDS",
        help="reuse the free-capacity view POSTs are answered from for this long, then rebuild it from the cluster "
        "in the background (at once when it is twice this old); 0 rebuilds it for every POST (default %(default)s)",
    )
    api.add_argument(
        "--max-body-bytes",
        type=_at_least_one,
        default=Limits.max_body_bytes,
        metavar="BYTES",
        help="answer 413 to a larger request body without reading it (default %(default)s)",
    )
    api.add_argument(
        "--token-reviews-per-second",
        type=number(above=0),
        default=Limits.reviews_per_s,
        metavar="N",
        help="TokenReviews per second for tokens not seen lately, all callers together; 429 beyond it "
        "(default %(default)s)",
    )
    api.add_argument(
        "--max-connections",
        type=_at_least_one,
        default=Limits.max_connections,
        metavar="N",
        help="connections served at once; a request beyond them is answered 503 (default %(default)s)",
    )
    api.set_defaults(run=run)


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from autoscaler.adapters.api import Services, create_app
    from autoscaler.adapters.kubernetes import Cluster
    from autoscaler.controller import owned_kinds
    from common.errors import naming
    from exporter.server import parse_listen

    with naming("--listen"):
        host, port = parse_listen(args.listen)
    tls = _tls(args.tls_cert_file, args.tls_key_file)
    if tls is None and not args.insecure_http and not is_loopback(host):
        raise InputError(
            f"{host} is not a loopback address: serve HTTPS (--tls-cert-file, --tls-key-file), or give "
            "--insecure-http when a proxy in front terminates TLS",
            source="--listen",
        )
    settings, registry, catalog = load_config(args)
    cluster = Cluster.connect(args.kubeconfig, owned_kinds=owned_kinds(settings))
    limits = Limits(
        max_body_bytes=args.max_body_bytes,
        reviews_per_s=args.token_reviews_per_second,
        max_connections=args.max_connections,
        token_audiences=tuple(args.token_audience),
    )
    prometheus = connect_prometheus(args)
    services = Services(
        cluster,
        settings,
        registry,
        catalog,
        capacity_ttl_s=args.capacity_ttl,
        limits=limits,
        gpu_indexes=prometheus.gpu_indexes if prometheus is not None else None,
    )
    app = create_app(services)
    files: dict[str, Any] = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])} if tls else {}
    uvicorn.run(app, host=host, port=port, log_level="warning", limit_concurrency=limits.max_connections, **files)
    return 0


def _tls(cert: Path | None, key: Path | None) -> tuple[Path, Path] | None:
    """The certificate and key files, checked to load together; None when neither is given."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        missing = "--tls-cert-file" if cert is None else "--tls-key-file"
        raise InputError("--tls-cert-file and --tls-key-file go together", source=missing)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except FileNotFoundError as e:
        raise InputError(f"cannot read: {e.strerror}", source=e.filename or cert) from e
    except OSError as e:  # ssl.SSLError is one: not PEM, or the key does not match the certificate
        raise InputError(f"not a usable certificate and key: {e}", source=f"{cert}, {key}") from e
    return cert, key


def is_loopback(host: str) -> bool:
    """Whether every address `host` resolves to is a loopback one (127.0.0.0/8, ::1)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return False  # uvicorn says why it cannot bind
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)
