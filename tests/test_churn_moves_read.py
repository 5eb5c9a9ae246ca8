"""Churn reads each consolidation move it sees first with the Nodes in the cluster then (the node budget's base),
and lists the Nodes once a poll for that, not once for each move: a loop of consolidation begins several."""

from __future__ import annotations

import time
from typing import Any

from benchmarks.churnkit.figures import Moved
from benchmarks.churnkit.kinds import NODES
from tests.conftest import Spy
from tests.test_churn_promises import Api, play


class Fleet(Api):
    """The API server with `nodes` Nodes beside the endpoints."""

    def __init__(self, nodes: int) -> None:
        super().__init__()
        self.nodes: list[dict[str, Any]] = [{"metadata": {"name": f"gpu-{i}"}} for i in range(nodes)]

    def all(self, kind: str) -> list[dict[str, Any]]:
        return list(self.nodes) if kind == NODES else super().all(kind)


def test_the_moves_first_seen_in_one_poll_list_the_nodes_once(spy: Spy) -> None:
    api = Fleet(nodes=12)
    run = play(api)
    for i, node in enumerate(("gpu-1", "gpu-2", "gpu-3")):
        move = {"at": f"2026-12-07T20:00:0{i}+00:00", "nodes": [node], "replacing": [f"ep-{i}-old"]}
        meta = {"namespace": "team", "name": f"ep-{i}", "uid": f"uid-{i}"}
        api.objects[("team", f"ep-{i}")] = {"metadata": meta, "spec": {}, "status": {"consolidation": move}}
    calls = spy(api, "all")
    run._observe(time.time())
    assert [c.arguments["kind"] for c in calls].count(NODES) == 1
    assert sorted(run.tally.moves.values(), key=lambda m: m.at) == [
        Moved(1_796_673_600.0 + i, frozenset({f"gpu-{i + 1}"}), 12, f"uid-{i}") for i in range(3)
    ]
    run._observe(time.time())  # nothing new: no list
    assert [c.arguments["kind"] for c in calls].count(NODES) == 1
