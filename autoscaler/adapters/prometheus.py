"""The controller's reads from Prometheus: per-model demand and saturation, demand history, GPU indexes.

Only the HTTP query API (`/api/v1/query`, `/api/v1/query_range`, through prometheus-api-client) and
standard PromQL over the recording rules in `alerts/egs.rules.yaml`, so that Thanos, Mimir or Cortex
can stand in for Prometheus unchanged. Every name read here is a recorded name, which the
metric-contract test checks is written by a rule.

What it promises:

- `snapshot(at, history_s, step_s)` reads everything one loop needs, every instant query evaluated
  at the one time `at` (so that the numbers of one decision belong together), all of it within
  `timeout_s` in total: no retries (prometheus-api-client's default `Retry(total=3,
  backoff_factor=1)` turned one unanswered read into 4 timeouts and 6 s of back-off, longer than
  the Lease), each request given what is left of the deadline. prometheus-api-client is kept: it
  takes the `Retry`, a `requests.Session` (TLS verified by default, or against `ca_file`) and a
  per-request timeout, which is all this needs;
- `signals` has one `ModelSignals` per model that Prometheus has demand for, with the time of the
  newest sample behind it, so that the decide step can tell fresh data from stale; a model
  without series is absent (not zero): absence is the decide step's to interpret;
- `pods` has the same per serving pod (namespace, pod), for the pods that have series;
- `history` has each model's request rate as regular samples, NaN where Prometheus has none (a
  collection gap, not a zero);
- `gpu_indexes` has, per node, NVML's index of each GPU UUID (`GPU_INDEXES`): what KAI Scheduler's
  UUIDs are read against; `egs api` reads only this (`PrometheusMetrics.gpu_indexes`);
- a sample that is not a finite number (NaN, +Inf, text), or is negative (every series read is a rate, a
  count, a ratio, a time or a price: none can be), is dropped, as if absent, and listed in `bad`, so that
  one bad series costs its own model (or pod) its signal and nothing else;
- a Prometheus that cannot be reached, times out, runs past the deadline or answers an error
  raises `MetricsUnavailable` (temporary: the loop holds its last decision and tries again).
"""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from autoscaler.cost import TeamCost
from autoscaler.signals import BadSample, History, ModelSignals, PodSignals, Snapshot, steps
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
GPU_INDEXES = "group by (Hostname, UUID, gpu) (gpu_whole:saturation:ratio)"
"""Which GPU index each UUID is on each node: one series per whole GPU, recorded from either exporter,
both of which label a GPU's series with NVML's index (`gpu`), its UUID and the node (`Hostname`: the
Kubernetes node name, dcgm-exporter's and EGS's exporter's `$NODE_NAME`). KAI Scheduler names a shared
GPU by its UUID only (`autoscaler.pods.KAI_RESERVED`)."""
NAMESPACE_COST = "namespace:egs_gpu_cost_usd_per_hour:sum"
IDLE_COST = "gpu_class:egs_gpu_idle_cost_usd_per_hour:sum"
"""Cost per team, recorded from the controller's series; those are read once per (namespace,) class:
`max by` drops the scrape labels, so two controller replicas' copies count once."""


class MetricsUnavailable(TemporaryError):
    """Prometheus could not answer; the message says what was asked and why it failed."""


class PrometheusMetrics:
    """A Prometheus-compatible query API at `url`."""

    def __init__(
        self,
        url: str,
        timeout_s: float = 5.0,
        ca_file: Path | None = None,
        verify: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`timeout_s`: the deadline of one snapshot, all its requests together. `verify=False` skips
        TLS verification (`--prometheus-insecure-skip-verify`); `ca_file` is the bundle to verify with."""
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.clock = clock
        session = requests.Session()
        session.verify = str(ca_file) if ca_file is not None and verify else verify
        # Retry(0, read=False) is requests' own default: one attempt, a failure raised at once.
        self._api = PrometheusConnect(url=self.url, session=session, retry=Retry(0, read=False), timeout=timeout_s)

    def snapshot(self, at: float, history_s: float, step_s: float, live: bool = True) -> Snapshot:
        """Signals per model and per pod at `at` (`live`; else none, not read), and demand over
        [at - history_s, at] every `step_s`."""
        read = _Read(self, at, self.clock() + self.timeout_s)
        history = read.demand_history(at - history_s, at, step_s)
        signals, pods = (read.signals(), read.pod_signals()) if live else ({}, {})
        return Snapshot(signals, pods, history, read.bad, read.gpu_indexes())

    def gpu_indexes(self, at: float) -> dict[str, dict[str, int]]:
        """Per node, NVML's index of each GPU UUID at `at` (`GPU_INDEXES`), for the endpoint API, which reads
        nothing else of Prometheus."""
        return _Read(self, at, self.clock() + self.timeout_s).gpu_indexes()

    def gpu_saturation(self, at: float) -> dict[str, float]:
        """The mean GPU saturation ratio per GPU product (dcgm-exporter's `modelName`) at `at`."""
        return _Read(self, at, self.clock() + self.timeout_s).instant(SATURATION, label="modelName")

    def team_cost(self, at: float) -> TeamCost:
        """Cost per team at `at`: the recording rules' $/hour and the controller's GPUs and prices behind them."""
        read = _Read(self, at, self.clock() + self.timeout_s)
        held = read.instant_by("max by (namespace, gpu_class) (egs_namespace_gpus)", ("namespace", "gpu_class"))
        return TeamCost(
            namespace_usd_per_hour=read.instant(NAMESPACE_COST, label="namespace"),
            idle_usd_per_hour=read.instant(IDLE_COST, label="gpu_class"),
            namespace_gpus={(k[0], k[1]): v for k, v in held.items()},
            class_gpus=read.instant("max by (gpu_class) (egs_gpu_class_gpus)", label="gpu_class"),
            price_usd_per_hour=read.instant("max by (gpu_class) (egs_gpu_class_price_usd_per_hour)", label="gpu_class"),
        )


class _Read:
    """One snapshot's queries: one evaluation time, one deadline, the bad samples met on the way."""

    def __init__(self, prometheus: PrometheusMetrics, at: float, deadline: float) -> None:
        self.prometheus = prometheus
        self.api = prometheus._api
        self.at = at
        self.deadline = deadline
        self.bad: tuple[BadSample, ...] = ()

    def signals(self) -> dict[str, ModelSignals]:
        demand = self.instant(DEMAND)
        if not demand:
            return {}
        sampled = self.instant(f"timestamp({DEMAND})")
        waiting, running, kv = self.instant(WAITING), self.instant(RUNNING), self.instant(KV_CACHE)
        kv_sampled = self.instant(f"timestamp({KV_CACHE})")
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
        found = [self.instant_by(q, ("namespace", "pod")) for q in (POD_DEMAND, POD_WAITING, POD_SATURATION)]
        keys = set().union(*found)
        return {(k[0], k[1]): PodSignals(found[0].get(k), found[1].get(k), found[2].get(k)) for k in keys}

    def demand_history(self, start_s: float, end_s: float, step_s: float) -> dict[str, History]:
        """Each model's demand sampled every `step_s` (whole seconds) over [start_s, end_s]."""
        start_s, n = steps(start_s, end_s, step_s)
        start = datetime.datetime.fromtimestamp(start_s, datetime.UTC)
        end = datetime.datetime.fromtimestamp(start_s + (n - 1) * step_s, datetime.UTC)
        result = self._ask(
            f"query_range {DEMAND}",
            lambda timeout: self.api.custom_query_range(DEMAND, start, end, f"{int(step_s)}s", timeout=timeout),
        )
        history: dict[str, History] = {}
        for series in result:
            values = [math.nan] * n
            for t, v in series.get("values", ()):
                i = round((float(t) - start_s) / step_s)
                number = self._number(DEMAND, series.get("metric") or {}, (LABEL,), v)
                if 0 <= i < n and number is not None:
                    values[i] = number
            history[series["metric"].get(LABEL, "")] = History(start_s, step_s, tuple(values))
        return history

    def gpu_indexes(self) -> dict[str, dict[str, int]]:
        """`GPU_INDEXES` as node -> UUID -> index; a `gpu` label that is not an index is left out."""
        found: dict[str, dict[str, int]] = {}
        for node, uuid, gpu in self.instant_by(GPU_INDEXES, ("Hostname", "UUID", "gpu")):
            if node and uuid and gpu.isdigit():
                found.setdefault(node, {})[uuid] = int(gpu)
        return found

    def instant(self, query: str, label: str = LABEL) -> dict[str, float]:
        return {key[0]: value for key, value in self.instant_by(query, (label,)).items()}

    def instant_by(self, query: str, labels: tuple[str, ...]) -> dict[tuple[str, ...], float]:
        params = {"time": repr(self.at)}
        result = self._ask(query, lambda timeout: self.api.custom_query(query, params=params, timeout=timeout))
        values: dict[tuple[str, ...], float] = {}
        for sample in result:
            metric = sample.get("metric") or {}
            value = self._number(query, metric, labels, (sample.get("value") or (None, None))[1])
            if value is not None:
                values[tuple(metric.get(label, "") for label in labels)] = value
        return values

    def _number(self, query: str, metric: Mapping[str, Any], labels: tuple[str, ...], raw: Any) -> float | None:
        """`raw` as a finite float at least 0, or None after noting it in `bad`. A negative one failed the loop of
        every endpoint (a pod's demand of -1 req/s) and gave its model's other endpoints the demand it took off."""
        try:
            value = float(raw)
        except (TypeError, ValueError):
            reason = "not_a_number"
        else:
            if math.isfinite(value) and value >= 0:
                return value
            reason = "nan" if math.isnan(value) else "infinite" if math.isinf(value) else "negative"
        which = ",".join(f'{label}="{metric.get(label, "")}"' for label in labels)
        self.bad += (BadSample(query, which, reason, str(raw)[:64]),)
        return None

    def _ask(self, what: str, call: Callable[[float], Any]) -> Sequence[Mapping[str, Any]]:
        url = self.prometheus.url
        left = self.deadline - self.prometheus.clock()
        if left <= 0:
            raise MetricsUnavailable(f"Prometheus {url}: {what}: the {self.prometheus.timeout_s:g}s deadline passed")
        try:
            result = call(left)
        except (requests.RequestException, PrometheusApiClientException, ValueError, KeyError, TypeError) as e:
            raise MetricsUnavailable(f"Prometheus {url}: {what}: {e}") from e
        if not isinstance(result, list):
            raise MetricsUnavailable(f"Prometheus {url}: {what}: not a query result")
        return result
