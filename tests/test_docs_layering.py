"""docs/development.md names the outside libraries a pure core may not import as the import contract in
pyproject.toml does (the page had lost `h2`, the kubelet client's HTTP/2).
"""

from __future__ import annotations

import re
import tomllib

from tests.conftest import REPO


def test_development_names_the_libraries_the_cores_contract_forbids() -> None:
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (cores,) = [c for c in contracts if c["id"] == "cores-import-no-outside-library"]
    libraries = {m for m in cores["forbidden_modules"] if "." not in m}
    text = " ".join((REPO / "docs" / "development.md").read_text().split())
    listed = re.search(r"import no outside system's library \(([^)]*)\)", text)
    assert listed, "the layering paragraph of docs/development.md"
    assert set(re.findall(r"`(\w+)`", listed.group(1))) == libraries
