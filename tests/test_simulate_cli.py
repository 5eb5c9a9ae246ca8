"""`egs trace convert` and `egs simulate` end to end: a ServeGen file converted, every policy
simulated with --json, --plot's PNGs, and each bad input refused with a message naming the row or
field and nothing written. Runs in-process through `egs.cli.main` on five days of m-small to stay fast."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from autoscaler.adapters.files import read_trace
from autoscaler.adapters.plots import PLOTS
from egs.cli import main
from egs.simulate_cli import _print_table
from tests.conftest import shared_data

REPO = Path(__file__).resolve().parent.parent
SCENARIO = REPO / "examples" / "scenario-servegen.yaml"
KEYS = {
    "policy", "p50_wait_s", "p95_wait_s", "p99_wait_s", "max_wait_s", "frac_wait_gt_60s", "short_replica_minutes",
    "node_hours", "idle_gpu_hours", "cost_usd", "eta_promised", "eta_kept_frac", "eta_mean_slack_s",
}  # fmt: skip
DAYS = ["--train-days", "4", "--score-days", "1"]


def _servegen(name: str) -> Path:
    return shared_data(f"servegen-bailian/{name}")


@pytest.fixture(scope="module")
def trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trace") / "m-small.csv"
    assert main(["trace", "convert", "--servegen", str(_servegen("language-m-small_aggregate_10min.csv")),
                 "--model", "m-small", "-o", str(out)]) == 0  # fmt: skip
    return out


def _simulate(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["simulate", "--scenario", str(SCENARIO), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_convert_writes_the_aggregate_with_gaps_left_out(trace: Path):
    aggregate = np.genfromtxt(_servegen("language-m-small_aggregate_10min.csv"), delimiter=",", names=True)
    gaps = int(np.sum((aggregate["total_rate_rps"] == 0) & (aggregate["active_clients"] == 0)))
    lines = trace.read_text().splitlines()
    assert lines[0] == "time_s,model,demand_rps"
    assert len(lines) - 1 == len(aggregate) - gaps and gaps > 0
    loaded = read_trace(trace)
    assert loaded.trace.step_s == 600 and loaded.trace.days == 14
    assert np.isclose(np.nansum(loaded.trace.demand_rps["m-small"]), aggregate["total_rate_rps"].sum())


def test_convert_with_clients_writes_the_long_format_that_sums_to_the_aggregate(tmp_path: Path):
    out = tmp_path / "clients.csv"
    code = main(["trace", "convert", "--servegen", str(_servegen("language-m-small_aggregate_10min.csv")),
                 "--clients", str(_servegen("language-m-small_per_client_10min.csv")), "--model", "m-small",
                 "-o", str(out)])  # fmt: skip
    assert code == 0
    assert out.read_text().splitlines()[0] == "time_s,model,demand_rps,client"
    loaded = read_trace(out)
    assert loaded.clients is not None and len(loaded.clients["m-small"]) == 43
    aggregate = np.genfromtxt(_servegen("language-m-small_aggregate_10min.csv"), delimiter=",", names=True)
    summed = np.nan_to_num(loaded.trace.demand_rps["m-small"])
    assert np.allclose(summed, aggregate["total_rate_rps"], rtol=1e-3, atol=0.01)


@pytest.mark.parametrize("step", [60, 600])
def test_convert_burstgpt_keeps_every_token_and_leaves_out_only_windows_without_a_request(tmp_path: Path, step: int):
    source = shared_data("burstgpt-derived-third-party/week1_per_minute_tokens_per_s.csv")
    minutes = np.genfromtxt(source, delimiter=",", names=True)
    out = tmp_path / "burstgpt.csv"
    assert main(["trace", "convert", "--burstgpt", str(source), "--model", "m-large", "--step", str(step),
                 "-o", str(out)]) == 0  # fmt: skip
    loaded = read_trace(out)
    rate = loaded.trace.demand_rps["m-large"]
    assert loaded.trace.step_s == step
    assert np.isclose(np.nansum(rate) * step, np.sum(minutes["total_tokens_per_s"]) * 60)  # tokens kept
    assert np.all(rate[~np.isnan(rate)] > 0)
    if step == 60:
        assert np.count_nonzero(~np.isnan(rate)) == np.count_nonzero(minutes["total_tokens_per_s"] > 0)


def test_convert_alibaba_genai_counts_every_request_once(tmp_path: Path):
    source = shared_data("alibaba-genai-v2026/lora_request_trace.csv")
    out = tmp_path / "genai.csv"
    assert main(["trace", "convert", "--alibaba-genai", str(source), "--model", "m-large", "-o", str(out)]) == 0
    loaded = read_trace(out)
    assert loaded.trace.step_s == 600 and 23 < loaded.trace.days < 23.1  # 2024-11-15 16:50 to 12-08 17:40
    assert round(np.nansum(loaded.trace.demand_rps["m-large"]) * 600) == 26_823  # the requests in the file


def test_convert_refuses_a_request_time_that_is_not_a_date(tmp_path: Path, capsys):
    bad = _write(tmp_path / "genai.csv", "gmt_create,predict_type\n2024-11-15 16:57:50,TXT\nyesterday,TXT\n")
    assert main(["trace", "convert", "--alibaba-genai", str(bad), "--model", "m", "-o", str(tmp_path / "o.csv")]) == 2
    assert "genai.csv: row 3: gmt_create 'yesterday' is not a date and time" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_the_table_shows_large_costs_in_full_and_small_figures_to_four_digits(capsys):
    _print_table({"cost_usd": 97715.332, "node_hours": 993.85, "eta_kept_frac": 0.951234, "eta_promised": 3})
    lines = capsys.readouterr().out.splitlines()
    assert [line.split() for line in lines] == [
        ["cost_usd", "97,715"],
        ["node_hours", "993.9"],
        ["eta_kept_frac", "0.9512"],
        ["eta_promised", "3"],
    ]


@pytest.mark.parametrize("policy", ["egs", "reactive", "static:3", "static:auto", "seasonal-naive", "oracle"])
def test_every_policy_simulates_and_prints_one_json_object(trace: Path, capsys, policy: str):
    code, out, err = _simulate(capsys, "--trace", str(trace), "--policy", policy, *DAYS, "--json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert set(result) >= KEYS and result["policy"] == policy
    if policy == "static:auto":
        assert result["fitted"] == {"static_k": result["static_k"]}
    elif policy == "egs":  # what was fitted on the training days, and the fixed parameters beside it
        assert 0 <= result["fitted"]["quantile"] <= 1 and result["fitted"]["fixed"]["lead_s"] == 600
    else:
        assert result["fitted"] == {}
    assert result["node_hours"] > 0 and result["cost_usd"] == pytest.approx(result["node_hours"] * 98.32)
    assert ("static_k" in result) == policy.startswith("static")
    if policy == "static:3":
        assert result["static_k"] == 3
    if policy == "oracle":
        assert result["max_wait_s"] == 0
    assert "100%" in err  # the progress bar reached its end on stderr


def test_plot_writes_a_non_empty_png_per_series(trace: Path, tmp_path: Path, capsys):
    code, out, _ = _simulate(capsys, "--trace", str(trace), "--policy", "egs", *DAYS, "--plot", str(tmp_path / "p"))
    assert code == 0 and "p99_wait_s" in out
    for name in PLOTS:
        png = (tmp_path / "p" / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5_000


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BAD_TRACES = {
    "missing column": ("time_s,model\n0,m-small\n", r"header: missing column demand_rps"),
    "negative rate": ("time_s,model,demand_rps\n0,m-small,1.0\n600,m-small,-2\n", r"row 3: demand_rps must be"),
    "not a number": ("time_s,model,demand_rps\n0,m-small,x\n", r"row 2: demand_rps 'x' is not a number"),
    "unknown model": ("time_s,model,demand_rps\n0,m-small,1\n0,m-huge,1\n", r"row 3: model 'm-huge' is not in"),
    "duplicate row": ("time_s,model,demand_rps\n0,m-small,1\n0,m-small,2\n", r"row 3: a second row for model"),
    "off the grid": (
        "time_s,model,demand_rps\n0,m-small,1\n600,m-small,1\n1000,m-small,1\n",
        r"row 3: time_s 600 is off",
    ),
    "sub-step grid": (
        "time_s,model,demand_rps\n0,m-small,1\n30,m-small,1\n",
        r"30 s apart, not a whole number of 60 s",
    ),
    # Sizes and numbers are bounded before anything is allocated (issue 21: MemoryError, tracebacks).
    "demand of 1e9": (
        "time_s,model,demand_rps\n0,m-small,1\n600,m-small,1e9\n",
        r"demand_rps: the peak demand needs 55,000,000 GPUs .* at most 100,000",
    ),
    "demand of 1e300": ("time_s,model,demand_rps\n0,m-small,1e300\n", r"row 2: demand_rps must be a finite number"),
    "a line of 1 MB": ("time_s,model,demand_rps\n0,m-small," + "1" * 2**20 + "\n", r"row 2: longer than 4,096"),
    "a year and more": (
        "time_s,model,demand_rps\n0,m-small,1\n60,m-small,1\n1e10,m-small,1\n",
        r"time_s spans 166,666,668 samples of 60 s; at most 527,040",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TRACES))
def test_a_bad_trace_is_refused_naming_the_row_and_nothing_is_written(tmp_path: Path, capsys, case: str):
    text, message = BAD_TRACES[case]
    bad = _write(tmp_path / "bad.csv", text)
    code, out, err = _simulate(capsys, "--trace", str(bad), "--policy", "reactive", "--train-days", "1",
                               "--score-days", "1", "--json", "--plot", str(tmp_path / "plots"))  # fmt: skip
    assert code == 2 and out == ""
    assert "bad.csv" in err and re.search(message, err), err
    assert not (tmp_path / "plots").exists()


def test_too_few_days_for_train_and_score_is_refused(trace: Path, tmp_path: Path, capsys):
    code, _, err = _simulate(capsys, "--trace", str(trace), "--policy", "egs", "--train-days", "10",
                             "--score-days", "5", "--plot", str(tmp_path / "plots"))  # fmt: skip
    assert code == 2 and "covers 14.00 days, fewer than the 15" in err
    assert not (tmp_path / "plots").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s["gpu_class"].update(gpus_per_node=0), r"gpus_per_node: 0 is less than the minimum of 1"),
        (lambda s: s["gpu_class"].update(gpus_per_node=2.5), r"gpus_per_node: 2\.5 is not of type 'integer'"),
        (lambda s: s["gpu_class"].update(provision_delay_s=[600, 300]), r"provision_delay_s: max 300 is below"),
        (lambda s: s["gpu_class"].update(provision_delay_s=[300]), r"provision_delay_s: \[300\] is too short"),
        (lambda s: s["models"]["m-small"].pop("load_s"), r"models\.m-small\.load_s: required"),
        (lambda s: s["models"]["m-small"].update(throughput_rps=-1), r"m-small\.throughput_rps: -1 is less than"),
        (lambda s: s["models"]["m-small"].update(gpus_per_replica=9), r"m-small\.gpus_per_replica: 9 does not fit"),
        (lambda s: s.update(headroom="lots"), r"headroom: 'lots' is not of type 'number'"),
        (lambda s: s["gpu_class"].update(gpus_per_node=10**9), r"gpus_per_node: 1000000000 is greater than the max"),
        (lambda s: s["gpu_class"].update(provision_delay_s=[300, 1e300]), r"provision_delay_s\[1\]: 1e\+300 is gre"),
        (lambda s: s["models"]["m-small"].update(throughput_rps=1e-300), r"throughput_rps: 1e-300 is less than"),
        (lambda s: s.update(extra=1), r"extra: unknown key \(allowed: gpu_class, headroom, models\)"),
    ],
)
def test_a_scenario_that_does_not_validate_is_refused_naming_the_field(trace: Path, tmp_path: Path, capsys, edit,
                                                                      message):  # fmt: skip
    scenario = yaml.safe_load(SCENARIO.read_text())
    edit(scenario)
    bad = _write(tmp_path / "scenario.yaml", yaml.safe_dump(scenario))
    code = main(["simulate", "--scenario", str(bad), "--trace", str(trace), "--policy", "reactive", *DAYS])
    err = capsys.readouterr().err
    assert code == 2 and "scenario.yaml" in err and re.search(message, err), err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "static:1000000000"], r"--policy: static:K takes K from 0 to 10,000 nodes"),
        (["--policy", "static:auto", "--seed", "-1"], r"--seed: must be from 0 to 4294967295, got -1"),
        (["--policy", "egs", "--train-days", "1e9"], r"--train-days: must be at most 366, got 1e9"),
    ],
)
def test_an_option_out_of_bounds_is_refused_by_the_parser_naming_it(trace: Path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        main(["simulate", "--scenario", str(SCENARIO), "--trace", str(trace), *DAYS, *args])
    assert exit_.value.code == 2 and re.search(message, capsys.readouterr().err)


def test_an_unwritable_plot_folder_is_refused_before_simulating(trace: Path, tmp_path: Path, capsys):
    blocker = _write(tmp_path / "a-file", "")
    code, out, err = _simulate(capsys, "--trace", str(trace), "--policy", "reactive", *DAYS, "--plot",
                               str(blocker / "plots"))  # fmt: skip
    assert code == 2 and out == "" and re.search(r"--plot .*a-file/plots: cannot write plots there", err), err


def test_an_unknown_policy_is_refused_by_the_parser(trace: Path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["simulate", "--scenario", str(SCENARIO), "--trace", str(trace), "--policy", "static:many", *DAYS])
    assert exit_.value.code == 2 and "--policy must be egs, reactive" in capsys.readouterr().err


def test_convert_refuses_a_file_without_the_rate_column_and_writes_nothing(tmp_path: Path, capsys):
    bad = _write(tmp_path / "agg.csv", "window_start_s,day\n0,0\n")
    out = tmp_path / "out.csv"
    assert main(["trace", "convert", "--servegen", str(bad), "--model", "m", "-o", str(out)]) == 2
    assert "agg.csv: header: missing column total_rate_rps" in capsys.readouterr().err
    assert not out.exists()
