"""A served InferenceEndpoint CRD older than the controller (Helm never upgrades `crds/`): the controller
exits on start naming the command that applies the new one, instead of failing every status write that
holds a field the old schema lacks (strict field validation refuses the whole status)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autoscaler.endpoint import CRD_NAME, VERSION, crd, stale_status_fields
from egs.cli import main
from localplay.kube_standin import CRDS, KubeCluster
from tests.test_controller_cli import one_endpoint

APPLY = "kubectl apply --server-side -f helm/egs/crds/"


def status_schema(obj: dict[str, Any]) -> dict[str, Any]:
    (version,) = [v for v in obj["spec"]["versions"] if v["name"] == VERSION]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["status"]
    return schema


def older() -> dict[str, Any]:
    """The packaged CRD as an install from before `status.consolidation.nodes` and
    `status.shapeChange.replacing` served it."""
    old = crd()
    fields = status_schema(old)["properties"]
    del fields["consolidation"]["properties"]["nodes"]
    del fields["shapeChange"]["properties"]["replacing"]
    return old


def test_the_packaged_crd_lacks_nothing() -> None:
    assert stale_status_fields(crd()) == []


def test_an_older_crd_names_each_field_it_lacks() -> None:
    assert stale_status_fields(older()) == ["status.consolidation.nodes", "status.shapeChange.replacing"]


def test_a_status_that_keeps_unknown_fields_lacks_nothing() -> None:
    old = older()
    status_schema(old)["x-kubernetes-preserve-unknown-fields"] = True
    assert stale_status_fields(old) == []


def test_a_crd_that_does_not_serve_the_version_is_stale() -> None:
    old = copy.deepcopy(crd())
    old["spec"]["versions"][0]["name"] = "v1alpha0"
    assert stale_status_fields(old) == [f"version {VERSION}"]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[KubeCluster, list[str]]]:
    with one_endpoint(tmp_path) as made:
        yield made


def test_the_controller_exits_on_an_older_crd_naming_the_command(
    cluster: tuple[KubeCluster, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    kube, args = cluster
    kube.put(CRDS, older())
    assert main(args) == 3  # the environment lacks something
    err = capsys.readouterr().err
    assert "status.consolidation.nodes, status.shapeChange.replacing" in err and APPLY in err
    assert [r for r in kube.requests("PATCH") if "/inferenceendpoints/" in r.url.path] == []


def test_a_dry_run_on_an_older_crd_says_so_and_goes_on(
    cluster: tuple[KubeCluster, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    kube, args = cluster
    kube.put(CRDS, older())
    assert main([*args, "--dry-run"]) == 0
    assert any(APPLY in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


def test_the_controller_exits_where_the_crd_is_not_installed(
    cluster: tuple[KubeCluster, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    kube, args = cluster
    kube.delete(CRDS, None, CRD_NAME)
    assert main(args) == 3
    assert f"{CRD_NAME} is not installed: {APPLY}" in capsys.readouterr().err


def test_the_controller_runs_on_the_packaged_crd(
    cluster: tuple[KubeCluster, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    kube, args = cluster
    assert main(args) == 0
    assert [r for r in kube.requests("PATCH") if r.url.path.endswith("/inferenceendpoints/chat/status")]
