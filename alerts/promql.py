"""Which metric names a PromQL expression reads: what the metric-contract test checks.

A small lexical pass, not a parser: it drops strings, label matchers, ranges, offsets, grouping
clauses and Grafana variables, then keeps every identifier that is not a keyword or a function call.
That is exact for the selector-and-operator PromQL that EGS writes, and its tests pin the cases.
"""

from __future__ import annotations

import re

_DROP = (
    re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`'),  # strings
    re.compile(r"\$\{[^}]*\}|\$\w+"),  # Grafana variables
    re.compile(r"\{[^}]*\}"),  # label matchers
    re.compile(r"\[[^\]]*\]"),  # ranges and subqueries
    re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"),  # grouping labels
    re.compile(r"\boffset\s+-?[0-9a-z]+"),  # offsets
)
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}
)


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` selects."""
    for pattern in _DROP:
        expr = pattern.sub(" ", expr)
    names = set()
    for match in _IDENT.finditer(expr):
        start = match.start()
        if start and (expr[start - 1].isdigit() or expr[start - 1] == "."):
            continue  # the exponent or unit of a number (1e3, 5m)
        if expr[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names
