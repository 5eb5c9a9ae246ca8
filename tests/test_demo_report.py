"""The demo report's plots, from a run given as data (no demo needed): what a reader of them relies on.

Covers: every time axis but the promises' (seconds from the request) is the hour of the replayed day,
running on past midnight and labelled as a clock; legends sit outside the plotting area; a series without
data (the forecast before the controller has history, demand Prometheus has not measured yet) has no
legend entry; each endpoint's promised time to ready is drawn beside the actual one and said in a sentence
(kept and by how much, or late). The whole report from a real run, and its screenshot in Chromium, are
tests/test_demo.py's.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from matplotlib.lines import Line2D

from localplay.demo import _Demo
from localplay.demo_report import ETA_HEADING, Answer, Run, Sample, figures, promises, write_report


def sample(t: float, hour: float, firing: bool = False, measured: bool = True) -> Sample:
    return Sample(
        t=t,
        trace_hour=hour % 24,
        replayed_rps={"m": 10.0},
        measured_rps={"m": 9.0} if measured else {},
        capacity_rps={"m": 12.0},
        replicas={"chat": (2, 1)},
        pool_target=1,
        pool_idle=1,
        pool_objects={},
        nodes_ready=1,
        nodes_coming=0,
        vram_max={"gpu-h100-0": 0.97 if firing else 0.8},
        firing=["GPUVRAMSaturated gpu-h100-0/0"] if firing else [],
    )


@pytest.fixture(scope="module")
def run() -> Run:
    # Starts at 22:00 of the replayed day and wraps past midnight; the alert fires around midnight.
    samples = [sample(t, 22 + t / 10, firing=10 <= t < 20, measured=t >= 5) for t in range(0, 41, 2)]
    answers = [
        Answer(at=0.0, endpoint="demo/chat", model="m", status=202, eta_s=96.0, ready_after_s=11.0),
        Answer(at=6.0, endpoint="demo/docs", model="m", status=201, eta_s=None, ready_after_s=4.0),
        Answer(at=8.0, endpoint="demo/big", model="m", status=202, eta_s=20.0, ready_after_s=31.0),
    ]
    return Run(samples=samples, answers=answers)


@pytest.fixture(scope="module")
def plots(run: Run) -> list[tuple[str, Any]]:
    drawn = figures(run)
    for _, fig in drawn:
        fig.canvas.draw()
    return drawn


def _axes(plots: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    return [(heading, ax) for heading, fig in plots for ax in fig.axes]


def test_every_time_axis_is_the_hour_of_the_replayed_day_running_past_midnight(plots: list[tuple[str, Any]]) -> None:
    timed = [(h, fig) for h, fig in plots if h != ETA_HEADING]
    assert len(timed) == 5
    for heading, fig in timed:
        bottom = fig.axes[-1]
        assert bottom.get_xlabel() == "hour of the replayed day", heading
        for ax in fig.axes:
            for line in ax.get_lines():
                x = [float(v) for v in line.get_xdata()]
                if len(x) > 2:  # a data series, not a threshold line
                    assert x == sorted(x) and x[0] == 22.0 and x[-1] == 26.0, (heading, line.get_label())
        labels = {t.get_text() for t in bottom.get_xticklabels()}
        assert {"22:00", "00:00", "02:00"} <= labels, (heading, labels)


def test_legends_sit_outside_the_plotting_area(plots: list[tuple[str, Any]]) -> None:
    legends = [(h, ax, ax.get_legend()) for h, ax in _axes(plots) if ax.get_legend() is not None]
    assert len(legends) >= 6
    for heading, ax, legend in legends:
        assert legend.get_window_extent().x0 >= ax.get_window_extent().x1, heading


def test_no_series_without_data_is_in_a_legend(plots: list[tuple[str, Any]]) -> None:
    for heading, ax in _axes(plots):
        legend = ax.get_legend()
        if legend is None:
            continue
        labels = [t.get_text() for t in legend.get_texts()]
        assert not any("forecast" in label for label in labels), "no forecast in this run, so none in a legend"
        for handle, label in zip(legend.legend_handles, labels, strict=True):
            if isinstance(handle, Line2D):
                line = next(ln for ln in ax.get_lines() if ln.get_label() == label)
                assert any(not math.isnan(float(v)) for v in line.get_ydata()), (heading, label)


def test_each_endpoint_s_promise_is_drawn_beside_when_it_was_ready_and_said_in_a_sentence(
    run: Run, plots: list[tuple[str, Any]], tmp_path: Path
) -> None:
    (ax,) = dict(plots)[ETA_HEADING].axes
    widths = sorted(round(p.get_width()) for p in ax.patches)
    assert widths == [0, 4, 11, 20, 31, 96]  # promised and actual for each of the three endpoints
    assert promises(run.answers) == [
        "demo/chat: promised ready in 96 s (202), ready after 11 s: kept, 85 s early",
        "demo/docs: promised ready now (201), ready after 4 s: kept",
        "demo/big: promised ready in 20 s (202), ready after 31 s: late by 11 s",
    ]
    page = write_report(run, tmp_path / "report.html", "t").read_text()
    assert "demo/chat: promised ready in 96 s (202), ready after 11 s: kept, 85 s early" in page
    assert "<td>22:00 (0 s)</td>" in page


def test_an_alert_that_resolves_and_fires_again_is_two_rows_not_one_long_spell(tmp_path: Path) -> None:
    samples = [sample(t, 22 + t / 10) for t in range(0, 41, 2)]
    record = Run(samples=samples)
    alert = {"fingerprint": "f1", "labels": {"alertname": "GPUVRAMSaturated", "Hostname": "gpu-h100-0", "gpu": "0"}}
    for t in range(0, 41, 2):
        spell = {**alert, "startsAt": "first"} if t <= 10 else {**alert, "startsAt": "again"} if t >= 30 else None
        record.saw([spell] if spell else [], float(t))
    table = write_report(record, tmp_path / "report.html", "t").read_text()
    assert "<td>22:00-23:00 (0-10 s)</td>" in table and "<td>01:00-02:00 (30-40 s)</td>" in table
    assert "(0-40 s)" not in table  # the quiet hours between the spells are not shown as firing


def test_the_terminal_summary_says_when_no_vram_reading_has_come_yet() -> None:
    """The first summaries come before Prometheus has scraped a GPU: they say so, not an empty list."""
    demo = object.__new__(_Demo)
    demo.requested = {}
    assert "VRAM    highest: no reading yet" in demo._summary(replace(sample(0, 22), vram_max={}))
    assert "VRAM    highest: gpu-h100-0 80%" in demo._summary(sample(0, 22))
