"""The churn benchmark's lifecycle events played only when asked (ninth session): the leading controller killed
amid a burst of POSTs and restarted in its pod (`--controller-kills`), and the POSTs spread over several `egs api`
replicas (`--api-replicas`), as the chart runs two behind a Service.

Covers their draws (never by default: every seed's scenario stays what it was), the kill and the kubelet's
restart (not counted an exit of the controller's own), and the spreading of requests; playing them is the
benchmark's own.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from benchmarks.churnkit.run import RESTART_BACKOFF_S, Run
from benchmarks.churnkit.scenario import Script, Shape, script
from localplay.kube_standin import KubeCluster

FLEET = tuple(f"node-{i}" for i in range(20))


@pytest.mark.parametrize("seed", [5, 11, 301])
def test_controller_kills_come_amid_the_bursts_of_posts_and_never_by_default(seed: int) -> None:
    assert script(seed, 49, Shape(), FLEET).controller_kills == ()
    plan = script(seed, 49, Shape(controller_kills=(2, 3)), FLEET)
    amid = {m for m, _ in plan.bursts} | {plan.reposted[0]}
    assert 2 <= len(plan.controller_kills) <= 3
    assert all(minute in amid and 0.1 <= share <= 0.9 for minute, share in plan.controller_kills)
    kills = [minute for minute, _ in plan.controller_kills]
    assert len(set(kills)) == min(len(kills), len(amid))  # a burst of its own each, while there are bursts enough
    assert plan == Script(**{**script(seed, 49, Shape(), FLEET).__dict__, "controller_kills": plan.controller_kills})


@pytest.mark.parametrize(
    ("shape", "named"),
    [({"api_replicas": 0}, "--api-replicas 0"), ({"controller_kills": (2, 1)}, "--controller-kills 2-1")],
)
def test_an_event_that_cannot_be_played_is_refused_naming_its_knob(shape: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        Shape(**shape)  # type: ignore[arg-type]


class Cluster:
    """The API server as `Run.tick` reads it, with nothing in it."""

    def all(self, kind: str) -> list[dict[str, Any]]:
        return []


def a_run(controller: subprocess.Popen[bytes], command: list[str], workdir: Path) -> Run:
    stand_ins: dict[str, Any] = {
        "kube": cast(KubeCluster, Cluster()),
        "play": SimpleNamespace(step=lambda now: None, pods={}),
        "prometheus": SimpleNamespace(),
    }
    return Run(argparse.Namespace(factor=20.0, tick_s=0.01), workdir, api="http://api-1", controller_command=command,
               controller=controller, t0=time.time(), metrics_url="http://127.0.0.1:9/metrics",
               other_apis=("http://api-2",), **stand_ins)  # fmt: skip


def test_a_killed_controller_is_restarted_after_the_kubelets_back_off_and_is_no_exit_of_its_own(tmp_path: Path) -> None:
    leading = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    run = a_run(leading, ["--version"], tmp_path)
    run.kill_controller()
    assert leading.returncode == -9
    run.tick()  # within the back-off: nothing started yet
    assert (run.controller, run.tally.exits) == (leading, 0)
    time.sleep(RESTART_BACKOFF_S / run.factor)
    run.tick()
    assert run.controller is not leading and run.restart_at is None and run.tally.exits == 0
    run.controller.wait(30)
    run.tick()  # the restarted one ended on its own: that is an exit
    assert run.tally.exits == 1
    run.controller.kill()
    run.controller.wait(30)


def test_requests_go_to_each_api_replica_in_turn(tmp_path: Path) -> None:
    run = a_run(cast(Any, None), [], tmp_path)
    assert [run.answering() for _ in range(4)] == ["http://api-1", "http://api-2"] * 2
