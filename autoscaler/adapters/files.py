"""Trace CSV and scenario YAML: the files `egs simulate` and `egs trace convert` read and write.

The autoscaler's file adapter: it turns files into the simulator's plain data (`Trace`, `Scenario`)
and refuses bad input with an `InputError` that names the file and the row or field, before anything
is simulated or written.

Trace CSV, canonical long format with a header: `time_s,model,demand_rps[,client]`, one row per
sample (and client). Samples lie on one regular grid (the smallest gap between distinct times); time
is taken relative to the first sample, so day 0 starts there. A model's demand in a sample is the
sum over its clients' rows; a sample with no row for a model is a collection gap (as is a rate of 0).

ServeGen aggregate CSV (`window_start_s, ..., total_rate_rps, ..., active_clients, ...`) and its
per-client CSV (`window_start_s, client_id, rate_rps, cv`) are what `read_servegen` converts; a
window whose rate is 0 with no active client is written as no row (a gap).

Every size is bounded before it is allocated, and the message names the bound (issue 21: a demand of
1e9 was a MemoryError, a 1 GB line a traceback): the file's bytes, a line's characters, the samples
the grid spans, the values all series hold, and (`check_trace`) the GPUs the peak demand needs.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from autoscaler.simulator import STEP_S, GpuClass, ModelSpec, Scenario, Trace
from common.errors import InputError, naming
from common.schema import check, field_path, read_yaml

SCENARIO_SCHEMA = Path(__file__).parent.parent / "data" / "scenario.schema.json"
TRACE_COLUMNS = ("time_s", "model", "demand_rps")
CLIENT_COLUMN = "client"

MAX_FILE_BYTES = 512 * 2**20
"""A trace or ServeGen file larger than this is refused unread (a 14-day 1-minute trace with 100 clients
is about 100 MB)."""
MAX_LINE_CHARS = 4096
"""A row longer than this is refused before it is read whole (a row is four short fields)."""
MAX_SAMPLES = 366 * 1440
"""A grid of more samples than a year of 60 s steps is refused before it is allocated."""
MAX_SERIES_VALUES = 20_000_000
"""Samples x (models + clients) held in memory at most (160 MB of float64)."""
MAX_NUMBER = 1e12
"""time_s and demand_rps above this are refused (Unix time is ~1.8e9; no demand comes near)."""
MAX_GPUS = 100_000
"""GPUs the peak demand may need at once: the simulator holds each replica as an object."""


class TraceError(InputError):
    """A trace, scenario or ServeGen file that cannot be used; the message names the row or field."""


@dataclass(frozen=True)
class TraceRow:
    """One row of the canonical trace."""

    time_s: float
    model: str
    demand_rps: float
    client: str | None = None


@dataclass(frozen=True)
class TraceFile:
    """A loaded trace: the simulator's grid, plus each model's clients when the file names them."""

    trace: Trace
    start_s: float
    clients: Mapping[str, Mapping[str, npt.NDArray[np.float64]]] | None
    first_row: Mapping[str, int]
    """The line each model first appears on, for messages."""


def read_trace(path: str | Path) -> TraceFile:
    """Load and check a trace CSV."""
    with _open(path) as f:
        reader = csv.reader(_lines(f, path))
        header = _next(reader, path)
        if header is None:
            raise TraceError("empty file: expected the header time_s,model,demand_rps[,client]", source=path)
        header = [h.strip() for h in header]
        missing = [c for c in TRACE_COLUMNS if c not in header]
        if missing:
            raise TraceError(f"header: missing column {', '.join(missing)} (have {','.join(header)})", source=path)
        unknown = [c for c in header if c not in (*TRACE_COLUMNS, CLIENT_COLUMN)]
        if unknown:
            raise TraceError(f"header: unknown column {', '.join(unknown)}", source=path)
        col = {c: header.index(c) for c in header}
        rows = [(line, _row(values, col, line, path)) for line, values in _numbered(reader, path) if values]
    if not rows:
        raise TraceError("no rows after the header", source=path)
    return _grid(rows, CLIENT_COLUMN in col, path)


def trace_from_rows(rows: list[TraceRow], with_clients: bool) -> TraceFile:
    """The trace that `rows` (as `read_servegen` returns them) make, as if written and read back."""
    return _grid(list(enumerate(rows, start=2)), with_clients, "<rows>")


def _row(values: list[str], col: Mapping[str, int], line: int, path: str | Path) -> TraceRow:
    if len(values) != len(col):
        raise TraceError(f"row {line}: {len(values)} fields, the header has {len(col)}", source=path)
    rec = {name: values[i] for name, i in col.items()}
    model = rec["model"].strip()
    if not model:
        raise TraceError(f"row {line}: model is empty", source=path)
    client = rec[CLIENT_COLUMN].strip() if CLIENT_COLUMN in rec else None
    return TraceRow(_number(rec, "time_s", line, path), model, _number(rec, "demand_rps", line, path), client)


def _grid(rows: list[tuple[int, TraceRow]], with_clients: bool, path: str | Path) -> TraceFile:
    times = np.unique(np.array([r.time_s for _, r in rows]))
    start = float(times[0])
    step = float(np.min(np.diff(times))) if len(times) > 1 else 600.0
    samples = round((times[-1] - start) / step) + 1
    if samples > MAX_SAMPLES:
        raise TraceError(
            f"time_s spans {samples:,} samples of {step:g} s; at most {MAX_SAMPLES:,} (a year of 60 s steps)",
            source=path,
        )
    held = len({r.model for _, r in rows}) + (len({(r.model, r.client) for _, r in rows}) if with_clients else 0)
    if held * samples > MAX_SERIES_VALUES:
        raise TraceError(
            f"{held:,} series (models and clients) x {samples:,} samples is more than the "
            f"{MAX_SERIES_VALUES:,} values a trace may hold",
            source=path,
        )
    index: dict[float, int] = {}
    for t in times:
        k = (t - start) / step
        if abs(k - round(k)) > 1e-6:
            line = next(i for i, r in rows if r.time_s == t)
            raise TraceError(
                f"row {line}: time_s {t:g} is off the {step:g} s grid that starts at {start:g}", source=path
            )
        index[float(t)] = round(k)
    demand: dict[str, npt.NDArray[np.float64]] = {}
    clients: dict[str, dict[str, npt.NDArray[np.float64]]] = {}
    seen: set[tuple[str, float, str | None]] = set()
    first_row: dict[str, int] = {}
    for line, r in rows:
        first_row.setdefault(r.model, line)
        key = (r.model, r.time_s, r.client)
        if key in seen:
            what = f"model {r.model}" + (f", client {r.client}" if with_clients else "")
            raise TraceError(f"row {line}: a second row for {what} at time_s {r.time_s:g}", source=path)
        seen.add(key)
        k = index[r.time_s]
        series = demand.setdefault(r.model, np.full(samples, np.nan))
        series[k] = r.demand_rps if np.isnan(series[k]) else series[k] + r.demand_rps
        if with_clients and r.client is not None:
            per = clients.setdefault(r.model, {}).setdefault(r.client, np.zeros(samples))
            per[k] += r.demand_rps
    return TraceFile(Trace(step, demand), start, clients if with_clients else None, first_row)


def write_trace(path: str | Path, rows: Iterable[TraceRow], with_clients: bool) -> None:
    """Write the canonical trace CSV (to a temporary name first, so a failure leaves nothing behind)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with tmp.open("w", newline="") as f:
            out = csv.writer(f)
            out.writerow([*TRACE_COLUMNS, CLIENT_COLUMN] if with_clients else TRACE_COLUMNS)
            for r in rows:
                fields = [f"{r.time_s:.12g}", r.model, f"{r.demand_rps:.10g}"]
                out.writerow([*fields, r.client or ""] if with_clients else fields)
        tmp.replace(target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise TraceError(f"cannot write: {e.strerror}", source=path) from e


def read_servegen(aggregate: str | Path, model: str, per_client: str | Path | None = None) -> list[TraceRow]:
    """The rows of a canonical trace for one model from ServeGen's aggregate (and per-client) CSV."""
    if not model.strip():
        raise TraceError("--model must not be empty")
    agg = _dict_rows(aggregate, ("window_start_s", "total_rate_rps"))
    gaps: set[float] = set()
    rows: list[TraceRow] = []
    for line, rec in agg:
        t = _number(rec, "window_start_s", line, aggregate)
        rate = _number(rec, "total_rate_rps", line, aggregate)
        active = _number(rec, "active_clients", line, aggregate) if "active_clients" in rec else None
        if rate == 0 and not active:
            gaps.add(t)
        elif per_client is None:
            rows.append(TraceRow(t, model, rate))
    if per_client is None:
        return rows
    for line, rec in _dict_rows(per_client, ("window_start_s", "client_id", "rate_rps")):
        t = _number(rec, "window_start_s", line, per_client)
        rate = _number(rec, "rate_rps", line, per_client)
        if rate > 0 and t not in gaps:
            rows.append(TraceRow(t, model, rate, rec.get("client_id", "").strip()))
    rows.sort(key=lambda r: (r.time_s, r.client or ""))
    return rows


def read_burstgpt(path: str | Path, model: str, step_s: float) -> list[TraceRow]:
    """Rows for one model from BurstGPT's per-minute aggregate (`minute_index, total_tokens_per_s`).

    The demand is in the file's own unit, tokens/s (the scenario's `throughput_rps` is then tokens/s per
    replica). A minute the file lacks had no request: it counts as 0 in a window's mean; a window with no
    request at all gets no row (the simulator's gap).
    """
    return _binned(
        [(_number(rec, "minute_index", line, path) * 60.0, _number(rec, "total_tokens_per_s", line, path) * 60.0)
         for line, rec in _dict_rows(path, ("minute_index", "total_tokens_per_s"))],
        model, step_s,
    )  # fmt: skip


def read_alibaba_genai(path: str | Path, model: str, step_s: float) -> list[TraceRow]:
    """Rows for one model from Alibaba GenAI's request trace (`gmt_create, ...`): requests per second per
    window of `step_s`, every request counted whatever its status; a window without one gets no row.
    `gmt_create` is read as UTC (the trace shifted it by an undisclosed offset anyway)."""
    events = []
    for line, rec in _dict_rows(path, ("gmt_create",)):
        text = rec.get("gmt_create", "").strip()
        try:
            when = datetime.fromisoformat(text).replace(tzinfo=UTC)
        except ValueError:
            raise TraceError(f"row {line}: gmt_create {text!r} is not a date and time", source=path) from None
        events.append((when.timestamp(), 1.0))
    return _binned(events, model, step_s)


def _binned(events: list[tuple[float, float]], model: str, step_s: float) -> list[TraceRow]:
    """(time, amount) summed per window of `step_s` and divided by it: a rate per window with anything in it."""
    if not model.strip():
        raise TraceError("--model must not be empty")
    totals: dict[int, float] = {}
    for when, amount in events:
        window = math.floor(when / step_s)
        totals[window] = totals.get(window, 0.0) + amount
    return [TraceRow(w * step_s, model, total / step_s) for w, total in sorted(totals.items()) if total > 0]


def _dict_rows(path: str | Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    with _open(path) as f:
        reader = csv.reader(_lines(f, path))
        fields = [h.strip() for h in _next(reader, path) or []]
        missing = [c for c in required if c not in fields]
        if missing:
            raise TraceError(f"header: missing column {', '.join(missing)}", source=path)
        return [(line, dict(zip(fields, values, strict=False))) for line, values in _numbered(reader, path) if values]


def _number(rec: Mapping[str, str], name: str, line: int, path: str | Path) -> float:
    text = rec.get(name, "").strip()
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"row {line}: {name} {text!r} is not a number", source=path) from None
    if not math.isfinite(value) or not 0 <= value <= MAX_NUMBER:
        raise TraceError(
            f"row {line}: {name} must be a finite number from 0 to {MAX_NUMBER:g}, got {text}", source=path
        )
    return value


def _open(path: str | Path) -> Any:
    try:
        size = Path(path).stat().st_size
        if size > MAX_FILE_BYTES:
            raise TraceError(f"{size:,} bytes; at most {MAX_FILE_BYTES:,} are read", source=path)
        return Path(path).open(newline="", encoding="utf-8")  # whatever the locale: a bad byte is refused by its row
    except OSError as e:
        raise TraceError(f"cannot read: {e.strerror}", source=path) from e


def _lines(f: Any, path: str | Path) -> Iterator[str]:
    """The file's lines, each read at most MAX_LINE_CHARS at a time, so a huge line is refused unread."""
    for number, line in enumerate(iter(lambda: f.readline(MAX_LINE_CHARS + 1), ""), start=1):
        if len(line) > MAX_LINE_CHARS:
            raise TraceError(f"row {number}: longer than {MAX_LINE_CHARS:,} characters", source=path)
        yield line


def _next(reader: Iterator[list[str]], path: str | Path) -> list[str] | None:
    """The header row (None for an empty file)."""
    return next((values for _, values in _numbered(reader, path, start=1)), None)


def _numbered(reader: Iterator[list[str]], path: str | Path, start: int = 2) -> Iterator[tuple[int, list[str]]]:
    """(line, fields) per row; a row the csv module or the decoder cannot read is refused by its line."""
    line = start
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as e:
            raise TraceError(f"row {line}: cannot be read: {e}", source=path) from e
        yield line, values
        line += 1


# -- scenario --------------------------------------------------------------------------------------


def read_scenario(path: str | Path) -> Scenario:
    """Load and check a scenario YAML (`gpu_class`, `headroom`, `models`)."""
    with naming(path):
        return parse_scenario(read_yaml(path, TraceError))


def parse_scenario(raw: Any) -> Scenario:
    """A `Scenario` from parsed YAML; a `TraceError` names the first bad field.

    The format is `autoscaler/data/scenario.schema.json`'s; what follows checks what it cannot state.
    """
    check(raw, SCENARIO_SCHEMA, TraceError, "scenario")
    gc = raw["gpu_class"]
    low, high = (float(v) for v in gc["provision_delay_s"])
    if high < low:
        raise TraceError(f"gpu_class.provision_delay_s: max {high:g} is below min {low:g}")
    gpu_class = GpuClass(gc["name"], int(gc["gpus_per_node"]), float(gc["price_per_node_hour"]), (low, high))
    models: dict[str, ModelSpec] = {}
    for model, spec in raw["models"].items():
        gpus = int(spec["gpus_per_replica"])
        if gpus > gpu_class.gpus_per_node:
            raise TraceError(
                f"{field_path('models', str(model), 'gpus_per_replica')}: {gpus} does not fit a node of "
                f"{gpu_class.gpus_per_node} GPUs"
            )
        models[str(model)] = ModelSpec(float(spec["throughput_rps"]), gpus, float(spec["load_s"]))
    return Scenario(gpu_class, float(raw["headroom"]), models)


def check_trace(loaded: TraceFile, scenario: Scenario, days_needed: float, path: str | Path) -> None:
    """Refuse a trace with a model the scenario lacks, a grid finer than the simulator's step, or fewer
    days than train + score."""
    per = loaded.trace.step_s / STEP_S
    if per < 1 or abs(per - round(per)) > 1e-9:
        raise TraceError(
            f"samples are {loaded.trace.step_s:g} s apart, not a whole number of {STEP_S:g} s simulator steps",
            source=path,
        )
    for model in loaded.trace.demand_rps:
        if model not in scenario.models:
            raise TraceError(
                f"row {loaded.first_row[model]}: model {model!r} is not in the scenario's models "
                f"({', '.join(sorted(scenario.models))})",
                source=path,
            )
    gpus = 0.0
    for model, rps in loaded.trace.demand_rps.items():
        spec = scenario.models[model]
        peak = float(np.nanmax(rps)) if np.any(~np.isnan(rps)) else 0.0
        gpus += peak * (1 + scenario.headroom) / spec.throughput_rps * spec.gpus_per_replica
    if gpus > MAX_GPUS:
        raise TraceError(
            f"demand_rps: the peak demand needs {gpus:,.0f} GPUs at once (at the scenario's throughput_rps); "
            f"a simulation holds at most {MAX_GPUS:,}",
            source=path,
        )
    if loaded.trace.days + 1e-9 < days_needed:
        raise TraceError(
            f"covers {loaded.trace.days:.2f} days, fewer than the {days_needed:g} "
            "that --train-days + --score-days need",
            source=path,
        )
