"""A clock for tests: time moves only when the test moves it, or by `step` on every read."""

from __future__ import annotations


class Clock:
    def __init__(self, t: float = 0.0, step: float = 0.0) -> None:
        self.t, self.step = t, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t
