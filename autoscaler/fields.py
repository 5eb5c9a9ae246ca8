"""Fields of objects another writer may have set (a status stored before the CRD's schema said so, an edited
annotation), read as their type or as absent: one field of another type is reported on its object, and written
anew, not an error that fails every endpoint's loop or the API's whole list."""

from __future__ import annotations

from typing import Any


def as_list(value: object) -> list[Any]:
    """The items of a field that should be a list; none where it is not one."""
    return value if isinstance(value, list) else []


def as_text(value: object) -> str:
    """A field that should be text; "" where it is not."""
    return value if isinstance(value, str) else ""
