"""The sim backend's topology: peer links stay within a baseboard, so they grow linearly with GPUs."""

from __future__ import annotations

import tracemalloc

from exporter.backends.sim import P2P_DOMAIN_GPUS, SimBackend
from exporter.fleet import GpuGroup, SimNode
from exporter.gpu import P2PLink


def _node(count: int, interconnect: str = "nvlink") -> SimNode:
    group = GpuGroup(model="H100", vendor="nvidia", count=count, memory_mib=81559, interconnect=interconnect)
    return SimNode(name="n", gpus=(group,))


def test_an_eight_gpu_node_links_every_gpu_to_every_other() -> None:
    links = SimBackend(_node(8)).open().links
    assert {(p.gpu, p.peer_gpu) for p in links} == {(a, b) for a in range(8) for b in range(8) if a != b}
    assert {(p.link_type, p.links) for p in links} == {("nvlink", 18)}


def test_links_of_a_large_group_stay_within_baseboards_and_grow_linearly() -> None:
    tracemalloc.start()
    try:
        links = SimBackend(_node(2000, "pcie")).open().links
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(links) == 2000 * (P2P_DOMAIN_GPUS - 1)
    assert all(p.gpu // P2P_DOMAIN_GPUS == p.peer_gpu // P2P_DOMAIN_GPUS for p in links)
    assert peak < 64 * 1024 * 1024, f"opening 2,000 simulated GPUs took {peak / 2**20:.0f} MiB"


def test_a_group_that_does_not_fill_its_last_board_links_the_rest_among_themselves() -> None:
    links = set(SimBackend(_node(10, "xgmi")).open().links)
    assert P2PLink(8, 9, "xgmi") in links and P2PLink(9, 8, "xgmi") in links
    assert not any(p.gpu >= 8 and p.peer_gpu < 8 for p in links)
