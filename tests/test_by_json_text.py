"""A check remembered by its data's JSON text answers equal data from memory, checks changed data anew,
holds only the latest used, and checks data JSON cannot write every time."""

from __future__ import annotations

from typing import Any

from common.schema import by_json_text


def test_equal_data_is_answered_from_memory_and_the_least_recently_used_goes_first() -> None:
    seen: list[Any] = []

    @by_json_text(held=2)
    def size(raw: Any) -> int:
        seen.append(raw)
        return len(raw)

    assert size({"a": 1, "b": 2}) == 2 and size({"b": 2, "a": 1}) == 2  # same text, keys sorted
    assert len(seen) == 1
    size({"c": 3})
    size({"a": 1, "b": 2})  # used again: now the latest
    size({"d": 4})  # holds two: {"c": 3} goes
    size({"a": 1, "b": 2})
    assert len(seen) == 3
    size({"c": 3})
    assert len(seen) == 4


def test_data_json_cannot_write_is_checked_each_time() -> None:
    calls = 0

    @by_json_text(held=8)
    def check(raw: Any) -> None:
        nonlocal calls
        calls += 1

    check({"when": object()})
    check({"when": object()})
    assert calls == 2
