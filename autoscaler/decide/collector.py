"""Python's cyclic garbage collector paused while the decide step runs.

A serving loop at 1,000 endpoints holds about 150,000 objects (the observation: Nodes, pods, workloads),
and the step allocates enough that the collector ran 2-3 full collections during it, each going over all
of them (~0.1 s of CPU each, 0.3-0.5 s of a 1.4 s step: `benchmarks/reconcile.py`), to find the 36
objects the step leaves in cycles. Paused, what the step drops is freed by reference counting as before,
and those few cycles go at the next collection after it.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Pauses:
    """How many paused blocks run now (the endpoint API decides from several threads), and whether the
    collector ran before the first: the last to end turns it back on only then. Overlaps stay short: the
    API's POSTs build under one lock and at most one background rebuild runs beside them, so the count is
    back at 0 within two steps (`egs api --capacity-ttl 0` under steady POSTs, twelfth session: off 17% of
    the time, 0.47 s at most in a row, RSS as without the pause; docs/benchmark-notes.md)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.resume = False


_PAUSES = _Pauses()


@contextmanager
def collector_paused() -> Iterator[None]:
    """The block (or, as a decorator, the function) run with automatic collection off."""
    with _PAUSES.lock:
        if _PAUSES.running == 0:
            _PAUSES.resume = gc.isenabled()
            gc.disable()
        _PAUSES.running += 1
    try:
        yield
    finally:
        with _PAUSES.lock:
            _PAUSES.running -= 1
            if _PAUSES.running == 0 and _PAUSES.resume:
                gc.enable()
