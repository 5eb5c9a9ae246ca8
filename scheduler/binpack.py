"""Whether HAMi binds a node's pending pods in whatever order they arrive.

Part of the scheduler's pure core; `autoscaler.decide.placement.place_requests` calls it for every
HAMi node a plan puts new replicas on. EGS chooses a share's GPU, but HAMi's scheduler does not read
it: with the binpack policy EGS's pods ask for (`scheduler.manifests.HAMI_BINPACK`) it puts each pod,
in the order it meets them, on the GPUs with the least memory left that hold its share, one per device
it asks for. Shares that fit the node's GPUs in EGS's packing may not fit in HAMi's (churn seed 4: five
shares, 180,551 MiB of 190,673 free over two GPUs, and one order stranded a 201), and the arrival order
is kube-scheduler's. A replica of whole GPUs on a HAMi node asks HAMi for no memory, which HAMi reads
as all of each device's: it is a pending pod too, of each device's whole memory, so only idle GPUs hold it.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import permutations
from typing import NamedTuple

BRUTE_FORCE = 6
"""Pending pods up to which every arrival order is tried (6! = 720 orders, well under a
millisecond each); beyond it a sufficient test that holds whatever the order and the rule."""


class Pending(NamedTuple):
    """A pod HAMi has yet to bind: `mib` of memory on each of `devices` GPUs."""

    mib: int
    devices: int = 1


def binds_in_every_order(free: Sequence[int], pending: Sequence[Pending]) -> bool:
    """Whether every order of `pending` binds on GPUs with `free` MiB under HAMi's binpack rule."""
    if never_stranded(free, pending):
        return True
    if len(pending) > BRUTE_FORCE:
        return False
    return all(_binpacks(free, order) for order in set(permutations(sorted(pending))))


def never_stranded(free: Sequence[int], pending: Sequence[Pending]) -> bool:
    """A pod is stranded only once fewer GPUs than it asks for have its share left, which takes the
    others to fill each GPU that held it past `free - share` but the `devices - 1` roomiest, a pod of
    theirs on each: when the others' memory is less than that in sum, or their devices fewer than those
    GPUs (a whole-GPU pod beside a few shares), no order and no choice of GPUs can strand it."""
    memory, devices = sum(p.mib * p.devices for p in pending), sum(p.devices for p in pending)
    for p in pending:
        room = sorted(f - p.mib + 1 for f in free if f >= p.mib)
        filled = len(room) - p.devices + 1  # the GPUs that must lose its share's room
        if filled <= 0:
            return False
        if memory - p.mib * p.devices >= sum(room[:filled]) and devices - p.devices >= filled:
            return False
    return True


def _binpacks(free: Sequence[int], order: Sequence[Pending]) -> bool:
    left = list(free)
    for pod in order:
        fits = sorted((f, i) for i, f in enumerate(left) if f >= pod.mib)
        if len(fits) < pod.devices:
            return False
        for _, i in fits[: pod.devices]:
            left[i] -= pod.mib
    return True
