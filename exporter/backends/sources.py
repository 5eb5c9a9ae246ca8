"""The read loop both hardware backends share: run each field group's one library call, sort the
asked-for fields into values, unsupported or failed, and turn a lost device into GpuLost.

A backend supplies its groups (fields -> a call returning their values, or None for "no value this
cycle") and how to read its library's exceptions; this module owns the bookkeeping.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

from exporter.backend import DriverLost, GpuLost
from exporter.gpu import Reading

Outcome = Literal["unsupported", "lost", "driver", "failed"]
FieldGroup = tuple[frozenset[str], Callable[[], dict[str, float] | None]]


def read_groups(
    groups: Iterable[FieldGroup],
    wanted: set[str],
    library_error: type[BaseException],
    classify: Callable[[BaseException], Outcome],
    lost: Callable[[BaseException], str],
) -> Reading:
    """Read the `wanted` fields group by group; a field no group covers is unsupported.

    `library_error` is the library's exception base (anything else propagates: a bug, not a GPU
    fault); `classify` tells what one means; `lost` words the GpuLost (or DriverLost) message.
    """
    reading = Reading()
    covered: set[str] = set()
    for names, call in groups:
        covered |= names
        asked = wanted & names
        if not asked:
            continue
        try:
            values = call()
        except library_error as e:
            outcome = classify(e)
            if outcome == "driver":
                raise DriverLost(lost(e)) from e
            if outcome == "lost":
                raise GpuLost(lost(e)) from e
            (reading.unsupported if outcome == "unsupported" else reading.failed).update(asked)
            continue
        if values is None:
            continue
        for name in asked:
            if name in values:
                reading.values[name] = values[name]
            else:
                reading.unsupported.add(name)
    reading.unsupported |= wanted - covered
    return reading
