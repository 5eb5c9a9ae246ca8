"""Input files, read the one way (`common.schema`): the exporter's fleet file, YAML hazards, numbers.

Covers: the fleet file is checked by its JSON Schema with the scheduler's messages (file, field path,
what was wrong), and by code for what a schema cannot say; the shipped fleets load; YAML is read by
libyaml where PyYAML has it; alias bombs and self-containing aliases are refused, shared anchors are
not; `.inf` and `.nan` are refused with their path in every schema-checked file (the model registry
here, whose arithmetic overflowed on them).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.errors import InputError
from common.schema import LOADER, read_yaml
from exporter.fleet import DEFAULT_FLEET, SCHEMA, FleetError, load_fleet
from scheduler.catalog import Catalog
from scheduler.registry import Registry, RegistryError
from tests.conftest import REPO

GROUP = {"model": "NVIDIA L4", "vendor": "nvidia", "count": 2, "memory_mib": 23034}
NODE = {"name": "a", "gpus": [GROUP]}


def fleet_file(tmp_path: Path, raw: Any) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"nodes": [NODE], "extra": 1}, r"^extra: unknown key \(allowed: nodes\)"),
        ({"nodes": []}, r"^nodes: \[\] should be non-empty"),
        ([NODE], r"^the fleet file: .* is not of type 'object'"),
        ({"nodes": [{"gpus": [GROUP]}]}, r"^nodes\[0\]\.name: required"),
        ({"nodes": [{**NODE, "name": ""}]}, r"^nodes\[0\]\.name: '' should be non-empty"),
        ({"nodes": [{**NODE, "gpus": [{**GROUP, "vendor": "intel"}]}]}, r"gpus\[0\]\.vendor: 'intel' is not one of"),
        ({"nodes": [{**NODE, "gpus": [{**GROUP, "count": 0}]}]}, r"gpus\[0\]\.count: 0 is less than or equal to"),
        ({"nodes": [{**NODE, "gpus": [{**GROUP, "count": True}]}]}, r"gpus\[0\]\.count: True is not of type 'integer'"),
        ({"nodes": [{**NODE, "gpus": [{**GROUP, "memory_mib": "80G"}]}]}, r"memory_mib: '80G' is not of type"),
        ({"nodes": [{**NODE, "gpus": [{**GROUP, "interconnect": "nvswitch"}]}]}, r"interconnect: 'nvswitch' is not"),
        ({"nodes": [{**NODE, "gpus": [{**GROUP, "power_max_w": -5}]}]}, r"power_max_w: -5 is less than or equal"),
        ({"nodes": [{**NODE, "gpus": [{**GROUP, "colour": "red"}]}]}, r"gpus\[0\]\.colour: unknown key"),
        ({"nodes": [{**NODE, "gpus": [{**GROUP, "unsupported": ["DCGM_X"]}]}]}, r"unsupported\[0\]: 'DCGM_X' is not a"),
        ({"nodes": [NODE, NODE]}, r"^nodes\[1\]\.name: duplicate node name 'a'"),
        (
            {"nodes": [{**NODE, "faults": [{"gpu": 2, "kind": "lost"}]}]},
            r"faults\[0\]\.gpu: an index below the node's 2",
        ),
        ({"nodes": [{**NODE, "faults": [{"gpu": 0, "kind": "melt"}]}]}, r"faults\[0\]\.kind: 'melt' is not one of"),
        ({"nodes": [{**NODE, "faults": [{"gpu": 0, "kind": "hang", "seconds": -1}]}]}, r"seconds: -1 is less than"),
        ({"nodes": [{**NODE, "gpus": [{**GROUP, "power_max_w": float("nan")}]}]}, r"power_max_w: nan is not a finite"),
    ],
)
def test_a_bad_fleet_file_is_refused_with_the_file_and_the_path_of_the_bad_field(
    tmp_path: Path, raw: Any, message: str
) -> None:
    path = fleet_file(tmp_path, raw)
    with pytest.raises(FleetError) as caught:
        load_fleet(path)
    assert re.search(message, caught.value.message), caught.value.message
    assert caught.value.source == str(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_an_unreadable_or_malformed_fleet_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FleetError, match=r"missing\.yaml: cannot read: No such file"):
        load_fleet(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("nodes: [name: a\n")
    with pytest.raises(FleetError, match=r"bad\.yaml: not valid YAML"):
        load_fleet(tmp_path / "bad.yaml")


def test_a_fleet_file_reads_into_the_simulated_nodes(tmp_path: Path) -> None:
    group = {**GROUP, "compute_capability": "8.9", "driver_version": 550.54, "instances": ["1g.10gb"]}
    raw = {"nodes": [{"name": "a", "gpus": [group], "faults": [{"gpu": 1, "kind": "hang", "seconds": 5}]}]}
    node = load_fleet(fleet_file(tmp_path, raw)).node("a")
    (gpus,) = node.gpus
    assert (gpus.count, gpus.memory_mib, gpus.interconnect, gpus.power_max_w) == (2, 23034, "pcie", 700.0)
    assert (gpus.compute_capability, gpus.driver_version, gpus.instances) == ("8.9", "550.54", ("1g.10gb",))
    assert node.faults[0].kind == "hang" and node.faults[0].seconds == 5.0


@pytest.mark.parametrize("path", sorted((REPO / "examples").glob("fleet-*.yaml")), ids=lambda p: p.name)
def test_every_shipped_fleet_loads(path: Path) -> None:
    assert load_fleet(path).nodes


def test_every_property_of_the_fleet_schema_is_described_or_an_enum() -> None:
    schema = json.loads(SCHEMA.read_text())
    for name, definition in schema["$defs"].items():
        for key, prop in definition.get("properties", {}).items():
            assert "description" in prop or "enum" in prop, f"{name}.{key}"
    assert DEFAULT_FLEET.node(None).gpu_count == 8


def test_yaml_is_read_by_libyaml_where_pyyaml_has_it() -> None:
    assert LOADER is (yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader)


def billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_anything_walks_it(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(billion_laughs())
    with pytest.raises(InputError, match=r"bomb\.yaml: its aliases expand 28 YAML nodes to \d+: refused"):
        read_yaml(tmp_path / "bomb.yaml", InputError)


def test_an_alias_to_a_collection_that_contains_it_is_refused(tmp_path: Path) -> None:
    (tmp_path / "loop.yaml").write_text("a: &a [1, *a]\n")
    with pytest.raises(InputError, match=r"loop\.yaml: an alias refers to a collection that contains it"):
        read_yaml(tmp_path / "loop.yaml", InputError)


def test_anchors_that_share_defaults_are_read_as_usual(tmp_path: Path) -> None:
    defaults = "defaults: &d {context_tokens: 8192, concurrency: 16}\n"
    (tmp_path / "shared.yaml").write_text(
        defaults + "models:\n" + "".join(f"  - {{n: {i}, s: *d}}\n" for i in range(300))
    )
    raw = read_yaml(tmp_path / "shared.yaml", InputError)
    assert len(raw["models"]) == 300 and raw["models"][299]["s"] == {"context_tokens": 8192, "concurrency": 16}


@pytest.mark.parametrize(("value", "shown"), [(".inf", "inf"), ("-.inf", "-inf"), (".nan", "nan")])
def test_a_non_finite_registry_number_is_refused_with_the_file_and_its_path(
    tmp_path: Path, value: str, shown: str
) -> None:
    text = (REPO / "examples" / "models.yaml").read_text()
    assert "weights_gib: 5.34" in text
    path = tmp_path / "models.yaml"
    path.write_text(text.replace("weights_gib: 5.34", f"weights_gib: {value}", 1))
    with pytest.raises(RegistryError) as caught:
        Registry.load(path, Catalog.load())
    assert str(caught.value) == f"{path}: models[0].variants[2].weights_gib: {shown} is not a finite number"
