"""The demo's HTML report: one self-contained file (plots as embedded PNG) of what the run showed.

The same signals the dashboards show, as the demo sampled them from Prometheus, Alertmanager, the
API's answers and the cluster stand-in every few seconds: demand (replayed, and as Prometheus
measured it) against serving capacity, warm-pool target and idle nodes, VRAM saturation per node,
the endpoints' replicas, each endpoint's promised ready time against when it was ready, and the alerts
that fired. The forecast drawn is the controller's (`egs_warm_pool_forecast_gpus`, GPUs of the class):
with less than a day of history, as in any demo run, it is a persistence forecast, and it appears once the
5-minute history has two samples (until then it is neither drawn nor in a legend).

Every time axis but the promises' is the hour of the replayed day (the demo starts at --start-hour and
may wrap past midnight: hours run on, 23:00 then 24:00 = 00:00); the promises' counts seconds from each
request, on the demo's clock. Legends sit outside the plotting area, and a series without data has no
legend entry. `figures(run)` returns the matplotlib figures, which the tests read.
Needs matplotlib (the `demo` / `plot` extra).
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import math
import time
from collections.abc import Mapping, Sequence
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
    """One firing spell (fingerprint and `startsAt`) -> the alert as Alertmanager's API gave it, with
    `seen_from` / `seen_to` (run seconds)."""
    summary: list[str] = field(default_factory=list)

    def saw(self, alerts: Sequence[Mapping[str, Any]], elapsed: float) -> None:
        """Record the alerts active at Alertmanager at `elapsed`. An alert that resolved and fired again
        has the same fingerprint but a new `startsAt`: a row of its own, so that the table does not
        stretch one spell over the hours it was quiet."""
        for alert in alerts:
            spell = f"{alert['fingerprint']} {alert.get('startsAt', '')}"
            self.alerts.setdefault(spell, {**alert, "seen_from": elapsed})["seen_to"] = elapsed


def write_report(run: Run, path: Path, title: str) -> Path:
    """Write the HTML report of `run` to `path` (a temporary file first, so that it appears whole)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}img{width:100%;border:1px solid #ccc}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Written {time.strftime('%Y-%m-%d %H:%M:%S %Z')}. Simulated GPUs, a Kubernetes API stand-in and a "
        "vLLM stand-in; the real EGS exporter code, Prometheus with the EGS rules, Alertmanager, controller and "
        f"API. Time axes show the hour of the replayed day, but in &ldquo;{html.escape(ETA_HEADING)}&rdquo;, which "
        "counts seconds from each request on the demo's clock.</p>",
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in run.summary) + "</ul>",
    ]
    for heading, fig in figures(run):
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts.append(f"<img alt='{html.escape(heading)}' src='data:image/png;base64,{_png(fig)}'>")
        if heading == ETA_HEADING:
            parts.append("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in promises(run.answers)) + "</ul>")
    parts.append("<h2>Endpoint requests</h2>" + _answers_table(run))
    parts.append("<h2>Alerts at Alertmanager</h2>" + _alerts_table(run))
    parts.append("</body></html>")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(parts))
    tmp.replace(path)
    return path


ETA_HEADING = "Endpoints: promised against actual time to ready"


def figures(run: Run) -> list[tuple[str, Any]]:
    """(heading, matplotlib figure) of every plot of the report, in its order."""
    import matplotlib

    matplotlib.use("Agg")
    samples = run.samples
    return [
        ("Demand and capacity", _demand(samples)),
        ("GPU need, its forecast, the warm pool and the nodes", _pool(samples)),
        ("VRAM saturation", _vram(samples)),
        ("Endpoints: wanted and ready replicas", _replicas(samples)),
        (ETA_HEADING, _etas(run.answers)),
        ("Alerts firing at Alertmanager", _alerts(samples)),
    ]


def promises(answers: Sequence[Answer]) -> list[str]:
    """One sentence per request: what was promised, when it was ready, kept or not and by how much."""
    lines = []
    for a in answers:
        promised = "ready now (201)" if a.eta_s is None else f"ready in {a.eta_s:.0f} s (202)"
        if a.ready_after_s is None:
            lines.append(f"{a.endpoint}: promised {promised}; not ready by the end of the run")
            continue
        lines.append(f"{a.endpoint}: promised {promised}, ready after {a.ready_after_s:.0f} s: {_kept(a)}")
    return lines


def _kept(a: Answer) -> str:
    """A 201 promises capacity now (the model still loads): kept once Ready. A 202 promises a time."""
    assert a.ready_after_s is not None
    if a.eta_s is None:
        return "kept"
    slack = a.eta_s - a.ready_after_s
    return f"kept, {slack:.0f} s early" if slack >= 0 else f"late by {-slack:.0f} s"


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _axes(rows: int = 1, time_axis: bool = True) -> tuple[Any, Any]:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MultipleLocator

    fig, axes = plt.subplots(rows, 1, figsize=(11, 3.2 * rows), sharex=True, squeeze=False)
    for ax in axes[:, 0]:
        ax.grid(alpha=0.3)
    if time_axis:
        bottom = axes[-1, 0]
        bottom.set_xlabel("hour of the replayed day")
        bottom.xaxis.set_major_locator(MultipleLocator(2))
        bottom.xaxis.set_major_formatter(FuncFormatter(lambda h, _: f"{int(h) % 24:02d}:{round(h % 1 * 60):02d}"))
    return fig, axes[:, 0]


def _legend(ax: Any) -> None:
    """The legend outside the plotting area, right of it, so that it covers no data; only series with data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8)


def _hours(samples: Sequence[Sample]) -> list[float]:
    """Each sample's hour of the replayed day, running on past midnight (the replay wraps round the day)."""
    hours: list[float] = []
    offset = 0.0
    for s in samples:
        if hours and s.trace_hour + offset < hours[-1] - 12:
            offset += 24.0
        hours.append(s.trace_hour + offset)
    return hours


def _has_data(values: Sequence[float]) -> bool:
    return any(not math.isnan(v) for v in values)


def _demand(samples: Sequence[Sample]) -> Any:
    models = sorted({m for s in samples for m in s.replayed_rps})
    fig, axes = _axes(max(1, len(models)))
    h = _hours(samples)
    for ax, model in zip(axes, models, strict=False):
        replayed = [s.replayed_rps.get(model, math.nan) for s in samples]
        measured = [s.measured_rps.get(model, math.nan) for s in samples]
        ax.plot(h, replayed, label="replayed demand", lw=1)
        if _has_data(measured):
            ax.plot(h, measured, label="demand (Prometheus)", lw=2)
        ax.step(h, [s.capacity_rps.get(model, 0.0) for s in samples], where="post", label="serving capacity")
        ax.set_ylabel("req/s")
        ax.set_title(model, fontsize=10)
        _legend(ax)
    return fig


def _pool(samples: Sequence[Sample]) -> Any:
    fig, (need, nodes) = _axes(2)
    h = _hours(samples)
    need.step(h, [s.gpus_held for s in samples], where="post", label="GPUs the replicas hold", lw=2)
    for bound, style in (("expected", "--"), ("upper", ":")):
        forecast = [s.forecast_gpus.get(bound, math.nan) for s in samples]
        if _has_data(forecast):
            need.plot(h, forecast, style, label=f"forecast need at the lead time's peak ({bound}, controller)")
    if not any(s.forecast_gpus for s in samples):
        note = "no forecast in this run: the controller's forecast needs two 5-minute samples of demand history"
        need.text(0.99, 0.03, note, transform=need.transAxes, ha="right", fontsize=8, color="grey")
    need.set_ylabel("GPUs")
    _legend(need)
    nodes.step(h, [s.pool_target for s in samples], where="post", label="warm-pool target (nodes)", lw=2)
    nodes.step(h, [s.pool_idle for s in samples], where="post", label="warm-pool idle nodes")
    nodes.step(h, [s.nodes_ready for s in samples], where="post", label="GPU nodes ready")
    nodes.step(h, [s.nodes_coming for s in samples], where="post", label="GPU nodes provisioning", ls=":")
    nodes.set_ylabel("nodes")
    _legend(nodes)
    return fig


def _vram(samples: Sequence[Sample]) -> Any:
    fig, (ax,) = _axes()
    h = _hours(samples)
    for node in sorted({n for s in samples for n in s.vram_max}):
        ax.plot(h, [s.vram_max.get(node, math.nan) for s in samples], label=node)
    ax.axhline(0.95, color="red", ls="--", lw=1, label="GPUVRAMSaturated threshold (95%)")
    label = "GPUVRAMSaturated firing"
    for before, (start, end) in zip(samples, itertools.pairwise(h), strict=False):
        if any(a.startswith("GPUVRAMSaturated") for a in before.firing):
            ax.axvspan(start, end, color="red", alpha=0.08, lw=0, label=label)
            label = "_nolegend_"
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("highest VRAM used ratio")
    _legend(ax)
    return fig


def _replicas(samples: Sequence[Sample]) -> Any:
    fig, (ax,) = _axes()
    h = _hours(samples)
    for endpoint in sorted({e for s in samples for e in s.replicas}):
        ax.step(h, [s.replicas.get(endpoint, (0, 0))[0] for s in samples], where="post", label=f"{endpoint} wanted")
        ax.step(h, [s.replicas.get(endpoint, (0, 0))[1] for s in samples], where="post", ls="--",
                label=f"{endpoint} ready")  # fmt: skip
    ax.set_ylabel("replicas")
    _legend(ax)
    return fig


def _etas(answers: Sequence[Answer]) -> Any:
    """Per endpoint, the time to ready its answer promised (0 for a 201) beside the time it took."""
    fig, (ax,) = _axes(time_axis=False)
    names = [a.endpoint for a in answers]
    y = list(range(len(answers)))
    promised = [a.eta_s or 0.0 for a in answers]
    actual = [a.ready_after_s if a.ready_after_s is not None else math.nan for a in answers]
    ax.barh([i + 0.2 for i in y], promised, height=0.4, color="tab:blue", label="promised (202: estimatedReadyTime)")
    if _has_data(actual):
        ax.barh([i - 0.2 for i in y], actual, height=0.4, color="tab:green", label="actual (until Ready)")
    for i, a in enumerate(answers):
        text = f"promised {a.eta_s:.0f} s" if a.eta_s is not None else "201: ready now"
        text += "" if a.ready_after_s is None else f", ready after {a.ready_after_s:.0f} s: {_kept(a)}"
        ax.text(max(promised[i], 0 if math.isnan(actual[i]) else actual[i]), i, f"  {text}", va="center", fontsize=8)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("seconds from the request (the demo's clock)")
    ax.set_xlim(0, max([*promised, *(v for v in actual if not math.isnan(v)), 1.0]) * 1.6)
    _legend(ax)
    return fig


def _alerts(samples: Sequence[Sample]) -> Any:
    fig, (ax,) = _axes()
    h = _hours(samples)
    for name in sorted({a.split(" ", 1)[0] for s in samples for a in s.firing}):
        ax.step(h, [sum(1 for a in s.firing if a.split(" ", 1)[0] == name) for s in samples], where="post",
                label=name)  # fmt: skip
    if not any(s.firing for s in samples):
        ax.text(0.5, 0.5, "no alert fired", transform=ax.transAxes, ha="center", color="grey")
    ax.set_ylabel("alerts firing")
    _legend(ax)
    return fig


def _hour_at(samples: Sequence[Sample], t: float) -> str:
    """The replayed day's hour at `t` run seconds, as HH:MM."""
    if not samples:
        return "-"
    h = _hours(samples)
    i = min(range(len(samples)), key=lambda k: abs(samples[k].t - t))
    return f"{int(h[i]) % 24:02d}:{round(h[i] % 1 * 60) % 60:02d}"


def _answers_table(run: Run) -> str:
    rows = "".join(
        f"<tr><td>{_hour_at(run.samples, a.at)} ({a.at:.0f} s)</td><td>{html.escape(a.endpoint)}</td>"
        f"<td>{html.escape(a.model)}</td><td>{a.status}</td><td>{_seconds(a.eta_s)}</td>"
        f"<td>{_seconds(a.ready_after_s)}</td></tr>"
        for a in run.answers
    )
    head = "".join(
        f"<th>{h}</th>" for h in ("at (replayed hour)", "endpoint", "model", "HTTP", "promised ready in", "ready after")
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def _alerts_table(run: Run) -> str:
    if not run.alerts:
        return "<p>none</p>"
    rows = ""
    for a in sorted(run.alerts.values(), key=lambda a: a["seen_from"]):
        labels = {k: html.escape(str(v)) for k, v in a["labels"].items()}
        description = html.escape(a.get("annotations", {}).get("description", ""))
        seen = f"{_hour_at(run.samples, a['seen_from'])}-{_hour_at(run.samples, a['seen_to'])}"
        rows += (
            f"<tr><td>{labels.get('alertname', '?')}</td><td>{labels.get('severity', '')}</td>"
            f"<td>{labels.get('Hostname', '')} {labels.get('gpu', '')}</td>"
            f"<td>{seen} ({a['seen_from']:.0f}-{a['seen_to']:.0f} s)</td><td>{description}</td></tr>"
        )
    head = "<tr><th>alert</th><th>severity</th><th>GPU</th><th>seen (replayed hours)</th><th>description</th></tr>"
    return f"<table>{head}{rows}</table>"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} s"
