"""argparse types for the commands' numeric options, so that each refuses the same way.

Text that is not a number, nan and inf are refused by name (`--interval nan` would spin a loop,
`--time-limit inf` never end it), and a bound is said with the value given. argparse prefixes the
option's name: `argument --interval: must be above 0, got -1`.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def number(
    *, above: float | None = None, at_least: float | None = None, at_most: float | None = None, unit: str = ""
) -> Callable[[str], float]:
    """A finite number, above `above` or at least `at_least`, and at most `at_most`; `unit` ("seconds",
    "days") names it in messages."""
    of = f" of {unit}" if unit else ""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number{of}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number{of}, got {text}")
        if above is not None and not value > above:
            raise argparse.ArgumentTypeError(f"must be above {above:g}, got {text}")
        if at_least is not None and not value >= at_least:
            raise argparse.ArgumentTypeError(f"must be at least {at_least:g}, got {text}")
        if at_most is not None and not value <= at_most:
            raise argparse.ArgumentTypeError(f"must be at most {at_most:g}, got {text}")
        return value

    return parse


POSITIVE = number(above=0)
