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
    kind: Literal["gauge", "counter", "histogram"]
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] = ()
    """A histogram's upper bounds (seconds)."""


SERIES: tuple[Series, ...] = (
    Series(
        "egs_warm_pool_idle_nodes",
        "gauge",
        ("gpu_class",),
        "Ready or ordered GPU nodes of the class held idle for demand that has not arrived yet.",
    ),
    Series("egs_warm_pool_target_nodes", "gauge", ("gpu_class",), "Idle nodes the warm-pool policy wants held."),
    Series(
        "egs_warm_pool_taken_nodes_total",
        "counter",
        ("gpu_class",),
        "Warm nodes taken: idle in the controller's previous loop, no longer idle in this one and still "
        "schedulable (a replica, or another pod, took their GPUs).",
    ),
    Series(
        "egs_warm_pool_forecast_gpus",
        "gauge",
        ("gpu_class", "bound"),
        "GPUs the class's endpoints are forecast to need at the peak of the provisioning lead time: "
        "bound=expected (the point forecast) or upper (its upper quantile); none until the demand history "
        "has two samples.",
    ),
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
        "egs_endpoint_provisioning_seconds",
        "histogram",
        ("gpu_class",),
        "How long endpoints waited for GPU capacity of the class: from entering Provisioning (their Ready "
        "condition's last transition) to the loop that placed their replicas.",
        buckets=(60.0, 120.0, 300.0, 450.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0),
    ),
    Series(
        "egs_endpoint_promises_total",
        "counter",
        ("gpu_class", "outcome"),
        "ETAs promised to endpoints (202 Accepted, or set when they started to wait), once each as it resolves: "
        "outcome=kept (Ready by the promised time, as seen by the loop that saw it Ready) or late (Ready after "
        "it, or the promise revised: the revision is not counted again).",
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
    Series(
        "egs_autoscaler_reconcile_errors_total",
        "counter",
        ("reason",),
        "Failures within reconcile loops: a write refused (rejected) or failed for now (temporary), the Lease "
        "lost mid-loop.",
    ),
    Series(
        "egs_autoscaler_reconcile_total",
        "counter",
        ("result",),
        "Reconcile loops by result: success, error (at least one failure), lease_lost (stopped mid-loop), "
        "follower (a replica that does not lead, doing nothing). The error ratio is error over all but follower.",
    ),
    Series(
        "egs_autoscaler_reconcile_duration_seconds",
        "histogram",
        (),
        "How long reconcile loops took (followers' empty loops not counted).",
        buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    ),
    Series(
        "egs_autoscaler_bad_samples_total",
        "counter",
        ("series", "reason"),
        "Prometheus samples dropped because they were not finite numbers at least 0 "
        "(reason nan, infinite, not_a_number or negative); "
        "the log names the labels. The model of a dropped demand sample is held, as if it had no series.",
    ),
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
        "egs_autoscaler_prometheus_up",
        "gauge",
        (),
        "1 when this replica leads and its last loop read Prometheus; 0 when the read failed, when no "
        "Prometheus was given (endpoints then keep their replicas), or while it does not lead.",
    ),
    Series(
        "egs_model_demand_split_evenly",
        "gauge",
        ("model",),
        "1 while the model's demand is split evenly between endpoints whose pods' series cannot tell them apart.",
    ),
    Series(
        "egs_endpoint_cost_usd_per_hour",
        "gauge",
        ("namespace", "endpoint", "model", "gpu_class"),
        "USD per hour of the endpoint's replicas (placed and waiting) at the configured prices (`prices:`, "
        "else the catalogue's), as its status's costPerHour.",
    ),
    Series(
        "egs_autoscaler_skipped_nodes",
        "gauge",
        ("node",),
        "1 for each GPU node the controller cannot read (a label or resource it cannot parse, a class the "
        "catalogue lacks): nothing is placed on it, the rest of the fleet is; the reason is logged.",
    ),
    Series(
        "egs_autoscaler_held_endpoints",
        "gauge",
        ("namespace", "endpoint", "reason"),
        "1 for each endpoint whose objects are left as they are: reason=InvalidSpec (its spec cannot be read), "
        "CannotRender (its new shape cannot be written) or Unschedulable (its changed spec fits no node while "
        "its replicas from before serve); its status condition says why.",
    ),
    # Cost per team (autoscaler/cost.py): names other tools read, so they stay as they are.
    Series(
        "egs_namespace_gpus",
        "gauge",
        ("namespace", "gpu_class"),
        "GPUs the namespace's pods (EGS's and any other) hold on Ready nodes of the class: a whole GPU counts 1, "
        "a shared one the share of its memory the pod holds (time-slicing, HAMi, KAI), a MIG instance or AMD "
        "partition its share of the GPU.",
    ),
    Series("egs_gpu_class_gpus", "gauge", ("gpu_class",), "GPUs on the Ready nodes of the class."),
    Series(
        "egs_gpu_class_price_usd_per_hour",
        "gauge",
        ("gpu_class",),
        "USD per GPU-hour of the class: the configured price, else the catalogue's list price.",
    ),
)

NAMES: frozenset[str] = frozenset(
    name
    for s in SERIES
    for name in ((f"{s.name}_bucket", f"{s.name}_sum", f"{s.name}_count") if s.kind == "histogram" else (s.name,))
)
"""Every series name the controller writes (a histogram's as its _bucket, _sum and _count)."""
