"""The demo's scheduler (`localplay.demo_cluster.ClusterPlay`) preempts as kube-scheduler does: a replica
evicts a warm-pool placeholder only where it fits on no node as the node is. It took the first node in name
order where evicting made room, so the warm node was taken while another node had free GPUs, and the demo's
pool showed no idle node for most of the day.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from localplay.demo_cluster import GPUS_PER_NODE, ClusterPlay, OrderedNode, PlaySettings, Pod
from localplay.kube_standin import KubeCluster
from localplay.vllm_standin import VllmStandIn

SETTINGS = PlaySettings(node_delay_s=8, load_s=2, idle_release_s=16, throughput_rps={})


def play_with(*pods: Pod) -> ClusterPlay:
    """Two ready nodes: gpu-h100-1 holds the warm pool's placeholder, gpu-h100-2 what `pods` hold."""
    play = ClusterPlay(cast(KubeCluster, None), cast(VllmStandIn, None), SETTINGS, Path("targets.yaml"))
    play.nodes = {name: OrderedNode(name, 0.0, 0.0) for name in ("gpu-h100-1", "gpu-h100-2")}
    balloon = Pod("egs-warm-0", "egs-system", "egs-warm", GPUS_PER_NODE, True, node="gpu-h100-1")
    play.pods = {f"{p.namespace}/{p.name}": p for p in (balloon, *pods)}
    return play


def replica(name: str, node: str = "") -> Pod:
    return Pod(name, "demo", "chat", 1, False, node=node, first_gpu=int(name[-1]))


def test_a_replica_goes_where_gpus_are_free_before_it_preempts_the_warm_node() -> None:
    play = play_with(replica("chat-0", "gpu-h100-2"), replica("chat-1"))
    play._schedule(1.0)
    assert play.pods["demo/chat-1"].node == "gpu-h100-2"
    assert play.pods["egs-system/egs-warm-0"].node == "gpu-h100-1"


def test_a_replica_that_fits_nowhere_else_preempts_the_placeholder() -> None:
    full = [replica(f"chat-{i}", "gpu-h100-2") for i in range(GPUS_PER_NODE)]
    play = play_with(*full, Pod("chat-8", "demo", "chat", 1, False))
    play._schedule(1.0)
    assert play.pods["demo/chat-8"].node == "gpu-h100-1"
    assert play.pods["egs-system/egs-warm-0"].node == ""  # pending: the node autoscaler orders its node
