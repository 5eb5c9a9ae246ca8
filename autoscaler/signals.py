"""What the controller knows of each model's traffic, as plain numbers: the decide step's input.

The Prometheus adapter fills these from the recording rules (per model, and per pod so that the
endpoints of one model can be told apart); tests and the reconcile benchmark build them directly.
`sampled_at` lets the decide step tell fresh data from stale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSignals:
    """What Prometheus says about one model now."""

    model: str
    demand_rps: float
    waiting: float | None = None
    """Requests queued in the model's servers (all replicas)."""
    running: float | None = None
    kv_cache_usage: float | None = None
    """The highest KV-cache use of the model's servers, 0-1."""
    sampled_at: float = 0.0
    """Unix time of the oldest of the newest samples behind these numbers."""


@dataclass(frozen=True)
class History:
    """Regular samples of one model's demand; NaN where nothing was recorded."""

    start_s: float
    step_s: float
    values: tuple[float, ...]


@dataclass(frozen=True)
class PodSignals:
    """What Prometheus says about one pod, by (namespace, pod): its vLLM server's demand and queue,
    and the saturation of the GPUs the exporter maps to it; None where there is no series."""

    demand_rps: float | None = None
    waiting: float | None = None
    gpu_saturation: float | None = None


@dataclass(frozen=True)
class BadSample:
    """A sample Prometheus answered that is not a usable number (NaN, +-Inf, not a number): dropped,
    as if absent, and reported on itself by the controller."""

    series: str
    """The recorded series (the query) it came from."""
    labels: str
    """Which one, e.g. `model_name="llama"`."""
    reason: str
    """`nan`, `infinite` or `not_a_number`."""
    value: str


@dataclass(frozen=True)
class Snapshot:
    """Everything one loop reads from Prometheus, evaluated at one time."""

    signals: Mapping[str, ModelSignals]
    pods: Mapping[tuple[str, str], PodSignals]
    history: Mapping[str, History]
    bad: tuple[BadSample, ...] = ()
