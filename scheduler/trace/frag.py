"""GPU fragmentation of a node, as the FGD paper defines it, vectorised over nodes and candidates.

Sits between the cluster state and the FGD-style policies. For one pod type of the target workload,
the fragmented milli of a node is:

- CPU-only type: all idle GPU milli (it can use none of it);
- GPU model not allowed, too little CPU left, or too few GPUs with room for the per-GPU request
  (cases Q-I, Q-II, Q-IV, no access): all idle GPU milli;
- otherwise (Q-III, the type fits): the idle milli of the GPUs whose free milli is below the per-GPU
  request, since this type cannot use those.

A node's fragmentation is these amounts weighted by the types' shares. Memory plays no part.
The sum is taken in integers (amounts x pod counts) and divided once, so equal node states give
exactly equal values: FGD's score puts a bin edge at a decrease of exactly 0.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from scheduler.trace.workload import TargetWorkload


def fragmentation(
    cpu_free: NDArray[np.int64],
    gpu_free: NDArray[np.int64],
    model: NDArray[np.int64],
    target: TargetWorkload,
) -> NDArray[np.float64]:
    """Expected fragmented GPU milli of node states of any leading shape S.

    `cpu_free` and `model` have shape S, `gpu_free` shape S + (gpus,); the result has shape S.
    """
    types = target.types
    free = gpu_free[..., None]
    fits = free >= types.gpu_milli
    unusable = np.where(fits, 0, free).sum(axis=-2)
    idle = gpu_free.sum(axis=-1)
    usable = (
        types.access.T[model]
        & (cpu_free[..., None] >= types.cpu)
        & (fits.sum(axis=-2) >= types.num_gpu)
        & (types.gpu_milli > 0)
    )
    per_type = np.where(usable, unusable, idle[..., None])
    result: NDArray[np.float64] = (per_type @ target.count) / target.covered
    return result
