"""The demo's HTML report: one self-contained file (plots as embedded PNG) of what the run showed.

The same signals the dashboards show, as the demo sampled them from Prometheus, Alertmanager, the
API's answers and the cluster stand-in every few seconds: demand (replayed, and as Prometheus
measured it) against serving capacity, warm-pool target and idle nodes, VRAM saturation per node,
the endpoints' replicas and promised ready times, and the alerts that fired. The forecast drawn is the
controller's (`egs_warm_pool_forecast_gpus`, GPUs of the class): with less than a day of history, as
in any demo run, it is a persistence forecast, and it appears once the 5-minute history has two samples.
Needs matplotlib (the `demo` / `plot` extra).
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Sample:
    """What the demo saw at one moment (`t`: real seconds since the replay started)."""

    t: float
    trace_hour: float
    replayed_rps: dict[str, float]
    measured_rps: dict[str, float]
    """`model:requests:rate5m` per model."""
    capacity_rps: dict[str, float]
    """Ready replicas x what one serves, per model."""
    replicas: dict[str, tuple[int, int]]
    """Endpoint -> (wanted, ready) replicas."""
    pool_target: int
    pool_idle: int
    pool_objects: dict[str, int]
    """Warm-pool objects in the cluster (namespace/name of the placeholder Deployment) -> their replicas."""
    nodes_ready: int
    nodes_coming: int
    vram_max: dict[str, float]
    """Node -> the highest `gpu:vram_used:ratio` of its GPUs."""
    firing: list[str]
    """Alert names firing at Alertmanager, with their GPU where they have one."""
    eta_left_s: dict[str, float] = field(default_factory=dict)
    """Endpoint -> seconds until its promised ready time (`egs_endpoint_estimated_ready_timestamp_seconds`)."""
    endpoint_ready: dict[str, bool] = field(default_factory=dict)
    """Endpoint -> `egs_endpoint_ready`."""
    gpus_held: int = 0
    """GPUs the endpoints' placed replicas hold."""
    forecast_gpus: dict[str, float] = field(default_factory=dict)
    """`egs_warm_pool_forecast_gpus` by bound (expected, upper): the class's need at the lead time's peak."""


@dataclass
class Answer:
    """One POST to the endpoint API and what became of it."""

    at: float
    endpoint: str
    model: str
    status: int
    eta_s: float | None
    """Seconds from the request to the `estimatedReadyTime` it promised (202), or None."""
    ready_after_s: float | None = None
    """Seconds from the request until the endpoint was Ready, when it got there."""


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Fingerprint -> the alert as Alertmanager's API gave it, with `seen_from` / `seen_to` (run seconds)."""
    summary: list[str] = field(default_factory=list)


def write_report(run: Run, path: Path, title: str) -> Path:
    """Write the HTML report of `run` to `path` (a temporary file first, so that it appears whole)."""
    import matplotlib

    matplotlib.use("Agg")
    figures = [
        ("Demand and capacity", _demand(run.samples)),
        ("GPU need, its forecast, the warm pool and the nodes", _pool(run.samples)),
        ("VRAM saturation", _vram(run.samples)),
        ("Endpoints: wanted and ready replicas", _replicas(run.samples)),
        ("Endpoints: time left to the promised ready time", _etas(run.samples)),
        ("Alerts firing at Alertmanager", _alerts(run.samples)),
    ]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}img{width:100%;border:1px solid #ccc}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Written {time.strftime('%Y-%m-%d %H:%M:%S %Z')}. Simulated GPUs, a Kubernetes API stand-in and a "
        "vLLM stand-in; the real EGS exporter code, Prometheus with the EGS rules, Alertmanager, controller and "
        "API.</p>",
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in run.summary) + "</ul>",
    ]
    for heading, png in figures:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(f"<img alt='{html.escape(heading)}' src='data:image/png;base64,{png}'>")
    parts.append("<h2>Endpoint requests</h2>" + _answers_table(run.answers))
    parts.append("<h2>Alerts at Alertmanager</h2>" + _alerts_table(run.alerts))
    parts.append("</body></html>")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(parts))
    tmp.replace(path)
    return path


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _axes(rows: int = 1) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, 1, figsize=(11, 3.2 * rows), sharex=True, squeeze=False)
    for ax in axes[:, 0]:
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("seconds into the demo")
    return fig, axes[:, 0]


def _t(samples: Sequence[Sample]) -> list[float]:
    return [s.t for s in samples]


def _demand(samples: Sequence[Sample]) -> str:
    models = sorted({m for s in samples for m in s.replayed_rps})
    fig, axes = _axes(max(1, len(models)))
    for ax, model in zip(axes, models, strict=False):
        t = _t(samples)
        ax.plot(t, [s.replayed_rps.get(model, float("nan")) for s in samples], label="replayed demand", lw=1)
        ax.plot(t, [s.measured_rps.get(model, float("nan")) for s in samples], label="demand (Prometheus)", lw=2)
        ax.step(t, [s.capacity_rps.get(model, 0.0) for s in samples], where="post", label="serving capacity")
        ax.set_ylabel("req/s")
        ax.set_title(model, fontsize=10)
        ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def _pool(samples: Sequence[Sample]) -> str:
    fig, (need, nodes) = _axes(2)
    t = _t(samples)
    need.step(t, [s.gpus_held for s in samples], where="post", label="GPUs the replicas hold", lw=2)
    for bound, style in (("expected", "--"), ("upper", ":")):
        forecast = [s.forecast_gpus.get(bound, float("nan")) for s in samples]
        need.plot(t, forecast, style, label=f"forecast need at the lead time's peak ({bound}, controller)")
    if not any(s.forecast_gpus for s in samples):
        note = "no forecast in this run: the controller's needs two 5-minute samples of demand history"
        need.text(0.99, 0.03, note, transform=need.transAxes, ha="right", fontsize=8, color="grey")
    need.set_ylabel("GPUs")
    need.legend(loc="upper left", fontsize=8)
    nodes.step(t, [s.pool_target for s in samples], where="post", label="warm-pool target (nodes)", lw=2)
    nodes.step(t, [s.pool_idle for s in samples], where="post", label="warm-pool idle nodes")
    nodes.step(t, [s.nodes_ready for s in samples], where="post", label="GPU nodes ready")
    nodes.step(t, [s.nodes_coming for s in samples], where="post", label="GPU nodes provisioning", ls=":")
    nodes.set_ylabel("nodes")
    nodes.legend(loc="upper left", fontsize=8)
    return _png(fig)


def _vram(samples: Sequence[Sample]) -> str:
    fig, (ax,) = _axes()
    t = _t(samples)
    for node in sorted({n for s in samples for n in s.vram_max}):
        ax.plot(t, [s.vram_max.get(node, float("nan")) for s in samples], label=node)
    ax.axhline(0.95, color="red", ls="--", lw=1, label="GPUVRAMSaturated threshold")
    label = "GPUVRAMSaturated firing"
    for before, after in itertools.pairwise(samples):
        if any(a.startswith("GPUVRAMSaturated") for a in before.firing):
            ax.axvspan(before.t, after.t, color="red", alpha=0.08, lw=0, label=label)
            label = "_nolegend_"
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("highest VRAM used ratio")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def _replicas(samples: Sequence[Sample]) -> str:
    fig, (ax,) = _axes()
    t = _t(samples)
    for endpoint in sorted({e for s in samples for e in s.replicas}):
        ax.step(t, [s.replicas.get(endpoint, (0, 0))[0] for s in samples], where="post", label=f"{endpoint} wanted")
        ax.step(t, [s.replicas.get(endpoint, (0, 0))[1] for s in samples], where="post", ls="--",
                label=f"{endpoint} ready")  # fmt: skip
    ax.set_ylabel("replicas")
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def _etas(samples: Sequence[Sample]) -> str:
    fig, (ax,) = _axes()
    t = _t(samples)
    for endpoint in sorted({e for s in samples for e in s.eta_left_s}):
        left = [s.eta_left_s.get(endpoint, float("nan")) for s in samples]
        (line,) = ax.plot(t, left, label=f"{endpoint}: promised ready in")
        ready = [s.t for s in samples if s.endpoint_ready.get(endpoint)]
        if ready:
            ax.axvline(ready[0], color=line.get_color(), ls=":", label=f"{endpoint}: ready")
    ax.axhline(0, color="grey", lw=1)
    ax.set_xlim(0, max(t))
    ax.set_ylabel("seconds")
    ax.legend(loc="upper right", fontsize=8)
    return _png(fig)


def _alerts(samples: Sequence[Sample]) -> str:
    fig, (ax,) = _axes()
    t = _t(samples)
    for name in sorted({a.split(" ", 1)[0] for s in samples for a in s.firing}):
        ax.step(t, [sum(1 for a in s.firing if a.split(" ", 1)[0] == name) for s in samples], where="post",
                label=name)  # fmt: skip
    ax.set_ylabel("alerts firing")
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def _answers_table(answers: Sequence[Answer]) -> str:
    rows = "".join(
        f"<tr><td>{a.at:.0f} s</td><td>{html.escape(a.endpoint)}</td><td>{html.escape(a.model)}</td>"
        f"<td>{a.status}</td><td>{_seconds(a.eta_s)}</td><td>{_seconds(a.ready_after_s)}</td></tr>"
        for a in answers
    )
    head = "".join(f"<th>{h}</th>" for h in ("at", "endpoint", "model", "HTTP", "promised ready in", "ready after"))
    return f"<table><tr>{head}</tr>{rows}</table>"


def _alerts_table(alerts: dict[str, dict[str, Any]]) -> str:
    if not alerts:
        return "<p>none</p>"
    rows = ""
    for a in sorted(alerts.values(), key=lambda a: a["seen_from"]):
        labels = {k: html.escape(str(v)) for k, v in a["labels"].items()}
        description = html.escape(a.get("annotations", {}).get("description", ""))
        rows += (
            f"<tr><td>{labels.get('alertname', '?')}</td><td>{labels.get('severity', '')}</td>"
            f"<td>{labels.get('Hostname', '')} {labels.get('gpu', '')}</td>"
            f"<td>{a['seen_from']:.0f}-{a['seen_to']:.0f} s</td><td>{description}</td></tr>"
        )
    head = "<tr><th>alert</th><th>severity</th><th>GPU</th><th>seen</th><th>description</th></tr>"
    return f"<table>{head}{rows}</table>"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"
