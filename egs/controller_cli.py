"""`egs controller`: run the InferenceEndpoint operator against a cluster and a Prometheus.

Composition only: it reads the configuration (`autoscaler.config`) and the model registry, connects
the Kubernetes adapter (`--kubeconfig`, else in-cluster, else ~/.kube/config) and the Prometheus
adapter, serves the controller's own series on `--metrics-listen`, and runs `autoscaler.controller`
every `--interval` seconds until SIGTERM. `egs api` loads its configuration with `load_config` too.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from common.errors import InputError, SetupError, TemporaryError, naming
from egs.arguments import POSITIVE

if TYPE_CHECKING:  # `egs controller --help` and `egs api --help` load none of these (and not scipy)
    from autoscaler.adapters.prometheus import PrometheusMetrics
    from autoscaler.decide import Settings
    from scheduler.catalog import Catalog
    from scheduler.registry import Registry

log = logging.getLogger("egs.controller")


def add_parser(sub: Any) -> None:
    """Register `egs controller` on the `egs` command's subparsers."""
    ctl = sub.add_parser(
        "controller",
        description="Every --interval seconds: read the cluster's GPU nodes, InferenceEndpoints and the objects "
        "EGS owns, and each model's demand, queue and KV cache from Prometheus; decide each endpoint's variant, "
        "GPU class and replicas and each GPU class's warm pool; server-side apply what differs. One replica "
        "writes (a Lease elects it). Missing or stale metrics never scale anything down.",
    )
    add_cluster_options(ctl)
    ctl.add_argument("--interval", type=POSITIVE, default=30.0, help="seconds between loops (default %(default)s)")
    ctl.add_argument("--dry-run", action="store_true", help="decide and log what would be written; write nothing")
    ctl.add_argument(
        "--metrics-listen",
        default="127.0.0.1:9402",
        help="HOST:PORT for the controller's /metrics, /healthz and /readyz (default %(default)s)",
    )
    ctl.add_argument("--identity", help="this replica's name in the Lease (default: $POD_NAME, else host-pid)")
    lease = ctl.add_argument_group("leader election (client-go's defaults)")
    lease.add_argument(
        "--lease-duration",
        type=POSITIVE,
        default=15.0,
        metavar="SECONDS",
        help="how long another replica waits, from when it saw the last renewal, before it takes "
        "the Lease (default %(default)s)",
    )
    lease.add_argument(
        "--renew-deadline",
        type=POSITIVE,
        default=10.0,
        metavar="SECONDS",
        help="how long the leader keeps writing without renewing; less than the Lease (default %(default)s)",
    )
    lease.add_argument(
        "--retry-period",
        type=POSITIVE,
        default=2.0,
        metavar="SECONDS",
        help="seconds between two attempts to acquire or renew the Lease (default %(default)s)",
    )
    add_prometheus_options(
        ctl, "every endpoint keeps its replicas", "all of one loop's reads, without retries; less than --renew-deadline"
    )
    ctl.add_argument(
        "--once",
        action="store_true",
        help="run one loop, print its outcome as JSON, and exit (a Lease no controller renews is taken once it "
        "has run out)",
    )
    ctl.set_defaults(run=run)


def add_prometheus_options(parser: argparse.ArgumentParser, without: str, deadline: str) -> None:
    """The Prometheus options `egs controller` and `egs api` share: `without` says what happens with no URL,
    `deadline` what `--prometheus-timeout` bounds."""
    parser.add_argument(
        "--prometheus", metavar="URL", help=f"Prometheus (or Thanos, Mimir) query URL; without it, {without}"
    )
    prom = parser.add_argument_group("Prometheus")
    prom.add_argument(
        "--prometheus-timeout",
        type=POSITIVE,
        default=5.0,
        metavar="SECONDS",
        help=f"deadline for {deadline} (default %(default)s)",
    )
    prom.add_argument(
        "--prometheus-ca-file",
        type=Path,
        metavar="FILE",
        help="CA bundle that signs an https Prometheus' certificate (default: the system's)",
    )
    prom.add_argument(
        "--prometheus-insecure-skip-verify",
        action="store_true",
        help="do not verify an https Prometheus' certificate (TLS is verified by default)",
    )


def connect_prometheus(args: argparse.Namespace) -> PrometheusMetrics | None:
    """The Prometheus of `add_prometheus_options`, None without `--prometheus`."""
    from autoscaler.adapters.prometheus import PrometheusMetrics

    if not args.prometheus:
        return None
    verify = not args.prometheus_insecure_skip_verify
    return PrometheusMetrics(args.prometheus, args.prometheus_timeout, args.prometheus_ca_file, verify)


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """The options `egs controller` and `egs api` share: the cluster and the configuration."""
    parser.add_argument("--kubeconfig", type=Path, help="kubeconfig file (default: in-cluster, else ~/.kube/config)")
    parser.add_argument("--config", type=Path, help="configuration file (YAML; its keys: docs/configuration.md)")
    parser.add_argument("--models", type=Path, help="model registry (default: the configuration's `models`)")


def load_config(args: argparse.Namespace) -> tuple[Settings, Registry, Catalog]:
    """The settings, the model registry and the GPU catalogue named by the shared options."""
    from autoscaler.config import parse_config, parse_config_prices
    from common.schema import read_yaml
    from scheduler.catalog import Catalog, unknown_class
    from scheduler.inventory import SharingPolicy, build_inventory, unrenderable_sharing
    from scheduler.registry import Registry

    raw: Any = {}
    if args.config is not None:
        raw = read_yaml(args.config, InputError)  # libyaml, depth- and alias-bounded: a deep file is no traceback
    base = (args.config or Path(".")).parent
    with naming(args.config or "--config"):
        settings, models = parse_config(raw, base)
        catalog = Catalog.load(prices=parse_config_prices(raw, base))
    models = args.models or models
    if models is None:
        raise InputError("a model registry is needed: give --models or `models:` in --config", source="--models")
    with naming(models):
        registry = Registry.load(models, catalog)
    for name in settings.classes:
        if name not in catalog:
            known = (g.name for g in catalog)
            raise InputError(f"gpu_classes.{name}: {unknown_class(name, known)}", source=args.config)
    with naming(args.config or "--config"):
        build_inventory([], catalog, sharing=SharingPolicy(dict(settings.sharing)))
    amd = unrenderable_sharing(settings.sharing, catalog)
    if amd is not None:  # no manifest could ask for it: refused at start, not for every replica in the loop
        raise InputError(f"sharing.{amd}: AMD GPUs are placed only whole (exclusive)", source=args.config)
    return settings, registry, catalog


def run(args: argparse.Namespace) -> int:
    import json

    from prometheus_client import CollectorRegistry, ProcessCollector

    from autoscaler.adapters.kubernetes import Cluster
    from autoscaler.controller import Controller, owned_kinds
    from autoscaler.leader import LEASE_NAME, LeaderSettings
    from autoscaler.probes import ProbeServer
    from exporter.server import parse_listen

    try:
        host, port = parse_listen(args.metrics_listen)
    except InputError as e:
        raise InputError(e.message, source="--metrics-listen") from e
    leadership = LeaderSettings(args.lease_duration, args.renew_deadline, args.retry_period)
    if args.prometheus_timeout >= args.renew_deadline:
        raise InputError(
            f"must be less than --renew-deadline ({args.renew_deadline:g} s), got {args.prometheus_timeout:g}",
            source="--prometheus-timeout",
        )
    settings, registry, catalog = load_config(args)
    settings = replace(settings, prometheus_url=args.prometheus or "")
    margin = leadership.lease_duration_s - leadership.renew_deadline_s  # a write ends before another may lead
    cluster = Cluster.connect(args.kubeconfig, owned_kinds=owned_kinds(settings), write_timeout_s=margin)
    metrics = connect_prometheus(args)
    if metrics is None:
        log.warning("no --prometheus: every endpoint keeps its replicas (nothing scales on demand)")
    identity = args.identity or os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
    exposition = CollectorRegistry()
    ProcessCollector(registry=exposition)
    controller = Controller(
        cluster,
        metrics,
        settings,
        registry,
        catalog,
        identity,
        dry_run=args.dry_run,
        leadership=leadership,
        exposition=exposition,
    )
    if args.once:
        # A crashed holder's Lease is taken once it has stood still for its duration; a follower decides
        # nothing (`{"leader": false}` and exit 0 hid that).
        if not controller.elector.acquire(controller.stop):
            raise TemporaryError(
                f"--once: not the leader, so nothing was decided: the Lease {settings.namespace}/{LEASE_NAME} is "
                f"held by another controller that renews it (`kubectl -n {settings.namespace} get lease "
                f"{LEASE_NAME}` says which) or could not be read (the log says why)"
            )
        outcome = controller.reconcile()
        controller.elector.release()
        print(json.dumps(_outcome(outcome)))
        return 4 if outcome.errors else 0

    def ready() -> tuple[bool, str]:
        ran = controller.last_loop_at is not None
        return ran, "the first loop ran" if ran else "the first loop has not finished yet"

    try:
        server = ProbeServer((host, port), exposition, lambda: controller.health(args.interval), ready)
    except OSError as e:
        raise SetupError(f"cannot serve on {host}:{port}: {e.strerror or e}") from e
    server.serve_in_thread()

    def shutdown(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping after this loop and handing the Lease back", signum)
        controller.shutdown()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    log.info("controller %s: every %.0fs, metrics on http://%s:%d/metrics", identity, args.interval, host, port)
    controller.run(args.interval)
    server.shutdown()
    return 0


def _outcome(outcome: Any) -> dict[str, Any]:
    """One loop's outcome as `--once` prints it (one JSON document on stdout)."""
    decision = outcome.decision
    endpoints = [
        {
            "namespace": d.namespace,
            "name": d.name,
            "phase": d.phase,
            "replicas": d.replicas,
            "waiting": d.waiting,
            "variant": d.variant,
            "gpu_class": d.gpu_class,
            "eta": d.eta,
        }
        for d in (decision.endpoints if decision else ())
    ]
    return {
        "leader": outcome.leader,
        "writes": outcome.writes,
        "unchanged": outcome.unchanged,
        "errors": outcome.errors,
        "holds": [str(h) for h in decision.holds] if decision else [],
        "endpoints": endpoints,
    }
