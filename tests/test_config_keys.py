"""An unknown key anywhere in the controller's configuration is refused where the file is read.

Covers `egs controller --config` / `egs api --config` loading (`egs.controller_cli.load_config`): a key
the format does not have, at every depth that has a fixed set of keys, is refused before any setting is
built, in one wording that names the file and the key's path. Not covered: the free-keyed mappings
(`throughput_rps`, `sharing`, `prices`, `gpu_classes`' names), whose keys are models and GPU classes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.errors import InputError
from egs.controller_cli import load_config


@pytest.mark.parametrize(
    "path",
    [(), ("gpu_classes", "L4"), ("gpu_classes", "L4", "egs"), ("eta",), ("consolidation",)],
    ids=lambda path: ".".join(path) or "(root)",
)
def test_an_unknown_key_at_any_depth_is_refused_naming_the_file_and_its_path(
    tmp_path: Path, path: tuple[str, ...]
) -> None:
    config: dict[str, Any] = {
        "gpu_classes": {"L4": {"gpus_per_node": 4, "policy": "egs", "egs": {"quantile": 0.9}}},
        "eta": {"quantile": 0.95},
        "consolidation": {"enabled": False},
    }
    where = config
    for key in path:
        where = where[key]
    where["quantlie"] = 0.9
    file = tmp_path / "egs.yaml"
    file.write_text(yaml.safe_dump(config))
    with pytest.raises(InputError) as refused:
        load_config(argparse.Namespace(config=file, models=None))
    assert str(refused.value).startswith(f"{file}: {'.'.join(path) or '(root)'}: unknown field 'quantlie' (known: ")
