"""The churn benchmark scores each 202's promise once per incarnation of its endpoint (its uid).

An endpoint deleted and posted again under its name is another endpoint: the play used to key promises by
name, so a delete dropped the first incarnation's promise even where it had been kept (or broken) already,
and a repost's promise stood for both. Covers: a promise kept before a delete stays scored beside the
repost's own; a promise whose endpoint is deleted before it was Ready is not scored; a status of another
incarnation is not read as this one's.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import itertools
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from benchmarks.churnkit.figures import promise_figures
from benchmarks.churnkit.kinds import ENDPOINTS
from benchmarks.churnkit.run import Run
from localplay.kube_standin import KubeCluster

HOUR = 3600.0


class Answer:
    def __init__(self, status_code: int, body: dict[str, Any] | None = None) -> None:
        self.status_code, self.body, self.text = status_code, body or {}, ""

    def json(self) -> dict[str, Any]:
        return self.body


class Api:
    """The endpoint API and the API server as the play reads them: a POST creates an incarnation (a new
    uid) answered 202 with the ETA set for its name; `statuses` are what the controller wrote since."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.etas: dict[str, float] = {}
        self.uids = (f"uid-{i}" for i in itertools.count())

    def post(self, url: str, json: dict[str, Any], **_: Any) -> Answer:
        namespace = url.split("/")[-2]
        eta = datetime.datetime.fromtimestamp(self.etas[json["name"]], datetime.UTC).isoformat()
        meta = {"namespace": namespace, "name": json["name"], "uid": next(self.uids)}
        status = {"phase": "Provisioning", "estimatedReadyTime": eta}
        self.objects[(namespace, json["name"])] = {"metadata": meta, "spec": dict(json), "status": status}
        return Answer(202, {"estimatedReadyTime": eta})

    def delete(self, url: str, **_: Any) -> Answer:
        parts = url.split("/")
        self.objects.pop((parts[-3], parts[-1]), None)
        return Answer(204)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((namespace, name)) if kind == ENDPOINTS else None

    def all(self, kind: str) -> list[dict[str, Any]]:
        return list(self.objects.values()) if kind == ENDPOINTS else []

    def ready(self, name: str) -> None:
        self.objects[("team", name)]["status"] = {"phase": "Ready"}


def play(api: Api) -> Run:
    stand_ins: dict[str, Any] = {
        "kube": cast(KubeCluster, api),
        "play": SimpleNamespace(seen={}, pods={}),
        "prometheus": SimpleNamespace(demand=collections.defaultdict(float)),
    }
    run = Run(argparse.Namespace(factor=20.0), Path("."), api="http://api", controller_command=[],
              controller=cast(Any, None), t0=time.time(), **stand_ins)  # fmt: skip
    run.session = cast(Any, api)
    return run


def test_each_incarnation_of_a_reposted_endpoint_is_scored_on_its_own_promise() -> None:
    api, now = Api(), time.time()
    run = play(api)
    body = {"name": "chat", "model": "m"}
    api.etas["chat"] = now + HOUR
    run.post("team", body)
    api.ready("chat")
    run._observe(now)  # Ready an hour before its promise: kept
    run.delete("team", "chat", "m")
    api.etas["chat"] = now - HOUR  # the repost's promise: already past, and it is not Ready yet
    run.post("team", body)
    api.etas["gone"] = now + HOUR
    run.post("team", {"name": "gone", "model": "m"})
    run.delete("team", "gone", "m")  # deleted while it waits: nothing to hold its promise to
    run._observe(now)
    figures = promise_figures(run.tally.promises.values(), run.factor)
    assert (figures["answered_202"], figures["etas_kept"], figures["etas_kept_last"]) == (2, 0.5, 0.5)
    assert 0 < figures["eta_mean_slack_s"] <= HOUR * run.factor


def test_a_202_deleted_after_its_promise_passed_unready_is_scored_broken() -> None:
    api, now = Api(), time.time()
    run = play(api)
    api.etas["late"] = now - 60  # its promise passed a minute ago, and it is not Ready
    run.post("team", {"name": "late", "model": "m"})
    run.delete("team", "late", "m")
    figures = promise_figures(run.tally.promises.values(), run.factor)
    assert (figures["answered_202"], figures["etas_kept"]) == (1, 0.0)


def test_a_status_of_another_incarnation_is_not_read_as_this_ones() -> None:
    api, now = Api(), time.time()
    run = play(api)
    api.etas["chat"] = now + HOUR
    run.post("team", {"name": "chat", "model": "m"})
    first = api.objects[("team", "chat")]
    run.delete("team", "chat", "m")
    run.post("team", {"name": "chat", "model": "m"})
    second = api.objects[("team", "chat")]
    # A read made before the delete, handled after the repost: the first incarnation, Ready.
    api.objects[("team", "chat")] = {**first, "status": {"phase": "Ready"}}
    run._observe(now)
    (promise,) = run.tally.promises.values()
    assert promise.ready is None
    stale_read = run.last_read
    api.objects[("team", "chat")] = {**second, "status": {"phase": "Ready"}}  # the repost turns Ready
    run._observe(now)
    assert promise.ready is not None and promise.ready > stale_read  # timed by this read, not the stale one
