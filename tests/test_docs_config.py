"""docs/configuration.md states the controller's configuration file as the code reads it: every key the
file may hold, at every depth with a fixed set of keys, is on the page, and each value its YAML blocks
show is the default (setting it changes nothing). The page used to send a newcomer to
`autoscaler/config.py` for the format and its defaults.

The keys known are read from the refusal of an unknown one (`unknown field 'x' (known: ...)`), so a key
added to the format is missed here until the page shows it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from autoscaler.config import parse_config, parse_config_prices
from common.errors import InputError
from tests.conftest import REPO

PAGE = (REPO / "docs" / "configuration.md").read_text()
BLOCKS = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", PAGE, re.S)]
A_CLASS = {"gpus_per_node": 4}
DEPTHS = {"(root)": (), "gpu_classes.L4": ("gpu_classes", "L4"), "gpu_classes.L4.egs": ("gpu_classes", "L4", "egs"),
          "eta": ("eta",), "consolidation": ("consolidation",), "templateRollout": ("templateRollout",)}  # fmt: skip
"""The depths whose keys are fixed (the rest, `throughput_rps`, `sharing`, `prices` and the classes' names,
are keyed by models and GPU classes), as the refusal names them, and where they sit in the file."""


def nested(path: tuple[str, ...], value: Any) -> Any:
    """`value` at `path` in a configuration, a GPU class's required key beside it."""
    for i in range(len(path), 0, -1):
        if i == 2 and path[0] == "gpu_classes":
            value = {**A_CLASS, **value}
        value = {path[i - 1]: value}
    return value


def known_keys(path: tuple[str, ...]) -> set[str]:
    """The keys the file may hold at `path`, as the refusal of an unknown one lists them."""
    with pytest.raises(InputError) as refused:
        parse_config(nested(path, {"not-a-key": 1}))
    match = re.search(r"\(known: (.*)\)$", str(refused.value))
    assert match, str(refused.value)
    return set(match[1].split(", "))


def documented(block: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(path, value) of every key the page's block states, classes' names generalised to `L4`."""
    for key, value in block.items():
        at = (*path, "L4" if path == ("gpu_classes",) else str(key))
        yield at, value
        if isinstance(value, dict) and value:
            yield from documented(value, at)


def effective(raw: dict[str, Any]) -> Any:
    """What a configuration does: its settings, each class's pool policy parameters, and its prices."""
    settings, _ = parse_config(raw)
    classes = {n: (dataclasses.replace(c, egs={}), c.pool_settings) for n, c in settings.classes.items()}
    return dataclasses.replace(settings, classes={}), classes, parse_config_prices(raw)


STATED = [(path, value) for block in BLOCKS for path, value in documented(block)]


@pytest.mark.parametrize("depth", DEPTHS)
def test_the_page_shows_every_key_of_the_file(depth: str) -> None:
    path = DEPTHS[depth]
    missing = known_keys(path) - {p[-1] for p, _ in STATED if p[:-1] == path}
    assert {key for key in missing if f"`{key}`" not in PAGE} == set()  # an old name may be told in a sentence


DEFAULTS = [
    (p, v) for p, v in STATED if (v == {} or not isinstance(v, dict)) and p != ("models",) and p[-1] != "gpus_per_node"
]
"""Every value shown but the sections' (their keys are checked one by one) and the two without a default:
`models` (or --models) and a class's `gpus_per_node`."""


@pytest.mark.parametrize(("path", "value"), DEFAULTS, ids=lambda x: ".".join(x) if isinstance(x, tuple) else "")
def test_each_value_shown_is_the_default(path: tuple[str, ...], value: Any) -> None:
    without = nested(path[:2], {}) if path[0] == "gpu_classes" and len(path) > 2 else {}
    assert effective(nested(path, value)) == effective(without)
