"""The POST debug line's median (churn's `eta_quantile_slack_s`) costs no second placement under the
admission lock: the churn benchmark runs `egs api` at debug, and every 202 it times would do the
work twice and hold back the POSTs behind it. Covers: one `admit` per POST at debug. Skips: the line's
content (test_churn_quantile_slack.py)."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

import autoscaler.adapters.api
from tests.conftest import Spy
from tests.test_endpoint_api import api, body, kube, post  # noqa: F401 (fixtures)


def test_a_202_logged_at_debug_places_its_endpoint_once(
    api: TestClient,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    spy: Spy,
) -> None:
    calls = spy(autoscaler.adapters.api, "admit")
    with caplog.at_level(logging.DEBUG, logger="egs.api"):
        answer = post(api, body())
    assert answer.status_code == 202, answer.text
    assert "its median at" in caplog.text
    assert len(calls) == 1
