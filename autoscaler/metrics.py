"""The series the autoscaler controller writes: the source of truth for their names and labels.

The alerts in `alerts/` page on them (warm pool exhausted, provisioning slower than estimated,
controller not reconciling), and the metric-contract test checks that every name an alert reads is
written by someone; the controller registers exactly these with prometheus_client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Series:
    name: str
    kind: Literal["gauge", "counter"]
    labels: tuple[str, ...]
    help: str


SERIES: tuple[Series, ...] = (
    Series(
        "egs_warm_pool_idle_nodes",
        "gauge",
        ("gpu_class",),
        "Ready or ordered GPU nodes of the class held idle for demand that has not arrived yet.",
    ),
    Series("egs_warm_pool_target_nodes", "gauge", ("gpu_class",), "Idle nodes the warm-pool policy wants held."),
    Series(
        "egs_endpoint_replicas_waiting",
        "gauge",
        ("namespace", "endpoint", "model", "gpu_class"),
        "Replicas an endpoint wants that wait for GPU capacity.",
    ),
    Series(
        "egs_endpoint_estimated_ready_timestamp_seconds",
        "gauge",
        ("namespace", "endpoint", "model", "gpu_class"),
        "When the endpoint was promised to be ready (Unix time), as answered with 202 Accepted.",
    ),
    Series(
        "egs_endpoint_ready",
        "gauge",
        ("namespace", "endpoint", "model", "gpu_class"),
        "1 once every wanted replica of the endpoint serves.",
    ),
    Series(
        "egs_autoscaler_last_reconcile_timestamp_seconds",
        "gauge",
        (),
        "When the controller last finished a reconcile loop (Unix time).",
    ),
    Series("egs_autoscaler_reconcile_errors_total", "counter", ("reason",), "Reconcile loops that failed."),
    Series("egs_autoscaler_reconcile_duration_seconds", "gauge", (), "How long the last reconcile loop took."),
    Series(
        "egs_autoscaler_decisions_total",
        "counter",
        ("action",),
        "Objects the controller decided on: applied (written), unchanged (nothing to write), held.",
    ),
    Series(
        "egs_autoscaler_holding",
        "gauge",
        (),
        "1 while the last decision held replicas or pools on missing, stale or contradictory metrics.",
    ),
    Series("egs_autoscaler_leader", "gauge", (), "1 while this controller replica holds the leader Lease."),
    Series(
        "egs_model_demand_split_evenly",
        "gauge",
        ("model",),
        "1 while the model's demand is split evenly between endpoints whose pods' series cannot tell them apart.",
    ),
)

NAMES: frozenset[str] = frozenset(s.name for s in SERIES)
