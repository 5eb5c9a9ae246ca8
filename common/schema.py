"""Read a YAML input file and check it against its JSON Schema, naming the file and the first bad field.

The one way EGS validates what it reads from outside: the scheduler's catalogue, model registry,
nodes, allocations and requests (`scheduler/_schema.py` binds this to `scheduler/data/`), the
exporter's simulated fleet (`exporter/fleet.py`, `exporter/data/`), and the simulator's scenario
(`autoscaler/adapters/files.py`, `autoscaler/data/`). Each format is stated once, by its
schema; `check` refuses `.inf` and `.nan` anywhere (finite numbers only), runs the schema
(jsonschema, draft 2020-12) and turns the first violation, in document order, into a one-line message
(`models[2].variants[0].precision: 'fp4' is not one of [...]`), raised as the caller's own InputError
subclass; `read_yaml` names the file (`source`), and the loaders wrap their
parsing in `common.errors.naming(path)` so that every message says `<file>: <field path>: <what>`.
Checks a schema cannot state (uniqueness across entries, cross-references) stay with the callers,
which use `field_path` to name fields the same way. A `pattern` or `oneOf` may carry an `x-expect`
annotation ("a compute capability such as \"8.9\"") that the message quotes instead of the pattern.

YAML is parsed by libyaml (PyYAML's C loader) where PyYAML was built with it, several times faster on
a NodeList of thousands of nodes, and a document whose aliases expand it far beyond its own size (an
"alias bomb": eight lines can stand for a billion nodes) is refused before anything walks it.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from common.errors import InputError

T = TypeVar("T")

LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ALIAS_ALLOWANCE = 10_000
"""Nodes that aliases may add beyond ALIAS_RATIO x the document's own nodes: anchors for shared
defaults repeat a few small mappings, a bomb repeats its nodes exponentially."""
ALIAS_RATIO = 10


def read_yaml(path: str | Path, error: type[InputError]) -> Any:
    """The parsed document at `path`; an unreadable file, bytes that are not UTF-8, bad YAML or an
    alias bomb raises `error` naming `path`."""
    try:
        text = utf8(Path(path).read_bytes(), path, error)
    except OSError as e:
        raise error(f"cannot read: {e.strerror}", source=path) from e
    loader = LOADER(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _refuse_alias_bomb(node, path, error)
        return None if node is None else loader.construct_document(node)
    except yaml.YAMLError as e:
        raise error(f"not valid YAML: {e}", source=path) from e
    except ValueError as e:  # what the constructors raise, e.g. an integer of more than 4,300 digits
        raise error(f"not valid YAML: {e}", source=path) from e
    finally:
        loader.dispose()


def utf8(data: bytes, path: str | Path, error: type[InputError]) -> str:
    """`data` decoded as UTF-8 (the encoding every EGS input is written in, whatever the locale);
    `error` naming `path` and where the first undecodable byte is otherwise."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise error(
            f"not UTF-8 text: byte 0x{data[e.start]:02x} at line {line}, column {column} cannot be decoded "
            "(save the file as UTF-8)",
            source=path,
        ) from e


def check(raw: Any, schema: Path, error: type[InputError], what: str, at: tuple[str | int, ...] = ()) -> None:
    """Raise `error` naming the first field of `raw` that the JSON Schema in file `schema` rejects.

    `what` names the root in messages; `at` is the path of `raw` inside its file, put before each path.
    """
    infinite = _first_non_finite(raw)
    if infinite is not None:
        path, value = infinite
        raise error(f"{field_path(*at, *path) or what}: {value} is not a finite number")
    violations = sorted(_validator(schema).iter_errors(raw), key=lambda e: _order(e.absolute_path))
    if violations:
        raise error(_describe(violations[0], what, at))


def by_json_text(held: int) -> Callable[[Callable[[Any], T]], Callable[[Any], T]]:
    """Remember a check of JSON data by a digest of its JSON text (sorted keys), the `held` latest used: the
    controller checks every Node and endpoint every loop, and they seldom change. A digest, not the text, so
    that a large fleet's Nodes (kilobytes each) are not held beside what was read of them; data JSON cannot
    write is checked each time."""

    def remember(check: Callable[[Any], T]) -> Callable[[Any], T]:
        answers: OrderedDict[bytes, T] = OrderedDict()
        lock = threading.Lock()  # the API checks from its request threads and its rebuild thread

        def checked(raw: Any) -> T:
            try:
                key = hashlib.blake2b(json.dumps(raw, sort_keys=True).encode(), digest_size=16).digest()
            except (TypeError, ValueError):
                return check(raw)
            with lock:
                if key in answers:
                    answers.move_to_end(key)
                    return answers[key]
            answer = check(raw)
            with lock:
                answers[key] = answer
                if len(answers) > held:
                    answers.popitem(last=False)
            return answer

        return checked

    return remember


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


def _first_non_finite(raw: Any) -> tuple[tuple[str | int, ...], float] | None:
    """The path and value of the first `.inf` or `.nan` in `raw`, in document order: no EGS input
    has a use for them, and each would pass a schema's `minimum` or poison arithmetic later."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), raw)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            return path, value
        if isinstance(value, Mapping):
            stack.extend(((*path, k), v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(value))))
    return None


def _refuse_alias_bomb(root: yaml.Node, path: str | Path, error: type[InputError]) -> None:
    """Count the nodes `root` stands for with every alias expanded, each distinct node once
    (an alias is the very node it names), without recursion: nesting depth is input too."""
    expanded: dict[int, int] = {}
    open_: set[int] = set()  # nodes whose children are being counted: meeting one again is a cycle
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in expanded:
            continue
        children = _children(node)
        if children_done or not children:
            expanded[id(node)] = 1 + sum(expanded[id(c)] for c in children)
            open_.discard(id(node))
            continue
        if id(node) in open_:
            raise error("an alias refers to a collection that contains it: refused", source=path)
        open_.add(id(node))
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in expanded)
    total, distinct = expanded[id(root)], len(expanded)
    if total > ALIAS_RATIO * distinct + ALIAS_ALLOWANCE:
        raise error(f"its aliases expand {distinct} YAML nodes to {total}: refused as an alias bomb", source=path)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


@cache
def _validator(schema: Path) -> Draft202012Validator:
    """Built at the first check of `schema`, once. The schemas are the package's own, each checked against
    the metaschema by its tests (`tests/test_schemas.py`), not at every start (8 ms for the first)."""
    return Draft202012Validator(json.loads(schema.read_text()))


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
    if error.validator == "maxLength":
        return f"{where}: longer than {expected} characters"
    if error.validator == "enum":
        return f"{where}: {instance!r} is not one of {expected}"
    if error.validator == "pattern" and "x-expect" in schema:
        return f"{where}: {instance!r} is not {schema['x-expect']}"
    if error.validator == "oneOf" and "x-expect" in schema:
        return f"{where}: {schema['x-expect']}"
    return f"{where}: {error.message}"
