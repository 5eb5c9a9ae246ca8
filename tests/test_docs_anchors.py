"""Every `#anchor` a page of the docs links to is a heading of the page it names, as GitHub slugs headings:
a renamed section leaves no link that lands at the top of the page instead (tests/test_docs.py checks the
files; this checks the sections).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from tests.conftest import REPO
from tests.test_docs import PAGES

LINK = re.compile(r"\]\(((?!https?:|mailto:)[^)#\s]*)#([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)
FENCE = re.compile(r"^```.*?^```", re.M | re.S)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but `-` and `_` dropped, spaces to `-`."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@functools.cache
def anchors(page: Path) -> set[str]:
    """The page's anchors, read once: many links name the same page."""
    return {slug(h) for h in HEADING.findall(FENCE.sub("", page.read_text()))}


def test_the_slug_is_github_s() -> None:
    assert slug("Reconcile state: the controller keeps its word") == "reconcile-state-the-controller-keeps-its-word"
    assert slug("Placement: `egs plan`") == "placement-egs-plan"
    assert slug("3. See that it works") == "3-see-that-it-works"
    assert slug("LLM packing (`benchmarks/llm_packing.py`)") == "llm-packing-benchmarksllm_packingpy"


def test_every_anchor_the_docs_link_to_is_a_heading_of_its_page() -> None:
    broken = []
    for page in PAGES:
        for target, anchor in LINK.findall(FENCE.sub("", page.read_text())):
            linked = (page.parent / target).resolve() if target else page
            if linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{page.relative_to(REPO)}: {target}#{anchor}")
    assert not broken
