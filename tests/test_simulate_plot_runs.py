"""`egs simulate --plot` draws the policy's run beside `static:auto`'s and the oracle's: a baseline that is
the policy asked is the same run (same policy, trace, days and seed), drawn from the run already made."""

from __future__ import annotations

from pathlib import Path

import pytest

import egs.simulate_cli as simulate_cli
from egs.cli import main
from tests.conftest import REPO, Spy, shared_data


def _servegen_small(tmp_path: Path) -> Path:
    source = shared_data("servegen-bailian/language-m-small_aggregate_10min.csv")
    out = tmp_path / "m-small.csv"
    assert main(["trace", "convert", "--servegen", str(source), "--model", "m-small", "-o", str(out)]) == 0
    return out


@pytest.mark.parametrize(("policy", "runs"), [("static:auto", 2), ("oracle", 2), ("reactive", 3)])
def test_a_baseline_the_policy_asked_is_is_not_simulated_again_for_the_plots(
    tmp_path: Path, spy: Spy, capsys: pytest.CaptureFixture[str], policy: str, runs: int
) -> None:
    calls = spy(simulate_cli, "simulate")
    trace = _servegen_small(tmp_path)
    code = main(["simulate", "--scenario", str(REPO / "examples" / "scenario-servegen.yaml"), "--trace", str(trace),
                 "--policy", policy, "--train-days", "4", "--score-days", "1", "--quiet", "--plot",
                 str(tmp_path / "p")])  # fmt: skip
    capsys.readouterr()
    assert code == 0
    assert len(calls) == runs, [c.arguments["policy"].name for c in calls]
    assert all((tmp_path / "p").iterdir())
