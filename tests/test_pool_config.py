"""The controller runs the EGS policy with the parameters a fit chose (issue 18: one policy, the one
`egs simulate` fitted): a class's `egs:` in the configuration file sets them, and a wrong one is named at load.

Covered: the keys `egs simulate --json` reports as fitted reach the class's `PoolSettings`; the controller's
warm pool reads them (the cap on idle nodes holds what the policy would otherwise hold); an unknown key and
a value the policy refuses are named with their class, before any loop. Not covered: fitting itself
(`tests/test_simulator.py`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from autoscaler.config import parse_config
from autoscaler.decide import Observation
from autoscaler.signals import History
from common.errors import InputError
from tests.test_decide import MODEL, NOW, endpoint, run, signals


def _config(egs: Mapping[str, object]) -> dict[str, object]:
    return {
        "throughput_rps": {MODEL: 2.0},
        "gpu_classes": {"H100-80GB": {"gpus_per_node": 8, "policy": "egs", "egs": egs}},
    }


def test_the_fitted_parameters_reach_the_classes_pool_settings() -> None:
    fitted = {"quantile": 0.9, "learn_s": 604_800, "max_idle_nodes": 3, "quiet_nodes": 1, "hold_s": 3_600}
    settings, _ = parse_config(_config(fitted))
    pool = settings.classes["H100-80GB"].pool_settings
    assert (pool.quantile, pool.learn_s, pool.max_idle_nodes, pool.quiet_nodes, pool.hold_s) == (
        0.9, 604_800, 3, 1, 3_600,
    )  # fmt: skip
    assert parse_config(_config({}))[0].classes["H100-80GB"].pool_settings.max_idle_nodes is None


def test_the_controllers_warm_pool_holds_no_more_than_the_configured_cap() -> None:
    # 20 req/s until an hour ago, 2 now: the policy holds the freed node (test_decide's case) unless capped.
    start = NOW - 4 * 3600
    values = tuple(20.0 if t < NOW - 3600 else 2.0 for t in np.arange(start, NOW + 1, 300.0))
    obs = Observation([], [endpoint()], signals=signals(demand=2.0), history={MODEL: History(start, 300.0, values)})
    targets = []
    for egs in ({}, {"max_idle_nodes": 0}):
        decision, _ = run(obs, parse_config(_config(egs))[0])
        targets.append(decision.pools[0].target)
    assert targets == [1, 0]


@pytest.mark.parametrize(
    ("egs", "named"),
    [
        ({"quantil": 0.9}, "gpu_classes.H100-80GB.egs: unknown field 'quantil'"),
        ({"quantile": 2}, "gpu_classes.H100-80GB: PoolSettings.quantile must be in [0, 1]"),
        ({"quantile": "high"}, "gpu_classes.H100-80GB:"),
    ],
)
def test_a_wrong_parameter_is_named_at_load(egs: dict[str, object], named: str) -> None:
    with pytest.raises(InputError, match=named.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        parse_config(_config(egs))


def test_egs_is_a_mapping() -> None:
    with pytest.raises(InputError, match=r"gpu_classes\.H100-80GB\.egs: expected a mapping"):
        parse_config({"gpu_classes": {"H100-80GB": {"gpus_per_node": 8, "egs": [0.9]}}})
