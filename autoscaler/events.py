"""Kubernetes Events and KEP-1623 conditions: what `kubectl describe` shows about an endpoint.

Called by the controller loop (and by the decide step's status code for conditions). Two parts:

- **Events** (`events.k8s.io/v1`). The core says *what* happened as plain data, `event(obj, ...)`;
  the controller hands it to a `Recorder`, which writes it through an `EventSink` (the Kubernetes
  adapter). Repeats are deduplicated as client-go's event broadcaster does: an Event with the same
  object, reason, action and type seen within `SERIES_WINDOW_S` updates that Event's
  `series.count` and `lastObservedTime` instead of creating another object, so a hold repeated
  every loop is one Event counting up, not an object per loop. Recording never raises: an Event
  that cannot be written is logged and dropped (Events are best effort in Kubernetes too).
- **Conditions** (`metav1.Condition`): `set_condition` keeps `lastTransitionTime` unless the
  condition's *status* changes (a new reason or message alone does not move it), as
  `meta.SetStatusCondition` in apimachinery does.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from autoscaler.kubetime import micro_time, rfc3339
from common.errors import EgsError

log = logging.getLogger("egs.events")

REPORTING_CONTROLLER = "egs.dev/controller"
SERIES_WINDOW_S = 6 * 60.0
"""client-go's window: a repeat more than 6 minutes after the last one starts a new Event."""
NAME_ROOM = 253 - 1 - 16
"""What of the object's name an Event's name keeps: a name is at most 253 characters, and one more than that (an
InferenceEndpoint's may have 253) had every Event on the object refused; `.` and 16 hex digits of nanoseconds follow."""
CACHE_SIZE = 4096
"""Isomorphic Events remembered; the oldest is forgotten first (a bound on the controller's memory)."""


@dataclass(frozen=True)
class ObjectRef:
    """The object an Event is about (`regarding`)."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""

    def as_dict(self) -> dict[str, str]:
        ref = {"apiVersion": self.api_version, "kind": self.kind, "name": self.name}
        if self.namespace:
            ref["namespace"] = self.namespace
        if self.uid:
            ref["uid"] = self.uid
        return ref


@dataclass(frozen=True)
class Event:
    """Something that happened to one object: `type` Normal or Warning, `reason` CamelCase."""

    regarding: ObjectRef
    type: Literal["Normal", "Warning"]
    reason: str
    action: str
    note: str


def ref(obj: Mapping[str, Any]) -> ObjectRef:
    """The reference to an object as the API server sent it (apiVersion, kind, metadata)."""
    meta = obj.get("metadata") or {}
    return ObjectRef(
        str(obj.get("apiVersion", "")),
        str(obj.get("kind", "")),
        str(meta.get("namespace") or ""),
        str(meta.get("name", "")),
        str(meta.get("uid") or ""),
    )


def event(
    obj: Mapping[str, Any] | ObjectRef, type: Literal["Normal", "Warning"], reason: str, action: str, note: str
) -> Event:
    """An Event on `obj`; the note is cut to the API's 1 kB limit."""
    regarding = obj if isinstance(obj, ObjectRef) else ref(obj)
    return Event(regarding, type, reason, action, note[:1024])


class EventSink(Protocol):
    """Where Events are written: the Kubernetes adapter's `create_event` and `patch_event`."""

    def create_event(self, namespace: str, body: Mapping[str, Any]) -> Any: ...

    def patch_event(self, namespace: str, name: str, patch: Mapping[str, Any]) -> Any: ...


@dataclass
class _Series:
    namespace: str
    name: str
    count: int
    last_s: float


class Recorder:
    """Writes Events for one controller replica (`instance`), deduplicating repeats into a series."""

    def __init__(self, sink: EventSink, instance: str, clock: Callable[[], float] = time.time) -> None:
        self.sink = sink
        self.instance = instance
        self.clock = clock
        self._series: OrderedDict[tuple[ObjectRef, str, str, str], _Series] = OrderedDict()
        self._stamp = 0
        self.failures = 0
        """Events that could not be written (logged, never raised)."""

    def record(self, e: Event) -> None:
        now = self.clock()
        key = (e.regarding, e.type, e.reason, e.action)
        namespace = e.regarding.namespace or "default"  # cluster-scoped objects' Events live in `default`
        try:
            seen = self._series.get(key)
            if seen is not None and now - seen.last_s <= SERIES_WINDOW_S:
                seen.count += 1
                seen.last_s = now
                series = {"count": seen.count, "lastObservedTime": micro_time(now)}
                self.sink.patch_event(seen.namespace, seen.name, {"series": series, "note": e.note})
                self._series.move_to_end(key)
                return
            # client-go's name; strictly increasing, so that two Events in one clock tick do not collide
            self._stamp = max(int(now * 1e9), self._stamp + 1)
            name = f"{e.regarding.name[:NAME_ROOM].rstrip('-.')}.{self._stamp:x}"
            self.sink.create_event(namespace, self._body(e, namespace, name, now))
        except EgsError as error:
            self.failures += 1
            log.warning("event %s on %s %s: not recorded: %s", e.reason, e.regarding.kind, e.regarding.name, error)
            self._series.pop(key, None)
            return
        self._series[key] = _Series(namespace, name, 1, now)
        self._series.move_to_end(key)
        while len(self._series) > CACHE_SIZE:
            self._series.popitem(last=False)

    def _body(self, e: Event, namespace: str, name: str, now: float) -> dict[str, Any]:
        return {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "eventTime": micro_time(now),
            "reportingController": REPORTING_CONTROLLER,
            "reportingInstance": self.instance,
            "regarding": e.regarding.as_dict(),
            "type": e.type,
            "reason": e.reason,
            "action": e.action,
            "note": e.note,
        }


def set_condition(
    conditions: Sequence[Mapping[str, Any]] | None,
    type: str,
    status: Literal["True", "False", "Unknown"],
    reason: str,
    message: str,
    now: float,
    observed_generation: int | None = None,
) -> list[dict[str, Any]]:
    """`conditions` with the one of `type` set; its `lastTransitionTime` moves only when `status` does."""
    out = [dict(c) for c in conditions or () if c.get("type") != type]
    before = next((c for c in conditions or () if c.get("type") == type), None)
    moved = before is None or before.get("status") != status or not before.get("lastTransitionTime")
    condition: dict[str, Any] = {
        "type": type,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": rfc3339(now) if moved or before is None else before["lastTransitionTime"],
    }
    if observed_generation is not None:
        condition["observedGeneration"] = observed_generation
    position = next((i for i, c in enumerate(conditions or ()) if c.get("type") == type), len(out))
    out.insert(min(position, len(out)), condition)
    return out


def find_condition(conditions: Sequence[Mapping[str, Any]] | None, type: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or () if c.get("type") == type), None)
