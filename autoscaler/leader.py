"""Leader election on a coordination.k8s.io/v1 Lease: which controller replica may write.

Part of the autoscaler's pure core: `claim` says what Lease spec to write to become or stay leader
(or that another replica holds it), from the spec read and `now`. The controller writes it through
the Kubernetes adapter with the resourceVersion it read, so of two replicas that claim at once one
write fails with a conflict and that replica stays a follower. A leader whose Lease write failed
stops writing once `valid_until` has passed, before the next replica may take over.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

LEASE_NAME = "egs-controller"


def claim(spec: Mapping[str, Any] | None, me: str, now: float, duration_s: float) -> dict[str, Any] | None:
    """The spec that makes `me` the holder from `now`, or None while another holder's Lease is valid."""
    spec = spec or {}
    holder = spec.get("holderIdentity")
    if holder and holder != me and valid_until(spec) > now:
        return None
    transitions = int(spec.get("leaseTransitions", 0)) + (1 if holder and holder != me else 0)
    acquired = spec.get("acquireTime") if holder == me and spec.get("acquireTime") else micro_time(now)
    return {
        "holderIdentity": me,
        "leaseDurationSeconds": max(1, round(duration_s)),
        "acquireTime": acquired,
        "renewTime": micro_time(now),
        "leaseTransitions": transitions,
    }


def valid_until(spec: Mapping[str, Any]) -> float:
    """When the holder's claim runs out (0 when the spec has never been renewed)."""
    renewed = spec.get("renewTime")
    if not renewed:
        return 0.0
    return parse_time(str(renewed)) + float(spec.get("leaseDurationSeconds", 0))


def micro_time(t: float) -> str:
    """Kubernetes' MicroTime: RFC 3339 with microseconds, in UTC."""
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
