"""The decide step's notices (a node skipped, an annotation that cannot be read) are logged once per change
of their set, whatever comes between: a step that refused the sharing configuration read no node, and its
empty notices made the next good step log every notice again."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from autoscaler.decide import Observation, decide, report
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, h100


def test_a_step_that_read_no_node_between_two_good_ones_does_not_log_their_notices_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = h100("h100-bad")
    bad["metadata"]["labels"]["nvidia.com/gpu.replicas"] = "two"
    obs = Observation([h100("h100-0"), bad], [], [], signals={})
    refusing = replace(SETTINGS, sharing={"no-such-class": "timeslice"})
    said: frozenset[str] = frozenset()
    with caplog.at_level(logging.WARNING):
        for settings in (SETTINGS, refusing, SETTINGS):
            said = report(decide(obs, settings, REGISTRY, CATALOG, NOW), said, logging.getLogger("test"))
    assert [r.getMessage()[: len("node h100-bad skipped")] for r in caplog.records] == ["node h100-bad skipped"]
