"""Kubernetes' time formats, for the fields EGS writes and reads back (Lease, Event, conditions)."""

from __future__ import annotations

import datetime
import math


def micro_time(t: float) -> str:
    """metav1.MicroTime (Lease renewTime, Event eventTime): RFC 3339 with microseconds, in UTC."""
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc3339(t: float) -> str:
    """metav1.Time (a condition's lastTransitionTime): RFC 3339 to the second, in UTC."""
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def deadline(t: float) -> str:
    """A promised time (an ETA) to the second, rounded up: written, a promise never reads earlier than made."""
    return rfc3339(math.ceil(t))


def parse_time(text: str) -> float:
    """Either format back to Unix time."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def read_time(value: object) -> float | None:
    """A time read back from a field another writer may have set (a status, a pod's condition): None where there
    is none or it is no time (a number is none either), not an error that fails every endpoint's loop."""
    try:
        return parse_time(value) if isinstance(value, str) and value else None
    except ValueError:
        return None
