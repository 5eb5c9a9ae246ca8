"""Every outside library the repository's code imports is declared in pyproject.toml.

Covers each `import` and `from ... import` in every tracked Python file (the product's packages, the
local play, benchmarks, tools and tests): a module that is neither the standard library's nor the
repository's must come from a distribution that `[project] dependencies` or an extra names, so that no
import works only because another library happens to bring it. Not covered: which extra declares it
(tests/test_images.py installs each image's set and runs it), and the declared tools that run as
commands rather than imports (ruff, mypy, import-linter, shellcheck, hadolint, check-jsonschema).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib

from tests.conftest import REPO


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    lines = [*project["dependencies"], *(r for extra in project["optional-dependencies"].values() for r in extra)]
    return {_normalised(re.split(r"[\[<>=!~;\s]", line, maxsplit=1)[0]) for line in lines}  # `h2>=4.1,<5` -> h2


def imported() -> dict[str, str]:
    """Top-level module -> the first file that imports it, over the modules outside the repository."""
    files = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    ours = {f.split("/")[0].removesuffix(".py") for f in files}
    found: dict[str, str] = {}
    for file in files:
        for node in ast.walk(ast.parse((REPO / file).read_text(), file)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ours and top != "__future__":
                    found.setdefault(top, file)
    return found


def test_every_imported_library_is_declared_by_its_distribution() -> None:
    distributions = importlib.metadata.packages_distributions()
    names = declared()
    undeclared = {
        module: file
        for module, file in imported().items()
        if not {_normalised(d) for d in distributions.get(module, [])} & names
    }
    assert not undeclared, f"imported but not declared in pyproject.toml (module: a file importing it): {undeclared}"
