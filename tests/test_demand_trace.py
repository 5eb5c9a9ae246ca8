"""The demand generator's trace CSV reads back as written, whatever the model is called.

Covers `benchmarks/demand.py`'s writer against the reader `egs simulate` uses
(`autoscaler.adapters.files.read_trace`); the generator's shapes are the warm-pool tests' business.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autoscaler.adapters.files import read_trace
from benchmarks.demand import write_csv


def test_a_generated_trace_reads_back_with_its_gaps_whatever_its_model_is_called(tmp_path: Path) -> None:
    demand = np.array([1.5, np.nan, 2.25, 1234.5678, 0.125])
    model = 'llama-3, 70b "instruct"'
    path = tmp_path / "gen.csv"
    write_csv(path, demand, 600, model)
    loaded = read_trace(path)
    assert loaded.trace.step_s == 600
    assert list(loaded.trace.demand_rps) == [model]
    np.testing.assert_array_equal(loaded.trace.demand_rps[model], demand)
