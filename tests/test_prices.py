"""`prices:` in the controller's and the API's configuration (issue 16).

Covers: the key takes what `egs plan --prices` takes (a mapping, optionally under `prices:`, inline or
as the path of the very file given to `egs plan`) and is read by its parser; a bad price is named
with the configuration file; placement ranks classes at the configured prices, and the status, the
API's answer and `egs_endpoint_cost_usd_per_hour` say what an endpoint costs at them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

from autoscaler.decide import Observation, decide
from egs.cli import main
from egs.controller_cli import load_config
from scheduler.catalog import Catalog
from scheduler.synthetic import gpu_node
from tests.conftest import REPO
from tests.test_controller import ENDPOINTS, FixedSignals, controller
from tests.test_decide import CATALOG, NOW, REGISTRY, SETTINGS, endpoint, h100, signals

MODELS = str(REPO / "examples" / "models.yaml")


def configured(tmp_path: Path, prices: object) -> Catalog:
    config = tmp_path / "egs.yaml"
    config.write_text(yaml.safe_dump({"models": MODELS, "prices": prices}))
    _, _, catalog = load_config(argparse.Namespace(config=config, models=None))
    return catalog


def test_the_configured_prices_are_read_as_egs_plan_reads_them(tmp_path: Path) -> None:
    assert configured(tmp_path, {"H100-80GB": 2.49}).get("H100-80GB").price_per_hour == 2.49
    assert configured(tmp_path, {"prices": {"H100-80GB": 2.5}}).get("H100-80GB").price_per_hour == 2.5
    (tmp_path / "prices.yaml").write_text("prices:\n  MI300X: 1.99\n")  # the file `egs plan --prices` takes
    catalog = configured(tmp_path, "prices.yaml")
    assert catalog.get("MI300X").price_per_hour == 1.99
    assert catalog.get("H100-80GB").price_per_hour == CATALOG.get("H100-80GB").price_per_hour  # not listed


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        ({"H100-80GB": -1}, "prices.H100-80GB: a non-negative number of USD per GPU-hour is required, got -1"),
        ({"H900": 1.0}, "prices.H900: no GPU class 'H900' in the catalogue"),
        ([1.0], "prices: a mapping of GPU class to USD per GPU-hour is required"),
    ],
)
def test_a_bad_price_is_named_with_the_configuration_file(
    tmp_path: Path, prices: object, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "egs.yaml"
    config.write_text(yaml.safe_dump({"models": MODELS, "prices": prices}))
    assert main(["controller", "--config", str(config), "--once"]) == 2
    assert f"{config}: {message}" in capsys.readouterr().err


def test_placement_and_status_follow_the_configured_prices() -> None:
    """One H100 node ($6.88 per GPU-hour in the catalogue) and one MI300X node ($6.00): the MI300X serves
    at catalogue prices, the H100 once the cluster's real MI300X price is configured higher."""
    nodes = [h100("gpu-h100"), gpu_node("gpu-mi300x", CATALOG.get("MI300X"), 8)]
    obs = Observation(nodes, [endpoint()], signals=signals())
    at_catalogue = decide(obs, SETTINGS, REGISTRY, CATALOG, NOW)
    assert at_catalogue.endpoints[0].gpu_class == "MI300X"
    assert at_catalogue.statuses[("team-a", "chat")]["costPerHour"] == 6.0
    priced = CATALOG.priced({"MI300X": 9.0, "H100-80GB": 2.49})
    at_real = decide(obs, SETTINGS, REGISTRY, priced, NOW)
    assert at_real.endpoints[0].gpu_class == "H100-80GB"
    assert at_real.statuses[("team-a", "chat")]["costPerHour"] == 2.49
    assert at_real.endpoints[0].cost_per_hour == 2.49


def test_the_controller_exports_each_endpoint_s_cost(kube: object) -> None:
    kube.put("v1/nodes", h100("gpu-0"))  # type: ignore[attr-defined]
    kube.put(ENDPOINTS, endpoint())  # type: ignore[attr-defined]
    ctl = controller(kube, FixedSignals(demand=3.0))  # type: ignore[arg-type]
    ctl.catalog = CATALOG.priced({"H100-80GB": 2.0})
    assert ctl.reconcile().errors == []
    text = generate_latest(ctl.exposition_registry).decode()
    labels = 'endpoint="chat",gpu_class="H100-80GB",model="llama-3.1-8b-instruct",namespace="team-a"'
    assert f"egs_endpoint_cost_usd_per_hour{{{labels}}} 4.0" in text  # two replicas of one GPU at $2
