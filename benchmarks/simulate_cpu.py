"""CPU of `egs simulate --policy egs` against `--policy reactive`, per trace, and the same answers as before.

Issue 18's CPU target: a simulation of the EGS policy costs at most 5x the CPU of a reactive one. Two
ratios per trace, both EGS over reactive:

- `command`: the whole `egs simulate --json` process (start-up, loading, EGS's fit on the training
  days, the scored run), its CPU (user + system) read with `getrusage(RUSAGE_CHILDREN)`;
- `in_process`: one scored simulation with the fitted policy, as `benchmarks/warm_pool.py` times it
  (`egs_cpu_over_reactive`), in a child process of its own.

With `--against REV` the same runs are made a second time with the code of git revision REV (exported
to a temporary folder and run by the same interpreter), and every `--json` output is compared field by
field: a speed-up must not change a result. Fields only one revision reports (added meanwhile by other
work) are listed apart (`new_fields`), not compared. The traces are `benchmarks/warm_pool.py`'s, written as
trace CSVs to a temporary folder, each with its scenario and days from there; with `--slow-orders`, the
scenario's provisioning delays are 5-20 minutes instead (as `warm_pool.py --slow-orders` runs them).

Progress goes to stderr; the last line of stdout is one JSON object
`{"traces": {NAME: {"current": {...}, "reference": {...}, "identical": bool}}, "summary": {...}}`.

    python benchmarks/simulate_cpu.py [--traces NAME,...|all] [--against REV] [--repeat N] [--seed S] [--slow-orders]

`all` is the 18 traces of `warm_pool.py`'s default run; `benchmarks/check_demand.py`'s traces
(`check-flash-3`, seeds 0-9) are run when named.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from autoscaler.adapters.files import TraceRow, write_trace  # noqa: E402
from benchmarks.warm_pool import EXAMPLES, SLOW_ORDERS_S, Case, cases, check_cases, data_dir  # noqa: E402

DEFAULT_TRACES = (
    "servegen-m-large",
    "servegen-m-mid",
    "servegen-m-small",
    "burstgpt-10min",
    "burstgpt-1min",
    "alibaba-genai",
    "synthetic-0",
    "synthetic-1min-0",
)
POLICIES = ("reactive", "egs")

IN_PROCESS = """
import json, sys, time
from autoscaler import pool
from autoscaler.adapters.files import read_scenario, read_trace
from autoscaler.fitting import Protocol, fit_egs
from autoscaler.simulator import Policy, pool_settings, simulate
forget = getattr(pool, "forget", lambda: None)  # revisions before it kept nothing a later run could reuse
trace_csv, scenario_yaml, train, score, seed, repeat = sys.argv[1:]
scenario = read_scenario(scenario_yaml)
protocol = Protocol(float(train), float(score), min(3.0, float(train) - 1), int(seed))
trace = read_trace(trace_csv).trace
egs = fit_egs(trace, scenario, protocol, Policy("egs", pool_settings(scenario)))
cut = trace.first_days(protocol.score_window.end_day)
cpu = {}
for policy in (egs, Policy("reactive", pool_settings(scenario))):
    for _ in range(int(repeat)):
        forget()
        t0 = time.process_time()
        simulate(cut, scenario, policy, protocol.score_window, protocol.seed)
        cpu[policy.name] = min(cpu.get(policy.name, 1e9), time.process_time() - t0)
print(json.dumps(cpu))
"""
"""One scored run per policy (the least CPU of `repeat`), timed inside a child whose working folder is the
code under test (so the child imports that revision's `autoscaler`, not this checkout's); it uses only the
API both share. Each run starts cold (`pool.forget`): the fit's runs leave the EGS policy's cache warm
for the scored days they share, which the command, not this figure, gains from."""


def write_case(case: Case, data: Path, folder: Path) -> Path:
    """The case's whole trace as the CSV `egs simulate --trace` reads (a gap is no row)."""
    trace = case.load(data)
    rows = [
        TraceRow(i * trace.step_s, model, float(value))
        for model, values in trace.demand_rps.items()
        for i, value in enumerate(values)
        if value == value  # not NaN
    ]
    path = folder / f"{case.name}.csv"
    write_trace(path, rows, with_clients=False)
    return path


def write_scenario(case: Case, folder: Path, slow_orders: bool) -> Path:
    """The case's scenario file, or a copy of it with 5-20 minute provisioning (`slow_orders`)."""
    path = EXAMPLES / case.scenario
    if not slow_orders:
        return path
    raw = yaml.safe_load(path.read_text())
    raw["gpu_class"]["provision_delay_s"] = list(SLOW_ORDERS_S)
    slow = folder / f"slow-{case.scenario}"
    slow.write_text(yaml.safe_dump(raw))
    return slow


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_code(code: Path, case: Case, trace_csv: Path, scenario: str, repeat: int) -> dict[str, Any]:
    """Each policy's `egs simulate --json` (output and least CPU of `repeat` runs, which must agree) and the
    in-process CPU, with the code in `code`. The least CPU: the machine is shared, and load only adds."""
    p = case.protocol
    days = [str(p.train_days), str(p.score_days)]
    out: dict[str, Any] = {"json": {}, "command_cpu_s": {}}
    for policy in POLICIES:
        args = ["--trace", str(trace_csv), "--scenario", scenario, "--policy", policy]
        args += ["--train-days", days[0], "--score-days", days[1], "--seed", str(p.seed), "--json", "--quiet"]
        answers = []
        for _ in range(repeat):
            before = children_cpu()
            done = subprocess.run([sys.executable, "-m", "egs", "simulate", *args], cwd=code, check=True,
                                  capture_output=True, text=True)  # fmt: skip
            cpu = round(children_cpu() - before, 3)
            out["command_cpu_s"][policy] = min(out["command_cpu_s"].get(policy, cpu), cpu)
            answers.append(json.loads(done.stdout.strip().splitlines()[-1]))
        if any(a != answers[0] for a in answers):
            raise SystemExit(f"{case.name}: `egs simulate --policy {policy}` answered differently when run again")
        out["json"][policy] = answers[0]
    child = [sys.executable, "-c", IN_PROCESS, str(trace_csv), scenario, *days, str(p.seed), str(repeat)]
    inner = subprocess.run(child, cwd=code, check=True, capture_output=True, text=True)
    out["in_process_cpu_s"] = {k: round(v, 3) for k, v in json.loads(inner.stdout.strip().splitlines()[-1]).items()}
    cmd, sim = out["command_cpu_s"], out["in_process_cpu_s"]
    out["command_egs_over_reactive"] = round(cmd["egs"] / cmd["reactive"], 2)
    out["in_process_egs_over_reactive"] = round(sim["egs"] / sim["reactive"], 2)
    return out


def compare(current: dict[str, Any], reference: dict[str, Any]) -> tuple[bool, list[str]]:
    """(every field both report is equal, for every policy; the fields only one of them reports)."""
    same, new = True, set()
    for policy in POLICIES:
        a, b = current[policy], reference[policy]
        same &= all(a[k] == b[k] for k in a.keys() & b.keys())
        new |= a.keys() ^ b.keys()
    return same, sorted(new)


def export(rev: str, folder: Path) -> Path:
    """The tree of git revision `rev`, written to `folder`."""
    folder.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def summary(traces: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"traces": len(traces)}
    for side in ("current", "reference"):
        runs = [t[side] for t in traces.values() if side in t]
        if runs:
            out[side] = {
                "max_command_egs_over_reactive": max(r["command_egs_over_reactive"] for r in runs),
                "max_in_process_egs_over_reactive": max(r["in_process_egs_over_reactive"] for r in runs),
                "command_cpu_s": round(sum(sum(r["command_cpu_s"].values()) for r in runs), 1),
            }
    if any("identical" in t for t in traces.values()):
        out["all_identical"] = all(t.get("identical", False) for t in traces.values())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=data_dir(), help="the shared data folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the provisioning delays")
    parser.add_argument("--traces", default=",".join(DEFAULT_TRACES), help="comma-separated trace names, or all")
    parser.add_argument("--against", metavar="REV", help="also run git revision REV and compare every output")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the least CPU counts")
    parser.add_argument("--slow-orders", action="store_true", help="5-20 minute provisioning instead of 5-10")
    args = parser.parse_args()
    wanted = [w for w in args.traces.split(",") if w]
    chosen = [c for c in cases(args.seed) if c.name in wanted or args.traces == "all"]
    chosen += [c for c in check_cases(args.seed, range(10)) if c.name in wanted]  # the check set: only by name
    traces: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        reference = export(args.against, folder / "reference") if args.against else None
        for case in chosen:
            print(f"{case.name} ...", file=sys.stderr, flush=True)
            trace_csv = write_case(case, args.data, folder)
            scenario = str(write_scenario(case, folder, args.slow_orders))
            row: dict[str, Any] = {"current": run_code(REPO, case, trace_csv, scenario, args.repeat)}
            if reference is not None:
                row["reference"] = run_code(reference, case, trace_csv, scenario, args.repeat)
                row["identical"], row["new_fields"] = compare(row["current"]["json"], row["reference"]["json"])
            traces[case.name] = row
            print(line(case.name, row), file=sys.stderr, flush=True)
    out = {"traces": traces, "summary": summary(traces)}
    print(json.dumps(out["summary"]), file=sys.stderr)
    print(json.dumps(out))


def line(name: str, row: dict[str, Any]) -> str:
    parts = [name]
    for side in ("current", "reference"):
        if side in row:
            r, cpu = row[side], row[side]["command_cpu_s"]
            command = f"command {cpu['egs']:.2f}/{cpu['reactive']:.2f} s = {r['command_egs_over_reactive']:.1f}x"
            parts.append(f"{side}: {command}, in-process {r['in_process_egs_over_reactive']:.1f}x")
    if "identical" in row:
        parts.append("identical" if row["identical"] else "DIFFERENT")
    return "; ".join(parts)


if __name__ == "__main__":
    main()
