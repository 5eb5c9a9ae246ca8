"""The Deployment controller's rollout, as kube-controller-manager does it, for the plays that stand in for it
(churn's play, the demo's `ClusterPlay`): how many pods each of a Deployment's ReplicaSets has.

A Deployment's pods of its template as it is now are its new ReplicaSet's, those of a template before are old
ones'. `RollingUpdate` (the default: 25% surge, 25% unavailable) scales the new ReplicaSet up only while all
its pods together stay within `replicas + maxSurge`, and the old ones down only while `replicas -
maxUnavailable` pods stay available (Ready: EGS sets no `minReadySeconds`), their not-Ready pods first;
`Recreate` removes every old pod before it makes a new one. EGS writes `maxSurge: 0, maxUnavailable: 1`
(`scheduler.manifests`): a play that rolled every template as a surge tested a rollout EGS never asks for.

Not played: a Deployment's `replicas` changed in the middle of a rollout is scaled by the rolling rule alone
(kube-controller-manager shares it between the ReplicaSets in proportion to their sizes), and `paused`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_SHARE = "25%"
"""`maxSurge` and `maxUnavailable` where a Deployment names none (apps/v1's defaults)."""


@dataclass(frozen=True)
class ReplicaSet:
    """One template's pods of a Deployment, as the rollout counts them: how many, and how many are Ready."""

    pods: int
    ready: int


@dataclass(frozen=True)
class Strategy:
    """A Deployment's strategy, resolved against its replicas (kube's `ResolveFenceposts`)."""

    recreate: bool
    max_surge: int
    max_unavailable: int

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> Strategy:
        """The strategy of a Deployment's `spec`: a percentage's surge rounds up and its unavailable down, both 0
        is read as one unavailable (the API refuses it), and no more unavailable than the replicas."""
        strategy = spec.get("strategy") or {}
        if strategy.get("type") == "Recreate":
            return cls(True, 0, 0)
        rolling = strategy.get("rollingUpdate") or {}
        replicas = int(spec.get("replicas", 1))
        surge = _scaled(rolling.get("maxSurge", DEFAULT_SHARE), replicas, up=True)
        unavailable = _scaled(rolling.get("maxUnavailable", DEFAULT_SHARE), replicas, up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        return cls(False, surge, min(unavailable, replicas))


def _scaled(value: int | str, replicas: int, up: bool) -> int:
    """An int-or-percent of `replicas` (kube's `GetScaledValueFromIntOrPercent`)."""
    if isinstance(value, str) and value.endswith("%"):
        share = replicas * int(value[:-1]) / 100
        return math.ceil(share) if up else math.floor(share)
    return int(value)


def revision(template: Mapping[str, Any]) -> str:
    """A name for a pod template, as a ReplicaSet's `pod-template-hash` names it: the same template, the same
    ReplicaSet (a template rolled back to takes its ReplicaSet's pods back)."""
    return hashlib.sha1(json.dumps(template, sort_keys=True).encode()).hexdigest()[:6]


@dataclass(frozen=True)
class Running:
    """A pod of a Deployment as its ReplicaSet ranks it to scale down (kube-controller-manager's `ActivePods`
    order): not bound first, then not Ready, then the latest bound; and when it was made (the oldest ReplicaSet
    is scaled down first)."""

    name: str
    bound: bool
    ready: bool
    bound_at: float
    created: float


def pod_names(deployment: Mapping[str, Any], pods: Sequence[Running], held: Collection[str] = ()) -> list[str]:
    """The names of a Deployment's pods once rolled (`scaled`): those of `pods` (its pods now, named
    `<deployment>-<revision>-<i>`) that stay, and its template's new ones, which take the lowest free names, none
    of `held` (pods Terminating still hold theirs: a real ReplicaSet's random suffix never meets one)."""
    meta, spec = deployment["metadata"], deployment.get("spec") or {}
    by_revision: dict[str, list[Running]] = {}
    for pod in sorted(pods, key=lambda p: (p.created, p.name)):
        by_revision.setdefault(pod.name[len(meta["name"]) + 1 :].rsplit("-", 1)[0], []).append(pod)
    counts = scaled(spec, {r: ReplicaSet(len(ps), sum(p.ready for p in ps)) for r, ps in by_revision.items()})
    names = []
    for name, count in counts.items():
        have = sorted(by_revision.get(name, ()), key=lambda p: (not p.bound, not p.ready, p.bound_at, p.name))
        kept = [p.name for p in have[:count]]
        prefix = f"{meta['name']}-{name}-"
        free = (f"{prefix}{i}" for i in itertools.count() if f"{prefix}{i}" not in kept and f"{prefix}{i}" not in held)
        names += kept + list(itertools.islice(free, count - len(kept)))
    return names


def scaled(spec: Mapping[str, Any], revisions: Mapping[str, ReplicaSet]) -> dict[str, int]:
    """The pods each ReplicaSet of a Deployment (`spec`) has, by `revision`, now: `revisions` are those that have
    pods, oldest first; the template's own is the new one (there from the start, though it has no pods yet)."""
    current = revision(spec.get("template") or {})
    old = {name: rs for name, rs in revisions.items() if name != current}
    replicas = int(spec.get("replicas", 1))  # as the API server defaults it
    new, olds = rolled(replicas, Strategy.of(spec), revisions.get(current, ReplicaSet(0, 0)), list(old.values()))
    return {current: new, **dict(zip(old, olds, strict=True))}


def rolled(replicas: int, strategy: Strategy, new: ReplicaSet, old: Sequence[ReplicaSet]) -> tuple[int, list[int]]:
    """The pods of the new ReplicaSet and of each old one (oldest first) once the Deployment controller has done
    all its syncs allow with the pods Ready as they are: it scales the new one up (`reconcileNewReplicaSet`),
    then the old ones down (`reconcileOldReplicaSets`), and again, until neither moves. A ReplicaSet scaled down
    removes its not-Ready pods first, so its Ready pods go last."""
    new_pods, new_ready = new.pods, min(new.ready, new.pods)
    olds = [[r.pods, min(r.ready, r.pods)] for r in old]
    while True:
        before = (new_pods, [o[0] for o in olds])
        if strategy.recreate:
            if any(o[0] for o in olds):
                olds = [[0, 0] for _ in olds]
            else:
                new_pods = replicas
        else:
            new_pods = _new_scaled(replicas, strategy.max_surge, new_pods, sum(o[0] for o in olds))
            _old_scaled(replicas - strategy.max_unavailable, new_pods, new_ready, olds)
        new_ready = min(new_ready, new_pods)
        if (new_pods, [o[0] for o in olds]) == before:
            return new_pods, [o[0] for o in olds]


def _new_scaled(replicas: int, surge: int, new_pods: int, old_pods: int) -> int:
    """The new ReplicaSet's pods: down to `replicas`, or up as far as the surge allows (`NewRSNewReplicas`)."""
    if new_pods >= replicas:
        return replicas
    return new_pods + max(0, min(replicas + surge - new_pods - old_pods, replicas - new_pods))


def _old_scaled(min_available: int, new_pods: int, new_ready: int, olds: list[list[int]]) -> None:
    """The old ReplicaSets ([pods, Ready], oldest first) scaled down in place: their not-Ready pods as far as
    the new ReplicaSet's not-Ready ones leave room (`cleanupUnhealthyReplicas`), then Ready ones as long as
    `min_available` stay (`scaleDownOldReplicaSetsForRollingUpdate`)."""
    room = new_pods + sum(o[0] for o in olds) - min_available - (new_pods - new_ready)
    if not any(o[0] for o in olds) or room <= 0:
        return
    for o in olds:
        cleaned = min(room, o[0] - o[1])
        o[0], room = o[0] - cleaned, room - cleaned
    down = new_ready + sum(o[1] for o in olds) - min_available
    for o in olds:
        taken = max(0, min(o[0], down))
        o[0], o[1], down = o[0] - taken, min(o[1], o[0] - taken), down - taken
