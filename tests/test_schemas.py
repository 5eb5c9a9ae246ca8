"""The package's own JSON Schemas are valid draft 2020-12 schemas.

`common.schema` builds each validator without checking its schema against the metaschema (8 ms of every
start for the first): the check is here, once, for every schema the package ships.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from tests.conftest import REPO

SCHEMAS = sorted(
    p for package in ("scheduler", "autoscaler", "exporter") for p in (REPO / package).rglob("*.schema.json")
)


def test_the_package_ships_the_schemas_its_loaders_check_against() -> None:
    names = {p.name for p in SCHEMAS}
    loaded = {"gpu-catalog.schema.json", "model-registry.schema.json", "scenario.schema.json", "fleet.schema.json"}
    assert loaded <= names


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: str(p.relative_to(REPO)))
def test_each_schema_passes_the_metaschema(path: Path) -> None:
    Draft202012Validator.check_schema(json.loads(path.read_text()))
