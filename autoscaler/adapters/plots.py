"""PNG plots of one simulation (`egs simulate --plot DIR`): demand, forecast, replicas, pool, waits.

The autoscaler's plotting adapter: it reads the simulator's `Timeline` and writes files with
matplotlib's Agg backend (no display needed). matplotlib is the `plot` extra: without it, asking for
plots is a setup error that says how to install it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from autoscaler.simulator import Timeline
from common.errors import InputError, SetupError

PLOTS = ("demand", "forecast", "replicas", "pool", "waits")
"""The files written, `<name>.png` each."""


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


def write_plots(timeline: Timeline, directory: str | Path, title: str, gpus_per_node: int) -> list[Path]:
    """Write one PNG per entry of `PLOTS` into `directory` (created if missing); return their paths."""
    plt = _pyplot()
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    days = timeline.time_s / 86_400.0
    written = []
    for name in PLOTS:
        fig, ax = plt.subplots(figsize=(12, 4), dpi=100)
        _DRAW[name](ax, timeline, days, gpus_per_node)
        ax.set_xlabel("day")
        ax.set_title(f"{title}: {name}")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left")
        fig.tight_layout()
        path = out / f"{name}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written


def _demand(ax: Any, t: Timeline, days: np.ndarray, gpn: int) -> None:
    for model, rps in t.demand_rps.items():
        ax.plot(days, rps, lw=0.8, label=model)
    ax.set_ylabel("demand (req/s)")


def _forecast(ax: Any, t: Timeline, days: np.ndarray, gpn: int) -> None:
    ax.plot(days, t.need_gpus, lw=0.8, label="GPUs needed (R)")
    if t.forecast_time_s:
        ax.step(np.asarray(t.forecast_time_s) / 86_400.0, t.forecast_upper_gpus, where="post", lw=0.8,
                label="forecast upper peak")  # fmt: skip
    ax.set_ylabel("GPUs")


def _replicas(ax: Any, t: Timeline, days: np.ndarray, gpn: int) -> None:
    for model, r in t.replicas.items():
        ax.step(days, r, where="post", lw=0.8, label=f"{model} wanted")
    ax.step(days, t.waiting, where="post", lw=0.8, label="waiting")
    ax.set_ylabel("replicas")


def _pool(ax: Any, t: Timeline, days: np.ndarray, gpn: int) -> None:
    ax.step(days, t.ready_nodes, where="post", lw=0.8, label="ready nodes")
    ax.step(days, t.idle_nodes, where="post", lw=0.8, label="idle nodes (held)")
    ax.step(days, t.target_idle_nodes, where="post", lw=0.8, ls="--", label="pool target")
    ax.set_ylabel(f"nodes ({gpn} GPUs)")


def _waits(ax: Any, t: Timeline, days: np.ndarray, gpn: int) -> None:
    if t.waits_s:
        ax.scatter(np.asarray(t.wait_time_s) / 86_400.0, t.waits_s, s=4, label="capacity wait per replica")
    ax.set_xlim(days[0] if len(days) else 0, days[-1] if len(days) else 1)
    ax.set_ylabel("wait (s)")


_DRAW = {"demand": _demand, "forecast": _forecast, "replicas": _replicas, "pool": _pool, "waits": _waits}


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as e:
        raise SetupError("--plot needs matplotlib: pip install 'egs[plot]'") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
