"""Read a data file and check it against its JSON Schema, naming the path of the first bad field.

Everything the scheduler core reads from outside is described by a JSON Schema in
`scheduler/data/`: the GPU catalogue (`catalog.py`), the model registry (`registry.py`), and the
Kubernetes Nodes and allocations the inventory reads (`inventory.py`). The schema is the one
statement of each format: this module runs it (jsonschema, draft 2020-12) and turns the first
violation, in document order, into a one-line message of the same shape as `exporter/fleet.py`'s
(`models[2].variants[0].precision: 'fp4' is not one of [...]`), raised as the caller's own error
class. Checks a schema cannot state (uniqueness across entries, cross-references to the catalogue)
stay with the callers, which use `field_path` to name fields the same way. A `pattern` or `oneOf`
may carry an `x-expect` annotation ("a compute capability such as \"8.9\"") that the message
quotes instead of the regular expression.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from common.errors import InputError

DATA = Path(__file__).parent / "data"


def read_yaml(path: str | Path, error: type[InputError]) -> Any:
    """The parsed document at `path`; an unreadable file or bad YAML raises `error` naming `path`."""
    try:
        return yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise error(f"cannot read: {e.strerror}", source=path) from e
    except yaml.YAMLError as e:
        raise error(f"not valid YAML: {e}", source=path) from e


def check(raw: Any, schema_file: str, error: type[InputError], what: str, at: tuple[str | int, ...] = ()) -> None:
    """Raise `error` naming the first field of `raw` that `schema_file` rejects.

    `what` names the root in messages; `at` is the path of `raw` inside its file, put before each path.
    """
    violations = sorted(_validator(schema_file).iter_errors(raw), key=lambda e: _order(e.absolute_path))
    if violations:
        raise error(_describe(violations[0], what, at))


def field_path(*parts: str | int) -> str:
    """`("models", 2, "name")` -> `models[2].name`; a key that is not an identifier is quoted:
    `labels["nvidia.com/gpu.count"]`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.replace("_", "a").replace("-", "a").isalnum():
            out += f"[{json.dumps(part)}]"
        else:
            out += f".{part}" if out else part
    return out


@cache
def _validator(schema_file: str) -> Draft202012Validator:
    schema = json.loads((DATA / schema_file).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _order(path: Sequence[str | int]) -> tuple[tuple[int, str], ...]:
    """Document order: list indices numerically, so that items[10] comes after items[2]."""
    return tuple((p, "") if isinstance(p, int) else (0, p) for p in path)


def _describe(error: ValidationError, what: str, at: tuple[str | int, ...]) -> str:
    path = (*at, *error.absolute_path)
    where = field_path(*path) or what
    instance: Any = error.instance
    expected: Any = error.validator_value
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        key = sorted(set(instance) - set(allowed))[0]
        return f"{field_path(*path, key)}: unknown key (allowed: {', '.join(allowed)})"
    if error.validator == "required":
        key = next(k for k in expected if k not in instance)
        return f"{field_path(*path, key)}: required"
    if error.validator == "enum":
        return f"{where}: {instance!r} is not one of {expected}"
    if error.validator == "pattern" and "x-expect" in schema:
        return f"{where}: {instance!r} is not {schema['x-expect']}"
    if error.validator == "oneOf" and "x-expect" in schema:
        return f"{where}: {schema['x-expect']}"
    return f"{where}: {error.message}"
