"""An endpoint consolidation moved stays put for `consolidateAfter` (issue 16: a payback floor).

A move restarts the model servers on doubled capacity while the new ones load, and disrupts; a saving of 10-20%
pays for that only over tens of minutes. Before, an endpoint could move again as soon as the budget's interval
(600 s) had passed: churn seed 2501 moved one endpoint three times in 27 minutes, 640-1,400 s apart.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
import yaml

from autoscaler.config import parse_config
from autoscaler.decide import ConsolidationSettings, Decision, Observation, decide
from autoscaler.decide.state import Move
from common.errors import InputError
from tests.test_consolidation_moves_counted import with_move_recorded
from tests.test_consolidation_within_class import moves
from tests.test_decide import CATALOG, NOW, REGISTRY, endpoint, h100, signals, training
from tests.test_helm_chart import CHART, helm
from tests.test_reconcile_state import CONSOLIDATING, applied, l40s, observed


def chat_moved(ago: float, settings: Any = CONSOLIDATING) -> Decision:
    """chat serving on an H100, an L40S free beside it (a cheaper shape), its last move `ago` seconds before now,
    done (its old workload gone): the decision now."""
    nodes = [l40s("l40s-0"), h100("gpu-0")]
    first = decide(Observation(nodes, [endpoint()], signals=signals(), pods=[training("l40s-0", 1)]),
                   CONSOLIDATING, REGISTRY, CATALOG, NOW - ago)  # fmt: skip
    assert first.endpoints[0].gpu_class == "H100-80GB"
    owned, pods = applied(first)
    eps = [
        with_move_recorded(e, Move(NOW - ago, "team-a", (), nodes=("l40s-9",))) for e in observed(first, [endpoint()])
    ]
    return decide(Observation(nodes, eps, owned, signals(), pods=pods), settings, REGISTRY, CATALOG, NOW)


def test_an_endpoint_moved_past_the_interval_stays_put_until_consolidate_after() -> None:
    assert CONSOLIDATING.consolidation.interval_s < 1_200 < CONSOLIDATING.consolidation.consolidate_after_s
    settled = chat_moved(1_200)
    assert moves(settled) == []
    # Its last move stays on its status meanwhile, so a new leader keeps it put too.
    assert settled.statuses[("team-a", "chat")]["consolidation"]["nodes"] == ["l40s-9"]
    assert moves(chat_moved(CONSOLIDATING.consolidation.consolidate_after_s + 10)) == ["chat"]


def test_consolidate_after_zero_keeps_only_the_interval() -> None:
    eager = replace(CONSOLIDATING, consolidation=replace(CONSOLIDATING.consolidation, consolidate_after_s=0.0))
    assert moves(chat_moved(1_200, eager)) == ["chat"]
    assert moves(chat_moved(300, eager)) == []  # within the interval: its status records one move


def after(raw: dict[str, object]) -> float:
    return parse_config({"consolidation": raw})[0].consolidation.consolidate_after_s


def test_consolidate_after_is_configured_in_seconds() -> None:
    assert (after({}), after({"consolidateAfter": 0}), after({"consolidateAfter": 1800})) == (3600.0, 0.0, 1800.0)
    for wrong in (-1, "1h", True):
        with pytest.raises(InputError, match="consolidateAfter"):
            after({"consolidateAfter": wrong})
    with pytest.raises(ValueError, match="consolidateAfter"):
        ConsolidationSettings(consolidate_after_s=-1.0)


@pytest.mark.parametrize(("given", "read"), [({}, 3600.0), ({"consolidateAfter": 900}, 900.0)])
def test_the_chart_passes_consolidate_after_through(given: dict[str, object], read: float) -> None:
    flags = ["--set-json", f"controller.config.consolidation={json.dumps({'enabled': True, **given})}"]
    result = helm("template", "egs", str(CHART), "--show-only", "templates/controller-config.yaml", *flags)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(yaml.safe_load(result.stdout)["data"]["config.yaml"])
    assert parse_config(config)[0].consolidation.consolidate_after_s == read
