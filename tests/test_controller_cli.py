"""`egs controller` and `egs api` as a user runs them: bad input named, exit codes, `--once` JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from egs.cli import main
from localplay.kube_standin import KubeCluster
from tests.conftest import REPO
from tests.test_decide import endpoint, h100

MODELS = str(REPO / "examples" / "models.yaml")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["controller", "--metrics-listen", "bad", "--models", MODELS, "--once"], 2, "--metrics-listen: "),
        (["api", "--listen", "bad", "--models", MODELS], 2, "--listen: "),
        (["controller", "--once"], 2, "a model registry is needed"),
        (["controller", "--kubeconfig", "/no/such/file", "--models", MODELS, "--once"], 2, "not a usable kubeconfig"),
        (["controller", "--config", MODELS, "--once"], 2, "models: the model registry's path"),
        (["controller", "--models", MODELS, "--prometheus-timeout", "10", "--once"], 2, "--prometheus-timeout: "),
        (["controller", "--models", MODELS, "--lease-duration", "8", "--once"], 2, "--lease-duration: "),
    ],
)
def test_bad_input_is_named(args: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == code
    assert message in capsys.readouterr().err


def test_a_deeply_nested_configuration_is_refused_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 900 nested mappings: PyYAML's pure-Python composer recursed past Python's limit (issue 21).
    config = tmp_path / "egs.yaml"
    config.write_text("models: " + "{a: " * 900 + "1" + "}" * 900 + "\n")
    assert main(["controller", "--config", str(config), "--once"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"egs: error: {config}: ") and "Traceback" not in err


def test_a_bad_configuration_field_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "egs.yaml"
    config.write_text(yaml.safe_dump({"models": MODELS, "gpu_classes": {"H100-80GB": {"gpus_per_node": 0}}}))
    assert main(["controller", "--config", str(config), "--once"]) == 2
    err = capsys.readouterr().err
    assert f"{config}: gpu_classes.H100-80GB: gpus_per_node must be >= 1" in err


@contextmanager
def one_endpoint(tmp_path: Path) -> Iterator[tuple[KubeCluster, list[str]]]:
    """The stand-in with a GPU node and an endpoint, and the `egs controller --once` arguments for it."""
    kube = KubeCluster().start()
    try:
        kube.put("v1/nodes", h100("gpu-0"))
        kube.put("egs.dev/v1alpha1/inferenceendpoints", endpoint())
        config = tmp_path / "egs.yaml"
        config.write_text(yaml.safe_dump({"models": MODELS, "gpu_classes": {"H100-80GB": {"gpus_per_node": 8}}}))
        kubeconfig = str(kube.kubeconfig(tmp_path / "kubeconfig"))
        yield kube, ["controller", "--kubeconfig", kubeconfig, "--config", str(config), "--once"]
    finally:
        kube.stop()


def test_once_prints_one_json_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with one_endpoint(tmp_path) as (kube, args):
        assert main([*args, "--dry-run"]) == 0
        document = json.loads(capsys.readouterr().out)
        assert document["leader"] is True and document["writes"] > 0
        assert document["holds"] == ["team-a/chat: Prometheus unavailable: holding 1 replicas"]  # no --prometheus
        assert [e["name"] for e in document["endpoints"]] == ["chat"]
        assert kube.requests("PATCH") == []  # --dry-run
