"""`egs controller --once` as a newcomer runs it to see what the controller would do.

Covers what used to pass for success: a `--once` that does not get the Lease decided nothing yet printed
`{"leader": false, ...}` and exited 0; a crashed controller's Lease, which `--once` used to leave for
good (the running controller takes it once it has stood still for its duration); and configuration
values (`engine`, `time_limit_s`) that were accepted at start and failed in every loop instead. A
`--once` that leads is tests/test_controller_cli.py's.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import yaml

from autoscaler.adapters.kubernetes import Cluster
from autoscaler.leader import Elector, LeaderSettings
from egs.cli import main
from localplay.kube_standin import KubeCluster
from tests.conftest import REPO
from tests.test_decide import endpoint, h100

MODELS = str(REPO / "examples" / "models.yaml")
FAST = LeaderSettings(lease_duration_s=15.0, renew_deadline_s=10.0, retry_period_s=0.2)
"""A running controller's Lease timings, renewing five times a second."""


def once(kube: KubeCluster, tmp_path: Path) -> int:
    """`egs controller --once --dry-run` on `kube`, polling the Lease every 0.2 s."""
    config = tmp_path / "egs.yaml"
    config.write_text(yaml.safe_dump({"models": MODELS, "gpu_classes": {"H100-80GB": {"gpus_per_node": 8}}}))
    kubeconfig = str(kube.kubeconfig(tmp_path / "kubeconfig"))
    return main(["controller", "--kubeconfig", kubeconfig, "--config", str(config), "--once", "--dry-run",
                 "--retry-period", "0.2"])  # fmt: skip


def test_once_without_the_lease_decides_nothing_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kube = KubeCluster().start()
    stop = threading.Event()
    try:
        kube.put("v1/nodes", h100("gpu-0"))
        kube.put("egs.dev/v1alpha1/inferenceendpoints", endpoint())
        running = Elector(Cluster(kube.api_client()), "egs-system", "the-running-controller", FAST)
        assert running.step()
        renewing = threading.Thread(target=running.run, args=(stop,), daemon=True)
        renewing.start()
        started = time.monotonic()
        assert once(kube, tmp_path) == 4
        assert time.monotonic() - started < 10  # the holder renewed: no waiting out its 15 s Lease
        out, err = capsys.readouterr()
        assert out == ""
        assert "--once: not the leader, so nothing was decided: the Lease egs-system/egs-controller" in err
    finally:
        stop.set()
        kube.stop()


def test_once_takes_the_lease_of_a_crashed_controller_once_it_has_run_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kube = KubeCluster().start()
    try:
        kube.put("v1/nodes", h100("gpu-0"))
        kube.put("egs.dev/v1alpha1/inferenceendpoints", endpoint())
        crashed = LeaderSettings(lease_duration_s=1.5, renew_deadline_s=1.0, retry_period_s=0.5)
        assert Elector(Cluster(kube.api_client()), "egs-system", "a-crashed-controller", crashed).step()
        started = time.monotonic()
        assert once(kube, tmp_path) == 0
        assert 1.0 < time.monotonic() - started < 10  # waited its Lease out (2 s in whole seconds), no longer
        decided = json.loads(capsys.readouterr().out)
        assert decided["leader"] is True and decided["endpoints"][0]["name"] == "chat"
    finally:
        kube.stop()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"engine": "fast"}, "engine: one of auto, online, exact, greedy, got 'fast'"),
        ({"time_limit_s": 0}, "time_limit_s: a positive number of seconds, got 0"),
        ({"time_limit_s": "2s"}, "time_limit_s: a number of seconds, got '2s'"),
    ],
)
def test_a_wrong_engine_or_time_limit_stops_the_start_naming_the_key(
    setting: dict[str, object], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "egs.yaml"
    config.write_text(yaml.safe_dump({"models": MODELS, **setting}))
    assert main(["controller", "--config", str(config), "--once"]) == 2
    assert f"{config}: {message}" in capsys.readouterr().err
