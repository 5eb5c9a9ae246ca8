"""`egs controller --once` as a newcomer runs it to see what the controller would do.

Covers what used to pass for success: a `--once` that does not get the Lease decided nothing yet printed
`{"leader": false, ...}` and exited 0; and configuration values (`engine`, `time_limit_s`) that were
accepted at start and failed in every loop instead. A `--once` that leads is tests/test_controller_cli.py's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from autoscaler.adapters.kubernetes import Cluster
from autoscaler.leader import Elector
from egs.cli import main
from localplay.kube_standin import KubeCluster
from tests.conftest import REPO
from tests.test_decide import endpoint, h100

MODELS = str(REPO / "examples" / "models.yaml")


def test_once_without_the_lease_decides_nothing_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kube = KubeCluster().start()
    try:
        kube.put("v1/nodes", h100("gpu-0"))
        kube.put("egs.dev/v1alpha1/inferenceendpoints", endpoint())
        assert Elector(Cluster(kube.api_client()), "egs-system", "the-running-controller").step()
        config = tmp_path / "egs.yaml"
        config.write_text(yaml.safe_dump({"models": MODELS, "gpu_classes": {"H100-80GB": {"gpus_per_node": 8}}}))
        kubeconfig = str(kube.kubeconfig(tmp_path / "kubeconfig"))
        assert main(["controller", "--kubeconfig", kubeconfig, "--config", str(config), "--once", "--dry-run"]) == 4
        out, err = capsys.readouterr()
        assert out == ""
        assert "--once: not the leader, so nothing was decided: the Lease egs-system/egs-controller" in err
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
