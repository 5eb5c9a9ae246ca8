"""The Kubernetes stand-in lists as a real API server does: in etcd's key order (namespace, then name).

It listed in the order objects were made, so a client that keeps the listed order (the decide writing the
waiting workloads in the order their promised node is due) could not be told from one that kept creation order.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from localplay.kube_standin import KubeCluster


def _get(kube: KubeCluster, path: str) -> Any:
    with urllib.request.urlopen(f"{kube.url}{path}", timeout=10) as answer:
        return json.loads(answer.read())


def _listed(kube: KubeCluster, path: str) -> list[tuple[str | None, str]]:
    return [(i["metadata"].get("namespace"), i["metadata"]["name"]) for i in _get(kube, path)["items"]]


def test_lists_come_by_namespace_then_name_whatever_order_they_were_made_in(kube: KubeCluster) -> None:
    made = [("teams", "zeta"), ("apps", "mid"), ("teams", "alpha"), ("apps", "b"), ("apps", "a-10"), ("apps", "a-9")]
    for namespace, name in made:
        kube.put(
            "v1/services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace}}
        )
    for name in ("node-c", "node-a", "node-b"):
        kube.put("v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})

    every = [("apps", "a-10"), ("apps", "a-9"), ("apps", "b"), ("apps", "mid"), ("teams", "alpha"), ("teams", "zeta")]
    assert _listed(kube, "/api/v1/services") == every
    assert _listed(kube, "/api/v1/namespaces/teams/services") == [("teams", "alpha"), ("teams", "zeta")]
    assert _listed(kube, "/api/v1/nodes") == [(None, "node-a"), (None, "node-b"), (None, "node-c")]
    assert [(s["metadata"]["namespace"], s["metadata"]["name"]) for s in kube.all("v1/services")] == every


def test_a_watch_from_no_version_starts_with_every_object_in_list_order(kube: KubeCluster) -> None:
    for name in ("node-c", "node-a", "node-b"):
        kube.put("v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
    with urllib.request.urlopen(f"{kube.url}/api/v1/nodes?watch=true&timeoutSeconds=1", timeout=10) as stream:
        events = [json.loads(line) for line in stream.read().splitlines() if line.strip()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "node-a"),
        ("ADDED", "node-b"),
        ("ADDED", "node-c"),
    ]
