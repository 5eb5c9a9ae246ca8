"""How early a burst's 202s are Ready against the ETA rule's own median, where nothing but the burst happens.

`python benchmarks/eta_burst.py [--trials 4000] [--seed 1] [--step 20]`: N one-GPU replicas of a class
with G GPUs a node, POSTed at once and answered one after the other, each behind the replicas answered
before it (`autoscaler.eta.queue_etas` at quantile 0.5, nothing in flight, the prior 300-600 s); then,
as the churn benchmark plays the node autoscaler and kube-scheduler, one order per G replicas placed
a step later, delays drawn from that prior, and the replicas bound first in, first out on the nodes in
the order they are Ready. The rule's model and the play's are the same here, so what is left is the one
thing an answer cannot know: the orders the burst's later POSTs place, which serve its earlier replicas
first. `early_s` is the median less the Ready time, per POST, averaged over the trials (the median rounds
up to the step grid: a single order's is 10 s late at a 20 s step; and the median of an order statistic
is above its mean). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autoscaler.eta import ClassCapacity, EtaSettings, queue_etas

BURSTS = ((1, 1), (4, 1), (8, 8), (12, 8), (20, 8), (40, 8))
"""(replicas, GPUs a node): the churn fleet's one-GPU classes, and its 8-GPU MI300X and L40S nodes."""


def early_by_post(replicas: int, per_node: int, trials: int, step_s: float, rng: random.Random) -> list[float]:
    """Per POST of the burst, in answer order: its median less its Ready time, seconds, averaged."""
    settings = EtaSettings(prior_delay_s=(300.0, 600.0), quantile=0.5, step_s=step_s)
    low, high = settings.prior_delay_s
    # As `class_etas` answers: new orders count from the next step, the replicas answered before are ahead.
    medians = [
        queue_etas(step_s, [1.0] * k, ClassCapacity(per_node), 0.0, (), settings)[-1] for k in range(1, replicas + 1)
    ]
    early = [0.0] * replicas
    for _ in range(trials):
        ready = sorted(step_s + rng.uniform(low, high) for _ in range(math.ceil(replicas / per_node)))
        for k in range(replicas):
            early[k] += medians[k] - ready[k // per_node]
    return [e / trials for e in early]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=4000, help="bursts drawn per shape")
    parser.add_argument("--seed", type=int, default=1, help="seed of the delays drawn")
    parser.add_argument("--step", type=float, default=20.0, help="the ETA's step, seconds (churn's: 20)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = []
    for replicas, per_node in BURSTS:
        early = early_by_post(replicas, per_node, args.trials, args.step, rng)
        rows.append(
            {
                "replicas": replicas,
                "gpus_per_node": per_node,
                "first_post_early_s": round(early[0], 1),
                "last_post_early_s": round(early[-1], 1),
                "mean_early_s": round(statistics.mean(early), 1),
            }
        )
        print(f"{replicas:3d} replicas, {per_node} GPUs a node: {rows[-1]}", file=sys.stderr)
    print(json.dumps({"bursts": rows, "trials": args.trials, "step_s": args.step}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
