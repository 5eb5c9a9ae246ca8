"""What the churnkit modules share: the stand-in's paths of the kinds the play reads and writes, the log, and a
201's answer as the API annotated it on the endpoint."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any

from autoscaler.decide import PROMISE_ANNOTATION

ENDPOINTS = "egs.dev/v1alpha1/inferenceendpoints"
DEPLOYMENTS = "apps/v1/deployments"
NODES = "v1/nodes"
PODS = "v1/pods"
EVENTS = "events.k8s.io/v1/events"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def answer_of(endpoint: Mapping[str, Any]) -> dict[str, Any]:
    """What the API answered, as it annotated the endpoint when it created it."""
    annotations = (endpoint.get("metadata") or {}).get("annotations") or {}
    answer: dict[str, Any] = json.loads(annotations.get(PROMISE_ANNOTATION, "{}"))
    return answer


def answered_nodes(answer: Mapping[str, Any]) -> set[str]:
    """The nodes a 201 was answered on."""
    return {w.get("node") for p in answer.get("placements") or () for w in p.get("workers") or ()}
