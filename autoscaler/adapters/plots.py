"""PNG plots of one simulation (`egs simulate --plot DIR`), drawn for a capacity planner.

The autoscaler's plotting adapter: it reads the simulator's `Timeline` (and the timelines of the
baselines `egs simulate` runs beside the policy: `static:auto` and the oracle) and writes files with
matplotlib's Agg backend (no display needed). matplotlib is the `plot` extra: without it, asking for
plots is a setup error that says how to install it.

Every panel shares the x axis in days and shades the fitted (training) days, so what was scored is
plain; `overview.png` stacks them all, and each is also written alone:

- `demand`: the trace's demand in its own unit, per model;
- `cost`: $/h over time of the policy against `static:auto` and the oracle, and each one's cumulative
  cost over the scored days;
- `gpus`: GPUs busy (held by replicas) against GPUs idle (ready, held by none), the GPUs needed and,
  for `egs` and `seasonal-naive`, the seasonal forecast's upper peak (what the controller exports);
- `pool`: the pool's target against the idle nodes it holds, and the replicas waiting for capacity;
- `etas`: each promised replica's promised wait against the wait it had (above the diagonal: late).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autoscaler.simulator import Timeline
from common.errors import InputError, SetupError

PLOTS = ("overview", "demand", "cost", "gpus", "pool", "etas")
"""The files written, `<name>.png` each."""
DAY = 86_400.0


@dataclass(frozen=True)
class PlotInput:
    """What the plots show: the policy's run, its baselines' runs, and the scenario's numbers."""

    title: str
    timeline: Timeline
    baselines: Mapping[str, Timeline]
    """Label -> timeline, e.g. `static:auto (K=4)` and `oracle`: their $/h is drawn beside the policy's."""
    gpus_per_node: int
    price_per_node_hour: float
    score_start_day: float
    demand_unit: str = "req/s"


def check_plot_dir(directory: str | Path) -> None:
    """Refuse, before a long simulation, a plot folder that cannot be written or a missing matplotlib."""
    _pyplot()
    out = Path(directory)
    probe = out / ".egs-write-test"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InputError(f"cannot write plots there: {e.strerror or e}", source=f"--plot {directory}") from e


def write_plots(data: PlotInput, directory: str | Path) -> list[Path]:
    """Write one PNG per entry of `PLOTS` into `directory` (created if missing); return their paths."""
    plt = _pyplot()
    out = Path(directory)
    written = []
    panels = [name for name in PLOTS if name != "overview"]
    try:
        out.mkdir(parents=True, exist_ok=True)
        fig, axes = plt.subplots(len(panels), 1, figsize=(13, 3.2 * len(panels)), dpi=90, sharex=True)
        for ax, name in zip(axes, panels, strict=True):
            _panel(ax, name, data)
        axes[-1].set_xlabel("day")
        fig.suptitle(data.title)
        fig.tight_layout()
        written.append(_save(fig, out / "overview.png", plt))
        for name in panels:
            fig, ax = plt.subplots(figsize=(13, 4), dpi=90)
            _panel(ax, name, data)
            ax.set_xlabel("day")
            ax.set_title(f"{data.title}: {name}")
            fig.tight_layout()
            written.append(_save(fig, out / f"{name}.png", plt))
    except OSError as e:
        raise InputError(f"cannot write plots there: {e.strerror or e}", source=f"--plot {directory}") from e
    return written


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.savefig(path)
    plt.close(fig)
    return path


def _panel(ax: Any, name: str, data: PlotInput) -> None:
    days = data.timeline.time_s / DAY
    _DRAW[name](ax, data, days)
    if len(days):
        ax.set_xlim(days[0], days[-1] + (days[1] - days[0] if len(days) > 1 else 0))
        ax.axvspan(days[0], data.score_start_day, color="0.85", alpha=0.5, lw=0, label="fitted (training) days")
        ax.axvline(data.score_start_day, color="0.3", lw=1, ls=":")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, ncols=3)


def _demand(ax: Any, data: PlotInput, days: np.ndarray) -> None:
    for model, rate in data.timeline.demand_rps.items():
        ax.plot(days, rate, lw=0.7, label=model)
    ax.set_ylabel(f"demand ({data.demand_unit})")


def _cost(ax: Any, data: PlotInput, days: np.ndarray) -> None:
    runs = {"this policy": data.timeline, **data.baselines}
    scored = days >= data.score_start_day
    twin = ax.twinx()
    for (label, tl), color in zip(runs.items(), ("C0", "C1", "C2", "C3"), strict=False):
        per_hour = tl.ready_nodes * data.price_per_node_hour
        smooth = _hourly_mean(per_hour)
        ax.plot(days, smooth, lw=0.9, color=color, label=f"{label}: $/h (hourly mean)")
        cumulative = (
            np.cumsum(np.where(scored, per_hour, 0.0)) * (tl.time_s[1] - tl.time_s[0] if len(days) > 1 else 60) / 3600
        )
        twin.plot(days, cumulative, lw=1.4, ls="--", color=color, label=f"{label}: ${cumulative[-1]:,.0f} scored")
    ax.set_ylabel("$ per hour")
    twin.set_ylabel("cumulative $ over the scored days")
    twin.legend(loc="upper right", fontsize=8)


def _gpus(ax: Any, data: PlotInput, days: np.ndarray) -> None:
    tl = data.timeline
    idle = tl.ready_nodes * data.gpus_per_node - tl.busy_gpus
    ax.stackplot(days, tl.busy_gpus, idle, labels=("busy GPUs (replicas)", "idle GPUs (ready, unused)"),
                 colors=("C0", "C1"), alpha=0.6, step="post")  # fmt: skip
    ax.step(days, tl.need_gpus, where="post", lw=0.7, color="k", label="GPUs needed (R)")
    if tl.forecast_time_s:
        ax.step(np.asarray(tl.forecast_time_s) / DAY, tl.forecast_upper_gpus, where="post", lw=0.7, color="C4",
                label="forecast: upper peak over the lead time")  # fmt: skip
    # The forecast's first day (persistence with a wide quantile) must not squash the GPUs held.
    held = max(float(np.max(tl.ready_nodes * data.gpus_per_node, initial=0)), float(np.max(tl.need_gpus, initial=0)))
    ax.set_ylim(0, max(1.0, 1.3 * held))
    ax.set_ylabel("GPUs")


def _pool(ax: Any, data: PlotInput, days: np.ndarray) -> None:
    tl = data.timeline
    ax.step(days, tl.target_idle_nodes, where="post", lw=0.9, ls="--", label="pool target (idle nodes)")
    ax.step(days, tl.idle_nodes, where="post", lw=0.8, label="idle nodes held (ready + ordered)")
    ax.step(days, tl.waiting, where="post", lw=0.8, color="C3", label="replicas waiting for capacity")
    ax.set_ylabel(f"nodes ({data.gpus_per_node} GPUs) / replicas")


def _etas(ax: Any, data: PlotInput, days: np.ndarray) -> None:
    tl = data.timeline
    if tl.eta_made_s:
        made = np.asarray(tl.eta_made_s)
        promised = (np.asarray(tl.eta_promised_s) - made) / 60
        actual = (np.asarray(tl.eta_actual_s) - made) / 60
        late = actual > promised + 1e-9
        ax.scatter(made / DAY, promised, s=8, marker="_", color="C0", label="promised wait (min, incl. load)")
        ax.scatter(made[~late] / DAY, actual[~late], s=6, color="C2", label="actual: kept")
        ax.scatter(made[late] / DAY, actual[late], s=10, color="C3", label=f"actual: late ({int(late.sum())})")
    else:
        ax.text(
            0.5, 0.5, "no replica of the scored days waited: no ETA was promised", transform=ax.transAxes, ha="center"
        )
    ax.set_ylabel("minutes from request")


def _hourly_mean(x: np.ndarray, width: int = 60) -> np.ndarray:
    """The mean over the hour around each step (fewer steps at the ends, so the ends do not dip)."""
    kernel = np.ones(min(width, max(1, len(x))))
    total = np.convolve(x.astype(np.float64), kernel, mode="same")
    return np.asarray(total / np.convolve(np.ones(len(x)), kernel, mode="same"), dtype=np.float64)


_DRAW: dict[str, Callable[[Any, PlotInput, np.ndarray], None]] = {
    "demand": _demand,
    "cost": _cost,
    "gpus": _gpus,
    "pool": _pool,
    "etas": _etas,
}


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as e:
        raise SetupError("--plot needs matplotlib: pip install '.[plot]' in EGS's checkout") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
