"""Replica targets: how many replicas each endpoint should run, or why its count is held.

`replica_target` (the autoscaler core) of the endpoint's demand over a replica's throughput, plus one
while the servers saturate; missing, stale or contradictory metrics hold the count the cluster has.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from autoscaler.attribution import EndpointSignals
from autoscaler.decide.decision import UNAVAILABLE, Hold
from autoscaler.decide.settings import Settings
from autoscaler.decide.state import Recommendation, Workload
from autoscaler.endpoint import Endpoint
from autoscaler.kubetime import rfc3339
from autoscaler.replicas import ReplicaBounds, replica_target
from autoscaler.signals import ModelSignals

KV_CACHE_HIGH = 0.80
QUEUE_HIGH = 5.0
"""llm-d's variant autoscaler thresholds: KV-cache use and queued requests per replica."""
GPU_SATURATION_HIGH = 0.95
"""The GPU saturation ratio (VRAM use or memory bandwidth, the larger) at which an endpoint's GPUs are
saturated, read when vLLM reports no queue or KV cache. Above vLLM's default
`--gpu-memory-utilization` (0.90), at which its VRAM use sits whatever the load."""


def replica_count(
    ep: Endpoint,
    workload: Workload,
    signals: Mapping[str, ModelSignals] | None,
    settings: Settings,
    now: float,
    own: EndpointSignals | None = None,
) -> tuple[int, Hold | None]:
    """(replicas, why they were held or None). `own`: the endpoint's part of its model's signals
    (`autoscaler.attribution`); without it the endpoint has the model's."""
    current = workload.replicas
    bounds = ReplicaBounds(ep.min_replicas, ep.max_replicas)
    hold = max(current if current is not None else max(ep.min_replicas, 1), ep.min_replicas)
    hold = min(hold, ep.max_replicas)
    if signals is None:
        return hold, _held(ep, hold, UNAVAILABLE)
    sig = signals.get(ep.model)
    saturation = own.gpu_saturation if own is not None else None
    running = current or 0
    if sig is None and saturation is not None and saturation >= GPU_SATURATION_HIGH and running:
        # No vLLM series, but its GPUs are saturated: the capacity view says one more (never fewer).
        return _one_more(max(hold, running), workload, ep), None
    if sig is None:
        # Against the mark, not the figure: the message is the status's, and a load that moves would write it
        # every loop.
        under = saturation is not None and saturation < GPU_SATURATION_HIGH
        seen = f" (its GPUs' saturation under {GPU_SATURATION_HIGH})" if under else ""
        return hold, _held(ep, hold, f"no metrics for {ep.model}", seen)
    if now - sig.sampled_at > settings.stale_after_s:
        # When last sampled, not how long ago: the message is the status's, and an age would write it every loop.
        return hold, _held(ep, hold, f"stale metrics for {ep.model}", f" (last sampled {rfc3339(sig.sampled_at)})")
    wrong = _contradiction(sig)
    if wrong:
        return hold, _held(ep, hold, f"metrics for {ep.model} contradict each other", f" ({wrong})")
    demand = own.demand_rps if own is not None and own.demand_rps is not None else sig.demand_rps
    waiting = own.waiting if own is not None else sig.waiting
    if sig.kv_cache_usage is None and waiting is None:
        # vLLM says nothing of its queue or KV cache: the GPUs' saturation is the capacity view.
        saturated = saturation is not None and saturation >= GPU_SATURATION_HIGH
    else:
        saturated = (sig.kv_cache_usage or 0.0) >= KV_CACHE_HIGH or (
            waiting is not None and running > 0 and waiting / running >= QUEUE_HIGH
        )
    throughput = declared_throughput(ep, settings)
    serving = min(workload.ready, running)
    if saturated and serving:
        # Saturated servers finish what they can: each serves demand / replicas, whatever was declared.
        throughput = min(throughput, max(demand / serving, 1e-3))
    target = replica_target(demand, throughput, settings.headroom, bounds)
    if saturated:
        target = _one_more(target, workload, ep)
    return target, None


def _held(ep: Endpoint, replicas: int, cause: str, detail: str = "") -> Hold:
    """`ep`'s replica count held at `replicas` for `cause`, which `detail` (its own figures) follows."""
    return Hold(ep.key, cause, f"{cause}{detail}: holding {replicas} replicas")


def _one_more(target: int, workload: Workload, ep: Endpoint) -> int:
    """One more than runs, once the replicas added before serve: a model loads for minutes, and adding
    one a loop meanwhile would overshoot."""
    running = workload.replicas or 0
    starting = workload.ready < running
    return min(max(target, running if starting else running + 1), ep.max_replicas)


def declared_throughput(ep: Endpoint, settings: Settings) -> float:
    """Requests per second one replica serves: the endpoint's own figure, else the model's configured one."""
    return ep.throughput_per_replica or settings.throughput_rps.get(ep.model, settings.default_throughput_rps)


def _contradiction(sig: ModelSignals) -> str:
    """What of `sig` cannot be, by kind, not by figure: the message is the status's, and a figure that moved
    while the cause lasted wrote it every loop (Prometheus has the figures)."""
    if not math.isfinite(sig.demand_rps) or sig.demand_rps < 0:
        return "demand negative or not a number"
    if sig.kv_cache_usage is not None and not 0 <= sig.kv_cache_usage <= 1:
        return "KV-cache use outside 0-1"
    if sig.waiting is not None and (sig.waiting < 0 or not math.isfinite(sig.waiting)):
        return "queue negative or not a number"
    return ""


MAX_RECOMMENDATIONS = 32
"""Change points kept in an endpoint's status; older ones merge (keeping the larger count, so the
window never scales down sooner for the cap)."""


def stabilized(
    recommended: int, running: int | None, history: Sequence[Recommendation], window_s: float, now: float
) -> tuple[int, tuple[Recommendation, ...]]:
    """HPA's scale-down stabilization: up at once, down only to the largest count recommended within
    the last `window_s` seconds. `history` holds the recommendations as change points (each in force
    until the next), read back from the endpoint's status, so a restart keeps the window; returns
    the replicas to run and the history to record."""
    kept = [r for r in history if r.time <= now]
    if not kept or kept[-1].replicas != recommended:
        kept.append(Recommendation(now, recommended))
    # The last change point at or before the window's start is still in force at its start.
    while len(kept) > 1 and kept[1].time <= now - window_s:
        kept.pop(0)
    while len(kept) > MAX_RECOMMENDATIONS:
        kept[:2] = [Recommendation(kept[0].time, max(kept[0].replicas, kept[1].replicas))]
    if running is None or recommended >= running:
        return recommended, tuple(kept)
    return max(recommended, min(running, max(r.replicas for r in kept))), tuple(kept)
