"""Which metric names a PromQL expression reads: what the metric-contract test checks.

The expression is parsed by a real PromQL parser (PyPI `promql-parser`, the Rust parser of
GreptimeDB), and every vector selector in the tree is read: its name (`DCGM_FI_DEV_GPU_TEMP{gpu="0"}`)
or its `__name__` matcher (`{__name__="DCGM_FI_DEV_GPU_TEMP"}`, `{__name__=~"DCGM_FI_DEV_.*"}`).
Grafana's macros (`$__rate_interval`, `$__interval`, `$__range`) are durations: they are replaced by
one before parsing. An expression that does not parse raises `ValueError` from the parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import promql_parser

_GRAFANA_DURATION = re.compile(r"\$\{?__(?:rate_interval|interval|range)(?:_ms|_s)?\}?")


@dataclass(frozen=True)
class NameRead:
    """One selector's metric name: exact, or a regular expression (`__name__=~`)."""

    text: str
    regex: bool = False

    def matches(self, name: str) -> bool:
        return re.fullmatch(self.text, name) is not None if self.regex else name == self.text


def reads(expr: str) -> set[NameRead]:
    """The metric names `expr` selects. A selector that names no metric (`{job="x"}`, or only
    `__name__!=`) reads no particular name and is left out."""
    tree = promql_parser.parse(_GRAFANA_DURATION.sub("5m", expr))
    found: set[NameRead] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.update(_selected(node))

    promql_parser.walk(tree, visit)
    return found


def _selected(selector: promql_parser.VectorSelector) -> set[NameRead]:
    if selector.name:
        return {NameRead(selector.name)}
    groups = [selector.matchers.matchers, *selector.matchers.or_matchers]
    found = set()
    for matchers in groups:
        for m in matchers:
            if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal:
                found.add(NameRead(m.value))
            elif m.name == "__name__" and m.op == promql_parser.MatchOp.Re:
                found.add(NameRead(m.value, regex=True))
    return found
