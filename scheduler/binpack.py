"""Whether HAMi binds a node's pending memory shares in whatever order their pods arrive.

Part of the scheduler's pure core; `autoscaler.decide.placement.place_requests` calls it for every
HAMi node a plan puts new shares on. EGS chooses a share's GPU, but HAMi's scheduler does not read
it: with the binpack policy EGS's pods ask for (`scheduler.manifests.HAMI_BINPACK`) it puts each pod,
in the order it meets them, on the GPU with the least memory left that holds its share. Shares that
fit the node's GPUs in EGS's packing may not fit in HAMi's (churn seed 4: five shares, 180,551 MiB of
190,673 free over two GPUs, and one order stranded a 201), and the arrival order is kube-scheduler's.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import permutations

BRUTE_FORCE = 6
"""Pending shares up to which every arrival order is tried (6! = 720 orders, well under a
millisecond each); beyond it a sufficient test that holds whatever the order and the rule."""


def binds_in_every_order(free: Sequence[int], shares: Sequence[int]) -> bool:
    """Whether every order of `shares` (MiB, one GPU each) binds on GPUs with `free` MiB under HAMi's
    binpack rule."""
    if never_stranded(free, shares):
        return True
    if len(shares) > BRUTE_FORCE:
        return False
    return all(_binpacks(free, order) for order in set(permutations(sorted(shares))))


def never_stranded(free: Sequence[int], shares: Sequence[int]) -> bool:
    """A share is stranded only once every GPU has less than it left, which takes the others to fill
    each GPU that held it past `free - share`: when the others are less than that in sum, no order
    and no choice of GPUs can strand it."""
    total = sum(shares)
    return all(total - s < sum(f - s + 1 for f in free if f >= s) for s in shares)


def _binpacks(free: Sequence[int], order: Sequence[int]) -> bool:
    left = list(free)
    for share in order:
        fits = [i for i, f in enumerate(left) if f >= share]
        if not fits:
            return False
        tightest = min(fits, key=lambda i: (left[i], i))
        left[tightest] -= share
    return True
