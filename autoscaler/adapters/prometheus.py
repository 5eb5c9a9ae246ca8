"""The controller's reads from Prometheus: per-model demand and saturation, and demand history.

Only the HTTP query API (`/api/v1/query`, `/api/v1/query_range`, through prometheus-api-client) and
standard PromQL over the recording rules in `alerts/egs.rules.yaml`, so that Thanos, Mimir or Cortex
can stand in for Prometheus unchanged. Every name read here is a recorded name, which the
metric-contract test checks is written by a rule.

What it promises:

- `signals(now)` returns one `ModelSignals` per model that Prometheus has demand for, with the time
  of the newest sample behind it, so that the decide step can tell fresh data from stale;
  a model without series is absent (not zero): absence is the decide step's to interpret;
- `pod_signals()` returns the same per serving pod (namespace, pod), for the pods that have series;
- `demand_history(start, end, step)` returns each model's request rate as regular samples, NaN
  where Prometheus has none (a collection gap, not a zero);
- a Prometheus that cannot be reached, times out or answers an error raises `MetricsUnavailable`
  (temporary: the loop holds its last decision and tries again).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException

from autoscaler.signals import History, ModelSignals, PodSignals
from common.errors import TemporaryError

DEMAND = "model:requests:rate5m"
WAITING = "model:requests_waiting:sum"
RUNNING = "model:requests_running:sum"
KV_CACHE = "model:kv_cache_usage:max"
SATURATION = "modelName:gpu_saturation:avg"
"""The recorded series read: demand (req/s), queue and running sequences, KV-cache use (0-1) per
vLLM `model_name`, and the GPU saturation ratio per GPU product (`modelName`, dcgm-exporter's label)."""
POD_DEMAND = "namespace_pod:requests:rate5m"
POD_WAITING = "namespace_pod:requests_waiting:sum"
POD_SATURATION = "namespace_pod:gpu_saturation:avg"
"""The same per serving pod (`namespace`, `pod`, as Kubernetes service discovery labels a target)."""
LABEL = "model_name"


class MetricsUnavailable(TemporaryError):
    """Prometheus could not answer; the message says what was asked and why it failed."""


class PrometheusMetrics:
    """A Prometheus-compatible query API at `url`."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._api = PrometheusConnect(url=self.url, disable_ssl=True, timeout=timeout_s)

    def signals(self) -> dict[str, ModelSignals]:
        demand = self._instant(DEMAND)
        if not demand:
            return {}
        sampled = self._instant(f"timestamp({DEMAND})")
        waiting, running, kv = self._instant(WAITING), self._instant(RUNNING), self._instant(KV_CACHE)
        kv_sampled = self._instant(f"timestamp({KV_CACHE})")
        out: dict[str, ModelSignals] = {}
        for model, rate in demand.items():
            times = [t for t in (sampled.get(model), kv_sampled.get(model)) if t is not None]
            out[model] = ModelSignals(
                model=model,
                demand_rps=rate,
                waiting=waiting.get(model),
                running=running.get(model),
                kv_cache_usage=kv.get(model),
                sampled_at=min(times) if times else 0.0,
            )
        return out

    def pod_signals(self) -> dict[tuple[str, str], PodSignals]:
        """Per (namespace, pod): demand and queue of its vLLM server, saturation of its GPUs."""
        found = [self._instant_by(q, ("namespace", "pod")) for q in (POD_DEMAND, POD_WAITING, POD_SATURATION)]
        keys = set().union(*found)
        return {(k[0], k[1]): PodSignals(found[0].get(k), found[1].get(k), found[2].get(k)) for k in keys}

    def gpu_saturation(self) -> dict[str, float]:
        """The mean GPU saturation ratio per GPU product (dcgm-exporter's `modelName`)."""
        return self._instant(SATURATION, label="modelName")

    def demand_history(self, start_s: float, end_s: float, step_s: float) -> dict[str, History]:
        """Each model's demand sampled every `step_s` (whole seconds) over [start_s, end_s]."""
        # Steps on multiples of `step_s`, as Grafana aligns them: the same samples whenever it is asked.
        start_s, end_s = math.ceil(start_s / step_s) * step_s, math.floor(end_s / step_s) * step_s
        start = datetime.datetime.fromtimestamp(start_s, datetime.UTC)
        end = datetime.datetime.fromtimestamp(end_s, datetime.UTC)
        result = self._ask(
            f"query_range {DEMAND}",
            lambda: self._api.custom_query_range(DEMAND, start, end, f"{int(step_s)}s", timeout=self.timeout_s),
        )
        n = math.floor((end_s - start_s) / step_s + 1e-9) + 1
        history: dict[str, History] = {}
        for series in result:
            values = [math.nan] * n
            for t, v in series.get("values", ()):
                i = round((float(t) - start_s) / step_s)
                if 0 <= i < n:
                    values[i] = float(v)
            history[series["metric"].get(LABEL, "")] = History(start_s, step_s, tuple(values))
        return history

    def _instant(self, query: str, label: str = LABEL) -> dict[str, float]:
        return {key[0]: value for key, value in self._instant_by(query, (label,)).items()}

    def _instant_by(self, query: str, labels: tuple[str, ...]) -> dict[tuple[str, ...], float]:
        result = self._ask(query, lambda: self._api.custom_query(query, timeout=self.timeout_s))
        values: dict[tuple[str, ...], float] = {}
        for sample in result:
            value = float(sample["value"][1])
            if not math.isnan(value):
                values[tuple(sample["metric"].get(label, "") for label in labels)] = value
        return values

    def _ask(self, what: str, call: Any) -> Sequence[Mapping[str, Any]]:
        try:
            result: Sequence[Mapping[str, Any]] = call()
        except (requests.RequestException, PrometheusApiClientException, ValueError) as e:
            raise MetricsUnavailable(f"Prometheus {self.url}: {what}: {e}") from e
        return result
