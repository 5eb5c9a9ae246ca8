"""`egs api`: serve the endpoint API (`autoscaler.adapters.api`) with uvicorn.

Composition only: the same configuration and registry as `egs controller` (`load_config`), the
Kubernetes adapter for the cluster, and uvicorn on `--listen`. Logs go to stderr.
"""

from __future__ import annotations

import argparse
from typing import Any

from autoscaler.admission import CAPACITY_TTL_S
from egs.arguments import number
from egs.controller_cli import add_cluster_options, load_config


def add_parser(sub: Any) -> None:
    """Register `egs api` on the `egs` command's subparsers."""
    api = sub.add_parser(
        "api",
        help="serve the endpoint API: POST an endpoint, get 201 or 202 Accepted with its estimated ready time",
        description="Serve POST/GET/DELETE /v1/namespaces/{ns}/endpoints[/{name}] and /openapi.json. Callers "
        "authenticate with a Kubernetes bearer token (TokenReview) and need RBAC on inferenceendpoints in the "
        "namespace (SubjectAccessReview).",
    )
    add_cluster_options(api)
    api.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT to serve on (default %(default)s)")
    api.add_argument(
        "--capacity-ttl",
        type=number(at_least=0, unit="seconds"),
        default=CAPACITY_TTL_S,
        metavar="SECONDS",
        help="reuse the free-capacity view POSTs are answered from for this long, then rebuild it from the cluster "
        "in the background; 0 rebuilds it for every POST (default %(default)s)",
    )
    api.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from autoscaler.adapters.api import Services, create_app
    from autoscaler.adapters.kubernetes import Cluster
    from autoscaler.controller import owned_kinds
    from common.errors import naming
    from exporter.server import parse_listen

    with naming("--listen"):
        host, port = parse_listen(args.listen)
    settings, registry, catalog = load_config(args)
    cluster = Cluster.connect(args.kubeconfig, owned_kinds=owned_kinds(settings))
    app = create_app(Services(cluster, settings, registry, catalog, capacity_ttl_s=args.capacity_ttl))
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0
