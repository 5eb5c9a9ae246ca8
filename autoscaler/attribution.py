"""Each endpoint's part of its model's demand, told apart by the pods that serve it.

Part of the autoscaler's pure core. The recording rules give demand per vLLM `model_name`, and two
endpoints of one model (two teams' `llama-3.1-8b-instruct`) share that name. Their pods do not: the
controller knows from Kubernetes which pods serve which endpoint (`autoscaler.pods.pods_by_endpoint`),
and Prometheus records demand, queue and GPU saturation per (namespace, pod). Per model:

- an endpoint whose pods have demand series gets their sum;
- the model's demand that no such series accounts for (servers whose series carry no namespace/pod
  labels, servers EGS does not run) is split evenly between the model's endpoints that have none:
  those cannot be told apart. When two or more share it, the model is listed in `split_evenly` (the
  controller logs it and sets `egs_model_demand_split_evenly`);
- the queue is the endpoint's own where its pods report one, else the model's;
- the GPU saturation is the mean over its pods that report one (None when none does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from autoscaler.endpoint import Endpoint
from autoscaler.signals import ModelSignals, PodSignals
from scheduler.manifests import dns_label


@dataclass(frozen=True)
class EndpointSignals:
    demand_rps: float | None
    """None: Prometheus has no demand for the model."""
    waiting: float | None
    gpu_saturation: float | None
    share: float
    """Its part of the model's demand (0-1), which its past demand is taken to be too."""


@dataclass(frozen=True)
class Attribution:
    endpoints: Mapping[str, EndpointSignals]
    """By endpoint key (`namespace/name`)."""
    split_evenly: tuple[str, ...]
    """Models whose demand was split evenly between endpoints that could not be told apart."""


def attribute(
    endpoints: Sequence[Endpoint],
    signals: Mapping[str, ModelSignals] | None,
    pod_signals: Mapping[tuple[str, str], PodSignals],
    pods_of: Mapping[tuple[str, str], Sequence[str]],
) -> Attribution:
    by_model: dict[str, list[Endpoint]] = {}
    for ep in endpoints:
        by_model.setdefault(ep.model, []).append(ep)
    out: dict[str, EndpointSignals] = {}
    even: list[str] = []
    for model, eps in sorted(by_model.items()):
        sig = signals.get(model) if signals is not None else None
        own = {ep.key: _own(ep, pod_signals, pods_of) for ep in eps}
        total = sig.demand_rps if sig is not None else None
        apart = sum(d for d, _, _ in own.values() if d is not None)
        untold = [ep.key for ep in eps if own[ep.key][0] is None]
        rest = max(0.0, total - apart) / len(untold) if total is not None and untold else 0.0
        if len(untold) > 1 and total:
            even.append(model)
        for ep in eps:
            demand, waiting, saturation = own[ep.key]
            if total is not None and demand is None:
                demand = rest
            share = demand / total if total and demand is not None else 1.0 / len(eps)
            out[ep.key] = EndpointSignals(
                demand if total is not None else None,
                waiting if waiting is not None else (sig.waiting if sig is not None else None),
                saturation,
                share,
            )
    return Attribution(out, tuple(even))


def _own(
    ep: Endpoint, pod_signals: Mapping[tuple[str, str], PodSignals], pods_of: Mapping[tuple[str, str], Sequence[str]]
) -> tuple[float | None, float | None, float | None]:
    """(demand, queue, mean GPU saturation) of the endpoint's own pods, None where none reports one."""
    series = [
        pod_signals[(ep.namespace, pod)]
        for pod in pods_of.get((ep.namespace, dns_label(ep.name)), ())
        if (ep.namespace, pod) in pod_signals
    ]
    demand = [s.demand_rps for s in series if s.demand_rps is not None]
    waiting = [s.waiting for s in series if s.waiting is not None]
    saturation = [s.gpu_saturation for s in series if s.gpu_saturation is not None]
    return (
        sum(demand) if demand else None,
        sum(waiting) if waiting else None,
        sum(saturation) / len(saturation) if saturation else None,
    )
