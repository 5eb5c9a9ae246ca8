"""Shared fixtures: real servers started once per test session on 127.0.0.1.

The sim exporters are the real `egs exporter` command in child processes; Prometheus is Debian's
binary (its first scrape lands seconds after start, so one serves the whole session).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from localplay.kube_standin import KubeCluster
from localplay.localstack import LocalStack, Prometheus

# The suite runs on a loaded 2-core machine: hypothesis' 200 ms deadline per example fails there on
# timing alone ("unreliable test timings"), never on a property. Speed is the benchmarks' business.
settings.register_profile("egs", deadline=None)
settings.load_profile("egs")

REPO = Path(__file__).resolve().parent.parent
MIXED_FLEET = REPO / "examples" / "fleet-mixed.yaml"
SIM_NODES = ("sim-h100-0", "sim-a100-mig-0", "sim-l4-0", "sim-mi300x-cpx-0")


def found_shared_data(name: str) -> Path | None:
    """`shared/data/<name>`, the public traces and dashboard some tests replay, from the shared folder beside the
    repository (or beside the folder holding it); None where a clone stands on its own."""
    paths = (base / "shared" / "data" / name for base in (REPO.parent, REPO.parent.parent))
    return next((path for path in paths if path.exists()), None)


def shared_data(name: str) -> Path:
    """`found_shared_data`, or the test skipped saying it is missing; failed where `CI` is set, which must run it."""
    path = found_shared_data(name)
    if path is None:
        missing = f"shared/data/{name} is missing: the shared data folder must sit beside the repository"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    return path


@dataclass
class Call:
    """One call a `spy` saw: its arguments by parameter name, defaults filled in, and what it returned (None
    until it returns)."""

    arguments: dict[str, Any]
    returned: Any = None


Spy = Callable[[object, str], list[Call]]
"""`spy(owner, name)`: wrap `owner.name` for the test's length; each call still runs and is listed, in order."""


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    """The call-counting wrapper tests of "done once, not twice" need, in one place."""

    def wrap(owner: object, name: str) -> list[Call]:
        real = getattr(owner, name)
        signature = inspect.signature(real)
        calls: list[Call] = []

        def spying(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            call = Call(dict(bound.arguments))
            calls.append(call)
            call.returned = real(*args, **kwargs)
            return call.returned

        monkeypatch.setattr(owner, name, spying)
        return calls

    return wrap


@dataclass
class SimCluster:
    prometheus: Prometheus
    exporters: dict[str, str]
    """Node name -> host:port of its exporter."""


@pytest.fixture(scope="session")
def sim_cluster() -> Iterator[SimCluster]:
    with LocalStack(prefix="egs-test-cluster-") as stack:
        exporters = {
            node: stack.exporter(
                node, "--fleet", str(MIXED_FLEET), "--node", node, "--kubelet-socket", "none", "--collect-interval", "1"
            )
            for node in SIM_NODES
        }
        prom = stack.prometheus(list(exporters.values()), interval="1s")
        up = prom.wait_for(f'count(up{{job="egs-exporter"}} == 1) == {len(SIM_NODES)}', timeout_s=60)
        assert up, "Prometheus did not scrape every sim exporter"
        yield SimCluster(prometheus=prom, exporters=exporters)


@pytest.fixture
def kube() -> Iterator[KubeCluster]:
    """A Kubernetes API stand-in of the test's own (a test file may define a `kube` with tokens and grants)."""
    cluster = KubeCluster().start()
    yield cluster
    cluster.stop()
