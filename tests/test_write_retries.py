"""A write that fails for a moment is retried within the loop, not a whole loop later.

Covers: a 503 on one object's apply retried after a short wait in the same loop; an API server that
fails everything costs one request per retry round, not one per object; a 429's `Retry-After` read into
the error; a `Retry-After` longer than the retries left to the next loop (the real adapter with its
Service applies throttled, as kmock's faults carry no headers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry

from autoscaler.adapters.kubernetes import Cluster, TemporaryKubernetesError, translated
from autoscaler.controller import Controller, owned_kinds
from localplay.kube_standin import KubeCluster
from tests.clock import Clock
from tests.test_controller import ENDPOINTS, NOW, SETTINGS, FixedSignals, controller
from tests.test_decide import CATALOG, REGISTRY, endpoint, h100

FAST = replace(SETTINGS, write_retry_delays_s=(0.01, 0.02, 0.03))


def test_a_write_that_fails_for_a_moment_is_retried_within_the_loop(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    kube.fail("PATCH", 503, times=2, path_part="/services/")
    outcome = controller(kube, FixedSignals(demand=3.0), settings=FAST).reconcile()
    assert outcome.errors == []
    assert kube.get("v1/services", "team-a", "chat") is not None
    assert len([r for r in kube.requests("PATCH") if "/services/" in r.url.path]) == 3


def test_an_api_server_failing_everything_gets_one_request_per_retry_round(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    kube.fail("PATCH", 500, times=1000, path_part="/namespaces/team-a/")
    outcome = controller(kube, FixedSignals(demand=3.0), settings=FAST).reconcile()
    paths = [r.url.path for r in kube.requests("PATCH")]
    tried = [p for p in paths if "/namespaces/team-a/" in p and "/events/" not in p]
    failed = len(outcome.errors)
    assert failed >= 3 and outcome.errors == ["temporary"] * failed  # workload, Service, status at least
    assert len(tried) == failed + len(FAST.write_retry_delays_s)  # each once, then the first of them once a round
    assert outcome.writes > 0  # the other namespace's objects (the warm pool) were written


@dataclass
class Answer:
    """What urllib3 hands the client for an HTTP answer: the parts ApiException reads."""

    status: int
    reason: str = "Too Many Requests"
    data: bytes = b'{"message": "the request was throttled"}'
    headers: dict[str, str] = field(default_factory=dict)


@pytest.mark.parametrize(("headers", "wait"), [({"Retry-After": "3"}, 3.0), ({}, 0.0), ({"Retry-After": "soon"}, 0.0)])
def test_a_throttled_write_carries_the_wait_the_api_server_asked_for(headers: dict[str, str], wait: float) -> None:
    with pytest.raises(TemporaryKubernetesError) as raised, translated("apply Service team-a/chat"):
        raise ApiException(http_resp=Answer(429, headers=headers))
    assert (raised.value.status, raised.value.retry_after_s) == (429, wait)
    assert "the request was throttled" in str(raised.value)


class Throttled(Cluster):
    """The real adapter, its Service applies throttled `times` times with a `Retry-After` of `wait_s`."""

    def __init__(self, kube: KubeCluster, wait_s: float, times: int) -> None:
        super().__init__(kube.api_client(), owned_kinds=owned_kinds(SETTINGS))
        self.wait_s, self.times, self.tried = wait_s, times, 0

    def apply(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        if obj["kind"] == "Service":
            self.tried += 1
            if self.times:
                self.times -= 1
                raise TemporaryKubernetesError("apply Service: 429 throttled", 429, self.wait_s)
        return super().apply(obj)


def test_a_wait_longer_than_the_retries_is_left_to_the_next_loop(kube: KubeCluster) -> None:
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    cluster = Throttled(kube, wait_s=30, times=1)
    ctl = Controller(cluster, FixedSignals(demand=3.0), FAST, REGISTRY, CATALOG, "a", clock=Clock(NOW),
                     exposition=CollectorRegistry())  # fmt: skip
    ctl.elector.step()
    assert (ctl.reconcile().errors, cluster.tried) == (["temporary"], 1)  # not retried: the server asked for 30 s
    assert (ctl.reconcile().errors, cluster.tried) == ([], 2)
    assert kube.get("v1/services", "team-a", "chat") is not None


def test_a_conflict_left_after_the_adapters_own_retries_does_not_hold_back_the_other_retries(
    kube: KubeCluster,
) -> None:
    """A 409 is retried by the adapter; one that outlasts those retries is reported at once, and must not be
    taken for a 429 asking for 10 s, which ended the loop's retries of every other failed write."""
    kube.put("v1/nodes", h100("gpu-0"))
    kube.put(ENDPOINTS, endpoint())
    kube.fail("PATCH", 409, times=1000, path_part="/namespaces/team-a/deployments/")
    kube.fail("PATCH", 503, times=1, path_part="/services/")
    outcome = controller(kube, FixedSignals(demand=3.0), settings=FAST).reconcile()
    assert kube.get("v1/services", "team-a", "chat") is not None, "the Service's 503 was retried in the loop"
    assert outcome.errors == ["temporary"]  # the Deployment's conflict, reported once, as before the retries
