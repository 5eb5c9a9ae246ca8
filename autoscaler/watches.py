"""Watches that start a reconcile as soon as something the controller decides on changes.

The controller (`autoscaler.controller.Controller.run`) starts one thread per watched kind:
InferenceEndpoints, Nodes, and the kinds it owns. A change wakes the loop at once, so a `201 Created`
("serves now") has its workload within a second or two, and a node that joins is used without
waiting for the next tick; the periodic loop (`--interval`) stays as the resync that catches
anything a watch missed (a stream that broke, a change during a reconnect).

Not every change is worth a loop: the echo of the controller's own writes is passed over (the
adapter knows the versions it wrote), and a Node wakes the loop only when what placement reads of
it changes (labels, taints, schedulability, allocatable, Ready), not on every status heartbeat.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from common.errors import EgsError

log = logging.getLogger("egs.watches")

WATCH_S = 300.0
"""How long the server keeps one watch open before the watcher opens the next (client-go: 5-10 min)."""
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
"""Waits between failed attempts to watch, the last repeated."""
NODE = ("v1", "Node")


class Stream(Protocol):
    """One watch: (type, object) changes until the server ends it; `close()` ends it from another thread."""

    def __enter__(self) -> Stream: ...

    def __exit__(self, *exc: object) -> None: ...

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]: ...

    def close(self) -> None: ...


class Source(Protocol):
    """The Kubernetes adapter's `watch` and `wrote` (their promises are in its docstring)."""

    def watch(self, api_version: str, kind: str, timeout_s: float = WATCH_S) -> Stream: ...

    def wrote(self, api_version: str, kind: str, obj: Mapping[str, Any]) -> bool: ...


def fingerprint(kind: tuple[str, str], obj: Mapping[str, Any]) -> str:
    """What of `obj` the controller's decision reads: for a Node, what placement reads; for the others,
    everything but the bookkeeping a write always changes."""
    meta = obj.get("metadata") or {}
    if kind == NODE:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        ready = [c.get("status") for c in status.get("conditions") or () if c.get("type") == "Ready"]
        seen: Any = [
            meta.get("labels"),
            spec.get("taints"),
            spec.get("unschedulable"),
            status.get("allocatable"),
            ready,
        ]
    else:
        kept = {k: v for k, v in meta.items() if k not in ("resourceVersion", "managedFields")}
        seen = {**obj, "metadata": kept}
    return json.dumps(seen, sort_keys=True, default=str)


class Watches:
    """One watching thread per kind; `wake()` is called on each change worth a loop."""

    def __init__(
        self, source: Source, kinds: tuple[tuple[str, str], ...], wake: Callable[[], None], timeout_s: float = WATCH_S
    ) -> None:
        self.source = source
        self.kinds = kinds
        self.wake = wake
        self.timeout_s = timeout_s
        self.changes = 0
        """Changes that woke the loop."""
        self._stop = threading.Event()
        self._streams: dict[tuple[str, str], Stream] = {}
        self._seen: dict[tuple[str, str, str, str], str] = {}
        self._threads = [
            threading.Thread(target=self._watch, args=(kind,), name=f"watch-{kind[1]}", daemon=True) for kind in kinds
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for stream in list(self._streams.values()):
            stream.close()
        for thread in self._threads:
            thread.join(5)

    def _watch(self, kind: tuple[str, str]) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                with self.source.watch(*kind, timeout_s=self.timeout_s) as stream:
                    self._streams[kind] = stream
                    if self._stop.is_set():
                        return
                    failures = 0
                    for change, obj in stream:
                        self._changed(kind, change, obj)
            except Exception as e:  # a bug too must not end the thread: the kind would go unwatched, unseen
                if self._stop.is_set():
                    return
                wait = BACKOFF_S[min(failures, len(BACKOFF_S) - 1)]
                failures += 1
                if isinstance(e, EgsError):
                    log.info("%s: %s (watching again in %.0fs)", kind[1], e, wait)
                else:
                    log.exception("%s: the watch failed (watching again in %.0fs)", kind[1], wait)
                self._stop.wait(wait)

    def _changed(self, kind: tuple[str, str], change: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (*kind, str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if change == "DELETED":
            self._seen.pop(key, None)
        else:
            seen = fingerprint(kind, obj)
            same = self._seen.get(key) == seen
            self._seen[key] = seen
            if same or self.source.wrote(*kind, obj):
                return
        self.changes += 1
        log.debug("%s %s %s/%s: reconciling now", change, kind[1], key[2], key[3])
        self.wake()
