"""Reconcile state: what the cluster holds now, read back each loop, that the controller keeps its word on.

Nothing here lives in memory between loops (DESIGN.md, "Reconcile state"): the replicas each endpoint's
workloads hold, and the ETA a status promised, are read from the objects the controller observes, so a
restart or a new leader decides as the old one would have.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

REQUEST_NAME = "egs.io/request-name"


@dataclass(frozen=True)
class Workload:
    replicas: int | None = None
    ready: int = 0


def read_workloads(owned: Sequence[Mapping[str, Any]]) -> dict[str, Workload]:
    """Per endpoint key, the replicas its workloads have now and how many are ready."""
    found: dict[str, Workload] = {}
    for obj in owned:
        if obj.get("kind") not in ("Deployment", "LeaderWorkerSet"):
            continue
        meta = obj.get("metadata") or {}
        name = (meta.get("annotations") or {}).get(REQUEST_NAME)
        if not name:
            continue
        key = f"{meta.get('namespace', 'default')}/{name}"
        had = found.get(key, Workload())
        replicas = int((obj.get("spec") or {}).get("replicas", 0))
        ready = int((obj.get("status") or {}).get("readyReplicas", 0))
        found[key] = Workload((had.replicas or 0) + replicas, had.ready + ready)
    return found


def endpoint_key(obj: Mapping[str, Any]) -> str:
    """`namespace/name` of a raw object."""
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"


def status_of(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """An endpoint's status as observed; {} when it has none, or one that is not an object (a
    malformed endpoint is reported on itself, and its status written anew)."""
    status = obj.get("status")
    return status if isinstance(status, Mapping) else {}


def promised_eta(obj: Mapping[str, Any]) -> float | None:
    status = status_of(obj)
    text = status.get("estimatedReadyTime")
    if not text or status.get("phase") != "Provisioning":
        return None
    try:
        return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
