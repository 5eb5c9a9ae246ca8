"""The scheduler's input formats: `common.schema` bound to the JSON Schemas in `scheduler/data/`.

Everything the scheduler core reads from outside is described by a JSON Schema there: the GPU
catalogue (`catalog.py`), the model registry (`registry.py`), the requests (`requests.py`), and the
Kubernetes Nodes and allocations the inventory reads (`inventory.py`). Reading, checking and the
shape of the messages are `common.schema`'s, shared with the exporter's fleet file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common import schema
from common.errors import InputError

DATA = Path(__file__).parent / "data"


def check(raw: Any, schema_file: str, error: type[InputError], what: str, at: tuple[str | int, ...] = ()) -> None:
    """`common.schema.check` against `scheduler/data/<schema_file>`."""
    schema.check(raw, DATA / schema_file, error, what, at)
