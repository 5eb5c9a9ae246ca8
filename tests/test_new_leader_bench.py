"""benchmarks/new_leader.py runs end to end at its smallest (a new leader in a process of its own) and says its
figures on its last line: a benchmark that nobody runs in the suite rots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "new_leader.py"


def test_the_new_leader_benchmark_times_a_fresh_replicas_loops_and_writes_nothing() -> None:
    command = [sys.executable, str(BENCHMARK), "--endpoints", "2", "--loops", "2", "--runs", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert (found["endpoints"], found["runs"], found["writes"]) == (2, 1, 0)
    assert found["first_loop_s"] > 0 and found["later_loop_s"] > 0
