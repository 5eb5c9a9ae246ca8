"""What the controller knows of each model's traffic, as plain numbers: the decide step's input.

The Prometheus adapter fills these from the recording rules (per model, and per pod so that the
endpoints of one model can be told apart); tests and the reconcile benchmark build them directly.
`sampled_at` lets the decide step tell fresh data from stale. `extended` lets the controller read
the week of demand history once and then only what is new.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field


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

    def window(self, first_s: float, n: int) -> tuple[float, ...]:
        """The `n` samples from `first_s` (a step of this series) on, NaN outside what it holds."""
        offset = round((first_s - self.start_s) / self.step_s)
        before = min(n, max(0, -offset))
        held = self.values[max(0, offset) : max(0, offset + n)]
        return (math.nan,) * before + held + (math.nan,) * (n - before - len(held))


def steps(start_s: float, end_s: float, step_s: float) -> tuple[float, int]:
    """The first step time and the number of steps over [start_s, end_s] on multiples of `step_s`, as
    Grafana aligns them: the same samples whenever they are asked for."""
    first, last = math.ceil(start_s / step_s) * step_s, math.floor(end_s / step_s) * step_s
    return first, max(0, math.floor((last - first) / step_s + 1e-9) + 1)


def extended(
    kept: Mapping[str, History],
    fresh: Mapping[str, History],
    fresh_start_s: float,
    start_s: float,
    end_s: float,
    step_s: float,
) -> dict[str, History]:
    """Each model's demand over [start_s, end_s] from a history read before (`kept`) and a read of
    [fresh_start_s, end_s] (`fresh`, which has the say from its first step on): what one read of the
    whole window gives, as long as no sample before `fresh_start_s` changed since `kept` was read. A
    model with no sample left in the window is absent, as a read leaves it out."""
    first, n = steps(start_s, end_s, step_s)
    fresh_first, _ = steps(fresh_start_s, end_s, step_s)
    old = max(0, min(n, round((fresh_first - first) / step_s)))
    out: dict[str, History] = {}
    for model in kept.keys() | fresh.keys():
        before, after = kept.get(model), fresh.get(model)
        values = (before.window(first, old) if before else (math.nan,) * old) + (
            after.window(fresh_first, n - old) if after else (math.nan,) * (n - old)
        )
        if not all(map(math.isnan, values)):
            out[model] = History(first, step_s, values)
    return out


@dataclass(frozen=True)
class PodSignals:
    """What Prometheus says about one pod, by (namespace, pod): its vLLM server's demand and queue,
    and the saturation of the GPUs the exporter maps to it; None where there is no series."""

    demand_rps: float | None = None
    waiting: float | None = None
    gpu_saturation: float | None = None


@dataclass(frozen=True)
class BadSample:
    """A sample Prometheus answered that is not a usable number (NaN, +-Inf, not a number, negative): dropped,
    as if absent, and reported on itself by the controller."""

    series: str
    """The recorded series (the query) it came from."""
    labels: str
    """Which one, e.g. `model_name="llama"`."""
    reason: str
    """`nan`, `infinite`, `not_a_number` or `negative`."""
    value: str


@dataclass(frozen=True)
class Snapshot:
    """Everything one loop reads from Prometheus, evaluated at one time."""

    signals: Mapping[str, ModelSignals]
    pods: Mapping[tuple[str, str], PodSignals]
    history: Mapping[str, History]
    bad: tuple[BadSample, ...] = ()
    gpu_indexes: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Per node, NVML's index of each GPU UUID (`autoscaler.decide.Observation.gpu_indexes`)."""
