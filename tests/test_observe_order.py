"""The loop's listing order: a pod read bound has its node read at least as new as the bind.

kube-scheduler binds only to a Ready node. Listed Nodes first, a node that joined and took its pods between
the loop's two lists read NotReady with pods bound to it, their replicas read as lost (churn seed 800: a
202's replicas placed afresh on another shape, its serving Deployment's template rewritten, a Ready pod
rolled away). The world here changes once, right after the first of the two lists, whichever it is.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autoscaler.adapters.kubernetes import Cluster
from autoscaler.controller import Controller, owned_kinds
from localplay.kube_standin import KubeCluster
from tests.clock import Clock
from tests.test_controller import NOW, SETTINGS, FixedSignals
from tests.test_decide import CATALOG, REGISTRY, h100
from tests.test_pods import pod

PODS, NODES = "v1/pods", "v1/nodes"


class ChangesAfterFirstList(Cluster):
    """The real adapter, with `change` run once after its first list of Nodes or pods returns."""

    def __init__(self, *args: Any, change: Callable[[], None], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.change: Callable[[], None] | None = change

    def _after(self, listed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        change, self.change = self.change, None
        if change is not None:
            change()
        return listed

    def nodes(self) -> list[dict[str, Any]]:
        return self._after(super().nodes())

    def gpu_pods(self) -> list[dict[str, Any]]:
        return self._after(super().gpu_pods())


def test_a_node_that_joins_and_takes_its_pods_between_the_lists_is_read_ready_under_them(kube: KubeCluster) -> None:
    kube.put(NODES, h100("gpu-1", ready=False))
    kube.put(PODS, pod("replica-0", {"nvidia.com/gpu": "1"}, node=None, phase="Pending"))

    def join_and_bind() -> None:
        kube.put(NODES, h100("gpu-1", ready=True))
        kube.put(PODS, pod("replica-0", {"nvidia.com/gpu": "1"}, node="gpu-1", phase="Pending"))

    cluster = ChangesAfterFirstList(kube.api_client(), owned_kinds=owned_kinds(SETTINGS), change=join_and_bind)
    ctl = Controller(cluster, FixedSignals(demand=1.0), SETTINGS, REGISTRY, CATALOG, "a", clock=Clock(NOW))
    obs, _ = ctl._observe(NOW)

    ready = {
        n["metadata"]["name"]
        for n in obs.nodes
        if any(c.get("type") == "Ready" and c.get("status") == "True" for c in n["status"]["conditions"])
    }
    bound = {p["spec"]["nodeName"] for p in obs.pods if p["spec"].get("nodeName")}
    assert bound <= ready, f"pods read bound to {sorted(bound - ready)}, read NotReady"
