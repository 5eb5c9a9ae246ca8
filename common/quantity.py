"""Kubernetes resource quantities (`40k`, `40Ki`, `1.5Gi`, `500m`, `1e3`) read as numbers.

Below every component: the inventory reads Nodes' allocatable GPUs with it, and the autoscaler's pod
reader the GPU resources and HAMi memory a pod asks for. The API server writes a quantity back in its
canonical form (`apimachinery/pkg/api/resource/quantity.go`), which is not the form a user wrote: a
request of `40000` may be read back as `40k`, so `int()` is not enough.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    **{binary: Decimal(1024**i) for i, binary in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), start=1)},
}
_QUANTITY = re.compile(
    r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"  # the number
    r"(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$"  # a decimal exponent, or a suffix
)


def parse(value: object) -> Decimal:
    """The number a quantity stands for; `ValueError` for anything the API server would refuse."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"not a quantity: {value!r}")
    if not isinstance(value, str):
        return Decimal(value)
    match = _QUANTITY.match(value.strip())
    if match is None:
        raise ValueError(f"not a quantity: {value!r}")
    number, exponent, suffix = match.groups()
    try:
        return Decimal(number + (exponent or "")) * _SUFFIXES[suffix or ""]
    except InvalidOperation as e:
        raise ValueError(f"not a quantity: {value!r}") from e


def count(value: object) -> int:
    """A quantity that counts whole things (GPUs, MIG instances, MiB): `ValueError` if it is fractional."""
    number = parse(value)
    if number != number.to_integral_value():
        raise ValueError(f"not a whole number: {value!r}")
    return int(number)
