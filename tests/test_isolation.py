"""One object never stops the others (issue 16; DESIGN.md, "Reconcile state").

Covers, each beside a well-formed endpoint that must still be placed: an InferenceEndpoint whose
`spec` (or `status`) is not an object, a Node whose label cannot be read, an endpoint whose chosen
variant cannot be rendered; and the controller loop going on, reporting each on itself (status,
log, `egs_autoscaler_skipped_nodes`, `egs_autoscaler_held_endpoints`). What the decide step cannot
foresee is logged and counted, and the next loop runs; only the process's own environment stops it.
Bad Prometheus samples are the Prometheus adapter's (tests/test_prometheus_adapter.py).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest
from prometheus_client import generate_latest

from autoscaler.decide import Observation, decide
from autoscaler.signals import ModelSignals
from scheduler.registry import Registry
from tests.test_controller import DEPLOYMENTS, ENDPOINTS, FixedSignals, controller
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, h100, signals


def malformed(name: str = "broken") -> dict[str, Any]:
    bad: dict[str, Any] = endpoint(name)
    bad["spec"] = "llama, please"
    bad["status"] = "not an object either"
    return bad


def placed(decision: Any, name: str) -> list[str]:
    return [
        o["kind"]
        for o in decision.objects
        if o["kind"] in ("Deployment", "Service")
        and o["metadata"].get("annotations", {}).get("egs.io/request-name", o["metadata"]["name"]) == name
    ]


def test_a_malformed_endpoint_is_failed_on_itself_and_the_others_are_placed() -> None:
    decision = decide(
        Observation([h100("gpu-0")], [malformed(), endpoint()], signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW
    )
    broken = decision.statuses[("team-a", "broken")]
    assert (broken["phase"], broken["conditions"][0]["reason"]) == ("Failed", "InvalidSpec")
    assert broken["conditions"][0]["message"].startswith("spec: 'llama, please' is not of type 'object'")
    assert decision.statuses[("team-a", "chat")]["phase"] == "Pending"
    assert "Deployment" in placed(decision, "chat")
    assert decision.kept == ("team-a/broken",)


def test_a_node_with_an_unreadable_label_is_skipped_and_the_others_take_replicas() -> None:
    bad = h100("gpu-bad")
    bad["metadata"]["labels"]["nvidia.com/gpu.replicas"] = "two"
    decision = decide(
        Observation([bad, h100("gpu-0")], [endpoint()], signals=signals()), SETTINGS, REGISTRY, CATALOG, NOW
    )
    (chat,) = decision.endpoints
    assert (chat.placed, chat.phase) == (1, "Pending")
    (skipped,) = decision.inventory.skipped
    assert skipped.node == "gpu-bad" and "'two' is not a whole number" in skipped.reason
    assert [p.workers[0].node for p in decision.placed.placements] == ["gpu-0"]


def unrenderable() -> Registry:
    """The example registry with one more model whose only variant vLLM cannot load (int8 from a 16-bit
    checkpoint): the registry refuses it when read, so it is built by hand here, as a registry that
    skipped that check would be."""
    qwen = REGISTRY.get("qwen2.5-14b-instruct")
    int8 = dataclasses.replace(qwen.variant("int8"), source=None, quantization=None)
    return Registry((*REGISTRY.models, dataclasses.replace(qwen, name="qwen-int8", variants=(int8,))))


def test_an_endpoint_whose_variant_cannot_be_rendered_is_held_and_the_others_are_placed() -> None:
    """Issue 16: a re-plan chose int8 on an MI250X; ManifestError reached the top and the controller exited."""
    eps = [endpoint("odd", model="qwen-int8", qualityFloor=0.9), endpoint()]
    sig = {**signals(), "qwen-int8": ModelSignals("qwen-int8", 1.0, sampled_at=NOW - 10)}
    decision = decide(Observation([h100("gpu-0")], eps, signals=sig), SETTINGS, unrenderable(), CATALOG, NOW)
    odd = decision.statuses[("team-a", "odd")]
    assert (odd["phase"], odd["conditions"][0]["reason"]) == ("Failed", "CannotRender")
    assert "pre-quantised `source`" in odd["conditions"][0]["message"]
    assert "variant" not in odd and "estimatedReadyTime" not in odd
    assert placed(decision, "odd") == [] and "Deployment" in placed(decision, "chat")
    assert decision.kept == ("team-a/odd",)
    assert any(h.subject == "team-a/odd" for h in decision.holds)


def test_the_controller_reports_bad_objects_on_themselves_and_goes_on(
    kube: Any, caplog: pytest.LogCaptureFixture
) -> None:
    bad_node = h100("gpu-bad")
    bad_node["metadata"]["labels"]["nvidia.com/gpu.replicas"] = "two"
    for node in (bad_node, h100("gpu-0")):
        kube.put("v1/nodes", node)
    broken = malformed()
    del broken["status"]  # kmock cannot merge a status object into a string, as a real server's apply would
    kube.put(ENDPOINTS, broken)
    kube.put(ENDPOINTS, endpoint())
    ctl = controller(kube, FixedSignals(demand=1.0))
    with caplog.at_level(logging.WARNING, logger="egs.controller"):
        outcome = ctl.reconcile()
        again = ctl.reconcile()
    assert outcome.errors == [] and again.errors == []
    assert [
        d["metadata"]["annotations"]["egs.io/request-name"]
        for d in kube.all(DEPLOYMENTS)
        if d["metadata"]["namespace"] == "team-a"
    ] == ["chat"]
    assert kube.get(ENDPOINTS, "team-a", "broken")["status"]["phase"] == "Failed"
    assert [r.message for r in caplog.records if "gpu-bad" in r.message] == [
        """node gpu-bad skipped: metadata.labels["nvidia.com/gpu.replicas"]: 'two' is not a whole number"""
    ]  # logged once, when it starts being skipped
    text = generate_latest(ctl.exposition_registry).decode()
    assert 'egs_autoscaler_skipped_nodes{node="gpu-bad"} 1.0' in text
    assert 'egs_autoscaler_held_endpoints{endpoint="broken",namespace="team-a",reason="InvalidSpec"} 1.0' in text


def test_a_fault_nobody_foresaw_is_logged_and_the_next_loop_runs(kube: Any, caplog: pytest.LogCaptureFixture) -> None:
    kube.put(ENDPOINTS, endpoint())
    ctl = controller(kube, FixedSignals(demand=1.0))
    real = ctl.metrics

    class Broken(FixedSignals):
        def snapshot(self, at: float, history_s: float, step_s: float, live: bool = True) -> Any:
            raise ZeroDivisionError("a bug")

    ctl.metrics = Broken(demand=1.0)
    with caplog.at_level(logging.ERROR, logger="egs.controller"):
        assert ctl.reconcile().errors == ["internal"]
    assert "ZeroDivisionError: a bug" in caplog.text
    ctl.metrics = real
    assert ctl.reconcile().errors == []
    text = generate_latest(ctl.exposition_registry).decode()
    assert 'egs_autoscaler_reconcile_errors_total{reason="internal"} 1.0' in text


def test_the_api_lists_a_namespace_that_holds_a_malformed_endpoint() -> None:
    """One endpoint whose `spec` is a string answered 500 for the whole namespace's list."""
    from tests.test_bad_objects import listed

    items = listed(malformed(), endpoint())
    assert sorted((e["name"], e["model"]) for e in items) == [("broken", ""), ("chat", "llama-3.1-8b-instruct")]


def test_a_sharing_no_manifest_can_express_is_refused_at_start(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """KAI sharing configured for an AMD class: every replica placed there would raise ManifestError in
    the loop (as the re-plan of issue 16 did); it is a configuration error, named when the file is read."""
    import yaml

    from egs.cli import main
    from tests.conftest import REPO

    config = tmp_path / "egs.yaml"
    config.write_text(yaml.safe_dump({"models": str(REPO / "examples" / "models.yaml"), "sharing": {"MI300X": "kai"}}))
    assert main(["controller", "--config", str(config), "--once"]) == 2
    assert f"{config}: sharing.MI300X: AMD GPUs are placed only whole (exclusive)" in capsys.readouterr().err
