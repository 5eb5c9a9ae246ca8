"""Consolidation's disruption budget counts nodes, as Karpenter's NodePool budgets do (`maxNodesPerInterval`: a
number, or a percentage of the GPU nodes rounded up, `"10%"` by default); the moves in this budget's scenarios
are in `tests/test_consolidation_within_class.py`. Before, it counted endpoints moved
(`maxDisruptionsPerInterval`), which a platform team's budget in nodes does not say."""

from __future__ import annotations

import json

import pytest
import yaml

from autoscaler.config import parse_config
from autoscaler.decide import ConsolidationSettings
from common.errors import InputError
from tests.test_helm_chart import CHART, helm


def test_a_percentage_budget_is_of_the_gpu_nodes_rounded_up() -> None:
    assert ConsolidationSettings().max_nodes_per_interval == "10%"
    assert [ConsolidationSettings().nodes_allowed(n) for n in (0, 1, 10, 11, 30)] == [0, 1, 1, 2, 3]
    assert ConsolidationSettings(max_nodes_per_interval="12.5%").nodes_allowed(16) == 2
    assert ConsolidationSettings(max_nodes_per_interval=3).nodes_allowed(100) == 3
    for wrong in (-1, "10", "110%", "ten%", True):
        with pytest.raises(ValueError, match="maxNodesPerInterval"):
            ConsolidationSettings(max_nodes_per_interval=wrong)


def budget(raw: dict[str, object]) -> int | str:
    return parse_config({"consolidation": raw})[0].consolidation.max_nodes_per_interval


def test_the_budget_is_configured_in_nodes_as_karpenter_writes_it_and_the_old_key_still_reads() -> None:
    assert budget({}) == "10%"
    assert [budget({"maxNodesPerInterval": v}) for v in (2, "3", "25%")] == [2, 3, "25%"]
    assert budget({"maxDisruptionsPerInterval": 2}) == 2  # the old name, now a count of nodes
    with pytest.raises(InputError, match="old name"):
        budget({"maxNodesPerInterval": 2, "maxDisruptionsPerInterval": 2})
    for wrong in ("two", 1.5, "-1%", True):
        with pytest.raises(InputError, match=r"consolidation\.maxNodesPerInterval|consolidation: maxNodes"):
            budget({"maxNodesPerInterval": wrong})


@pytest.mark.parametrize(
    ("given", "read"), [({}, "10%"), ({"maxNodesPerInterval": "25%"}, "25%"), ({"maxDisruptionsPerInterval": 2}, 2)]
)
def test_the_chart_passes_the_budget_and_its_old_name_through(given: dict[str, object], read: int | str) -> None:
    # The chart leaves maxNodesPerInterval unset, so values that give the old name still install and start.
    flags = ["--set-json", f"controller.config.consolidation={json.dumps({'enabled': True, **given})}"]
    result = helm("template", "egs", str(CHART), "--show-only", "templates/controller-config.yaml", *flags)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(yaml.safe_load(result.stdout)["data"]["config.yaml"])
    assert parse_config(config)[0].consolidation.max_nodes_per_interval == read
