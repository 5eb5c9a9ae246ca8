"""Start-up of every `egs` command: wall time to the exit of `--help`, and peak RSS, against `python -c pass`.

Runs `egs --help` and `egs <command> --help` for every command of `egs.cli.COMMANDS` (the console
script beside this interpreter, as a user runs it) `--runs` times each, interleaved with the
baseline `python -c pass` of the same interpreter, so that a busy machine slows both alike; each
child's peak RSS comes from `wait4`. The target is 0.5 s for `egs --help` and `egs exporter --help`
on a quiet machine; the ratio to the baseline is the figure that carries over between machines.
Prints a table on stderr and one JSON object on the last line of stdout.

    python benchmarks/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from egs.cli import COMMANDS

TARGET_S = 0.5
TARGETED = ("egs --help", "egs exporter --help")


def run_once(argv: list[str]) -> tuple[float, float]:
    """(wall seconds from spawn to exit, peak RSS in MiB) of one child."""
    started = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {child.returncode}")
    return wall, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each command (the median is reported)")
    args = parser.parse_args()
    script = Path(sys.executable).with_name("egs")
    egs = [str(script)] if script.exists() else [sys.executable, "-m", "egs.cli"]
    commands = {"python -c pass": [sys.executable, "-c", "pass"], "egs --help": [*egs, "--help"]}
    commands |= {f"egs {name} --help": [*egs, name, "--help"] for name in COMMANDS}
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, argv in commands.items():  # interleaved: a load spike touches every command alike
            samples[name].append(run_once(argv))
    baseline = statistics.median(w for w, _ in samples["python -c pass"])
    results = {}
    for name, runs in samples.items():
        wall = statistics.median(w for w, _ in runs)
        results[name] = {
            "wall_s": round(wall, 4),
            "wall_min_s": round(min(w for w, _ in runs), 4),
            "peak_rss_mib": round(max(r for _, r in runs), 1),
            "ratio_vs_python": round(wall / baseline, 2),
        }
        print(f"{name:32} {wall * 1000:7.0f} ms  x{wall / baseline:5.1f}  {results[name]['peak_rss_mib']:6.1f} MiB",
              file=sys.stderr)  # fmt: skip
    summary = {
        "runs": args.runs,
        "baseline_s": round(baseline, 4),
        "target_s": TARGET_S,
        "within_target": {name: results[name]["wall_s"] <= TARGET_S for name in TARGETED},
        "commands": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
