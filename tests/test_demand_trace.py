"""The demand generator's trace CSV reads back as written, whatever the model is called.

Covers `benchmarks/demand.py`'s writer against the reader `egs simulate` uses
(`autoscaler.adapters.files.read_trace`); the generator's shapes are the warm-pool tests' business.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from autoscaler.adapters.files import read_trace
from benchmarks.demand import generate, main, write_csv


def test_a_generated_trace_reads_back_with_its_gaps_whatever_its_model_is_called(tmp_path: Path) -> None:
    demand = np.array([1.5, np.nan, 2.25, 1234.5678, 0.125])
    model = 'llama-3, 70b "instruct"'
    path = tmp_path / "gen.csv"
    write_csv(path, demand, 600, model)
    loaded = read_trace(path)
    assert loaded.trace.step_s == 600
    assert list(loaded.trace.demand_rps) == [model]
    np.testing.assert_array_equal(loaded.trace.demand_rps[model], demand)


def test_a_one_day_trace_is_generated_with_its_gaps_after_the_first_half(tmp_path: Path) -> None:
    """`--days 1` crashed: gaps were drawn from the second day on, which a one-day trace lacks."""
    for seed in range(5):
        demand, drawn = generate(seed, days=1)
        assert demand.shape == (1440,)
        assert np.isnan(demand).sum() == drawn.gap_minutes > 0
        assert not np.isnan(demand[:720]).any()


def test_the_command_writes_a_one_day_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "day.csv"
    monkeypatch.setattr(sys, "argv", ["demand.py", "--days", "1", "--step", "600", "-o", str(path)])
    main()
    assert read_trace(path).trace.days == 1.0


def test_fewer_than_one_day_is_refused_with_a_sentence() -> None:
    with pytest.raises(ValueError, match="days must be at least 1"):
        generate(0, days=0)
