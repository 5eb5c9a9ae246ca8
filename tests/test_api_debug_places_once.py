"""The POST debug line's median (churn's `eta_quantile_slack_s`) costs no second placement under the
admission lock: the churn benchmark runs `egs api` at debug, and every 202 it times would do the
work twice and hold back the POSTs behind it. Covers: one `admit` per POST at debug. Skips: the line's
content (test_churn_quantile_slack.py)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient

from autoscaler.admission import admit
from tests.test_endpoint_api import api, body, kube, post  # noqa: F401 (fixtures)


def test_a_202_logged_at_debug_places_its_endpoint_once(
    api: TestClient,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[Any] = []

    def counted(*args: Any) -> Any:
        calls.append(args)
        return admit(*args)

    monkeypatch.setattr("autoscaler.adapters.api.admit", counted)
    with caplog.at_level(logging.DEBUG, logger="egs.api"):
        answer = post(api, body())
    assert answer.status_code == 202, answer.text
    assert "its median at" in caplog.text
    assert len(calls) == 1
