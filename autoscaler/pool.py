"""Warm-pool policy: how many idle GPU nodes of one class to hold, and what to do to get there.

Part of the autoscaler's pure core. A node takes minutes to be ready, so replicas that arrive faster
than nodes do are served from a pool of idle nodes (empty ready nodes plus orders nobody is waiting
for). Each decide step the controller (or `egs simulate`) builds a `PoolObservation` per GPU class and
calls one of the policies in `POLICIES` for the target, then `pool_actions` for the orders and
releases that reach it. Rules every policy keeps:

- the target is never negative;
- on missing data (the latest demand sample is a gap) no capacity is released: the target is at least
  what is idle now and what was targeted before (`hold_on_missing_data` wraps each policy);
- a warm node that is taken is replaced at once: the target counts idle nodes, so taking one leaves
  the pool short and `pool_actions` orders the difference in the same step;
- going down, orders still provisioning are cancelled first (free), then empty ready nodes released.

The EGS policy (`egs_target`) reads only the GPUs needed per sample (so it works whether or not the
demand is broken down by client) and holds as spare capacity above the need now the largest of
- the capacity freed by sudden drops (changes beyond `jump_threshold` x the median change) in the
  last `hold_s`: on/off clients come back, so what one freed is held for it;
- the fitted `jump_quantile` of the next rise among the `neighbours` past moments whose activity
  (largest change over the previous `activity_s`) was closest to now's: big switch-ons cluster;
- the sudden rises seen so far, each decayed with `jump_halflife_s`;
- the rise the point forecast expects over the lead time, and the `allowance_gpus` floor;
less the free GPUs on busy nodes, which absorb a rise first. Every one of these is an estimate of the
same thing (how much may arrive before a node ordered now is ready), so they are not added up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from autoscaler.forecast import DemandSeries, Forecast


@dataclass(frozen=True)
class PoolSettings:
    """The warm-pool policy's parameters for one GPU class."""

    gpus_per_node: int
    """GPUs on one node of the class."""
    static_nodes: int = 0
    """The `static` policy's pool size, in nodes."""
    allowance_gpus: float = 0.0
    """EGS: spare GPUs always held, whatever the history says."""
    hold_s: float = 2 * 3_600.0
    """EGS: capacity freed by a sudden drop is held this long (seconds), for the client to come back."""
    jump_threshold: float = 3.0
    """EGS: a change of more than this many median changes is a client switching (sudden)."""
    jump_quantile: float = 0.99
    """EGS: quantile of the next rise at similar activity to cover (fitted on training days; 0 turns it off)."""
    activity_s: float = 3 * 3_600.0
    """EGS: activity is the largest change (either way) over this many seconds before a moment."""
    neighbours: int = 150
    """EGS: how many past moments of the closest activity the rise quantile is taken over."""
    jump_halflife_s: float = 18 * 3_600.0
    """EGS: a sudden rise keeps asking for its size in spare, halved every this many seconds (0: off)."""
    history_s: float = 7 * 86_400.0
    """EGS: how much history the policy reads (seconds)."""
    max_idle_nodes: int | None = None
    """Never hold more idle nodes than this (a budget cap); None for no cap."""

    def __post_init__(self) -> None:
        if self.gpus_per_node < 1:
            raise ValueError(f"PoolSettings.gpus_per_node must be >= 1, got {self.gpus_per_node}")
        if min(self.static_nodes, self.allowance_gpus, self.hold_s, self.jump_halflife_s) < 0:
            raise ValueError("PoolSettings: static_nodes, allowance_gpus, hold_s and jump_halflife_s must be >= 0")
        if not 0 <= self.jump_quantile <= 1:
            raise ValueError(f"PoolSettings.jump_quantile must be in [0, 1], got {self.jump_quantile}")
        if self.neighbours < 1 or self.activity_s <= 0 or self.history_s <= 0 or self.jump_threshold < 0:
            raise ValueError("PoolSettings: neighbours >= 1, activity_s and history_s > 0, jump_threshold >= 0")
        if self.max_idle_nodes is not None and self.max_idle_nodes < 0:
            raise ValueError(f"PoolSettings.max_idle_nodes must be >= 0, got {self.max_idle_nodes}")


@dataclass(frozen=True)
class PoolObservation:
    """What a pool policy knows about one GPU class at a decide step; plain numbers only."""

    need_gpus: DemandSeries
    """GPUs the class's replicas need per sample (sum over models of R x GPUs per replica); NaN = gap."""
    used_gpus: int
    """GPUs held by replicas now."""
    free_gpus_on_busy_nodes: int
    """Free GPUs on ready nodes that already run a replica: they absorb a rise before the pool does."""
    idle_nodes: int
    """Idle nodes now: empty ready nodes plus orders no waiting replica is earmarked for."""
    forecast: Forecast | None = None
    """The need forecast over the lead time, in GPUs (None: the policy has none)."""

    @property
    def data_missing(self) -> bool:
        """True when the latest sample is a gap (or there is none): nothing may be released."""
        return len(self.need_gpus.values) == 0 or bool(np.isnan(self.need_gpus.values[-1]))


PoolPolicy = Callable[[PoolObservation, float, PoolSettings], int]
"""(observation, now, settings) -> idle nodes to hold. `hold_on_missing_data` adds the previous target."""


def reactive_target(obs: PoolObservation, now: float, settings: PoolSettings) -> int:
    """No pool: a node is ordered only once a replica waits for it."""
    return 0


def static_target(obs: PoolObservation, now: float, settings: PoolSettings) -> int:
    """A constant pool of `static_nodes` idle nodes."""
    return settings.static_nodes


def seasonal_naive_target(obs: PoolObservation, now: float, settings: PoolSettings) -> int:
    """Last week's rise over the coming lead time (the forecast is a seasonal-naive one)."""
    if obs.forecast is None:
        return 0
    return _nodes_for(obs.forecast.expected_peak - _need_now(obs), obs, settings)


def egs_target(obs: PoolObservation, now: float, settings: PoolSettings) -> int:
    """The largest of held capacity from recent sudden drops and the rises to expect now (module docstring)."""
    need = _need_now(obs)
    step_s = obs.need_gpus.step_s
    known = _window(obs.need_gpus, now, settings.history_s)
    steps = np.diff(known)
    spare = settings.allowance_gpus
    if obs.forecast is not None:
        spare = max(spare, obs.forecast.expected_peak - need)
    if steps.size == 0:
        return _nodes_for(spare, obs, settings)
    threshold = max(1.0, settings.jump_threshold * float(np.median(np.abs(steps))))
    spare = max(spare, _similar_activity_rise(steps, step_s, settings))
    if settings.jump_halflife_s > 0:
        sudden = np.where(steps >= threshold, steps, 0.0)
        age_s = (len(steps) - 1 - np.arange(len(steps))) * step_s
        spare = max(spare, float(np.max(sudden * 0.5 ** (age_s / settings.jump_halflife_s))))
    recent = int(settings.hold_s // step_s)
    if recent > 0:
        last = steps[-recent:]
        dropped = float(-np.sum(last[last <= -threshold]))
        spare = max(spare, min(dropped, max(0.0, float(np.max(known[-recent - 1 :])) - need)))
    return _nodes_for(spare, obs, settings)


def _similar_activity_rise(steps: np.ndarray, step_s: float, settings: PoolSettings) -> float:
    """The `jump_quantile` of the next rise among the past moments whose activity was closest to now's."""
    if settings.jump_quantile <= 0:
        return 0.0
    span = max(1, int(settings.activity_s // step_s))
    if steps.size <= span:
        return float(np.max(np.maximum(steps, 0.0)))
    size = np.abs(steps)
    before = sliding_window_view(size[:-1], span).max(axis=1)  # activity just before steps[span:]
    rise = np.maximum(steps[span:], 0.0)
    distance = np.abs(np.log1p(before) - np.log1p(float(np.max(size[-span:]))))
    k = min(len(distance), settings.neighbours)
    nearest = np.argpartition(distance, k - 1)[:k]
    return float(np.quantile(rise[nearest], settings.jump_quantile, method="higher"))


POLICIES: dict[str, PoolPolicy] = {
    "reactive": reactive_target,
    "static": static_target,
    "seasonal-naive": seasonal_naive_target,
    "egs": egs_target,
}
"""The warm-pool policies by name (the simulator's `oracle` needs the future, so it lives there)."""


def hold_on_missing_data(
    policy: PoolPolicy, obs: PoolObservation, now: float, settings: PoolSettings, previous_target: int
) -> int:
    """The policy's target, capped by `max_idle_nodes`, never releasing anything while data is missing."""
    target = max(0, policy(obs, now, settings))
    if settings.max_idle_nodes is not None:
        target = min(target, settings.max_idle_nodes)
    if obs.data_missing:
        target = max(target, previous_target, obs.idle_nodes)
    return target


@dataclass(frozen=True)
class PoolActions:
    """What reaching a pool target takes: at most one of `order` or the two release counts is non-zero."""

    order: int = 0
    """New nodes to order."""
    cancel_orders: int = 0
    """Unearmarked orders still provisioning to cancel (free: nothing is billed before a node is ready)."""
    release_nodes: int = 0
    """Empty ready nodes to give back."""


def pool_actions(target: int, empty_ready_nodes: int, unearmarked_orders: int) -> PoolActions:
    """Order up to the target at once; going down, cancel orders first, then release empty ready nodes."""
    idle = empty_ready_nodes + unearmarked_orders
    if target >= idle:
        return PoolActions(order=target - idle)
    surplus = idle - target
    cancel = min(surplus, unearmarked_orders)
    return PoolActions(cancel_orders=cancel, release_nodes=surplus - cancel)


def nodes_for_waiting(waiting_gpus: list[int], gpus_per_node: int) -> int:
    """Empty nodes that the waiting replicas (GPUs each, in queue order) fill, packed first-fit."""
    free: list[int] = []
    for gpus in waiting_gpus:
        for i, room in enumerate(free):
            if room >= gpus:
                free[i] -= gpus
                break
        else:
            free.append(gpus_per_node - gpus)
    return len(free)


def _need_now(obs: PoolObservation) -> float:
    last = obs.need_gpus.last_known()
    return float(obs.used_gpus) if last is None else last


def _window(series: DemandSeries, now: float, span_s: float) -> np.ndarray:
    """The known samples that started within (now - span_s, now]."""
    past = series.until(now).values
    keep = math.floor(span_s / series.step_s + 1e-9) + 1
    recent = past[-keep:]
    return np.asarray(recent[~np.isnan(recent)], dtype=np.float64)


def _nodes_for(spare_gpus: float, obs: PoolObservation, settings: PoolSettings) -> int:
    """Idle nodes to hold so that `spare_gpus` above the need fit, free GPUs on busy nodes counted."""
    short = spare_gpus - obs.free_gpus_on_busy_nodes
    return max(0, math.ceil(short / settings.gpus_per_node - 1e-9))
