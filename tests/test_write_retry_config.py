"""The waits before a loop retries its failed writes come from the configuration (`writeRetryDelaysSeconds`),
so that a play that compresses time (benchmarks/churn.py) compresses them too: 3.25 s of real backoff was
65 s of its clock at x20. Covers the key's default, its parsing and refusals (a wait shorter than the one
before among them: the last bounds a loop's retries), and the loop retrying as many times as it lists."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from autoscaler.config import parse_config
from common.errors import InputError
from localplay.kube_standin import KubeCluster
from tests.test_controller import ENDPOINTS, SETTINGS, FixedSignals, controller
from tests.test_decide import endpoint, h100


def test_the_default_is_a_quarter_one_and_two_seconds_and_the_key_sets_others() -> None:
    assert parse_config({})[0].write_retry_delays_s == (0.25, 1.0, 2.0)
    assert parse_config({"writeRetryDelaysSeconds": [0.0125, 0.05, 0.1]})[0].write_retry_delays_s == (0.0125, 0.05, 0.1)
    assert parse_config({"writeRetryDelaysSeconds": []})[0].write_retry_delays_s == ()


@pytest.mark.parametrize("value", [2, ["soon"], [-1], [61], [float("nan")], [True], [2, 1], [0.25, 2, 1]])
def test_a_wait_not_0_to_60_seconds_or_shorter_than_the_one_before_is_refused_naming_the_key(value: Any) -> None:
    with pytest.raises(InputError, match="writeRetryDelaysSeconds"):
        parse_config({"writeRetryDelaysSeconds": value})


@pytest.mark.parametrize(("delays", "errors"), [((0.01,), ["temporary"]), ((0.01, 0.01), [])])
def test_a_loop_retries_a_failed_write_once_per_configured_wait(
    kube: KubeCluster, delays: tuple[float, ...], errors: list[str]
) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    kube.fail("PATCH", 503, times=2, path_part="/services/")
    ctl = controller(kube, FixedSignals(demand=3.0), settings=replace(SETTINGS, write_retry_delays_s=delays))
    assert ctl.reconcile().errors == errors
    assert len([r for r in kube.requests("PATCH") if "/services/" in r.url.path]) == 1 + len(delays)
