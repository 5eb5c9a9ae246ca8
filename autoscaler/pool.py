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
demand is broken down by client, and whatever the sampling interval). It reads the history in blocks of
one lead time (`lead_s`, a node's provisioning time): each block's mean, and its peak of levels that
lasted `SUSTAIN_S` (a one-minute spike is over before a node could serve it). "A rise" is the next
block's peak over a block's mean, what arrived within about one lead time, so a sudden change is judged
the same way at 1-minute and 10-minute sampling and minute-to-minute noise is not a switch-on. It holds
as spare capacity above the need now the largest of
- the fitted `quantile` of the next rise among the `neighbours` past blocks (at most `NEIGHBOUR_SHARE` of the
  history's), and every block tied with the last of them, whose activity (largest change between blocks
  over the previous `activity_s`, in whole nodes) was closest to now's: big switch-ons cluster;
- the largest rise in the last `recent_s` that was a switch-on (its block's mean rose beyond
  `jump_threshold` x the median rise, and at least one GPU: a level that lasted a lead time), so a calm
  spell after a switch-on does not empty the pool at once;
- the capacity freed by sudden drops in the last `hold_s`, for the on/off client to come back;
- what it learnt from the waits it caused: the largest rise of the last `learn_s` that the spare it held
  just before (the terms above, recomputed from the history up to then) would not have covered, so that
  a switch-on larger than the activity model expects is held from the first time it came; while the
  client behind the largest of them is still on (the need stands nearly that rise above its low of the
  last `still_up_s`, and no rise that large ever came while it stood so), the largest one below 0.75x it
  (`UP_TOLERANCE`: a rise within a quarter of it may be the same client's), since a client that is on cannot
  switch on again;
- the `allowance_gpus` floor;
less the free GPUs on busy nodes, which absorb a rise first. Each is an estimate of the same thing (what
may arrive before a node ordered now is ready), so they are not added up. In the quiet hours of the day
it holds at most `quiet_nodes` idle nodes, or what the background's own rise needs if that is more (a rise
below the switch-on threshold: the cap forgoes switch-ons, not the drift past a full node): hours where
the history (at least `QUIET_EVIDENCE_S` of it) holds no switch-on larger than those nodes within
`QUIET_WINDOW_S` of this time of day, so one such switch-on ends the cap in its hours until it leaves the
history. It is a function of the history alone (cached), and reads no forecast: the seasonal forecast
costs a fit per sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from autoscaler.forecast import DAY_S, DemandSeries, Forecast


@dataclass(frozen=True)
class PoolSettings:
    """The warm-pool policy's parameters for one GPU class."""

    gpus_per_node: int
    """GPUs on one node of the class."""
    static_nodes: int = 0
    """The `static` policy's pool size, in nodes."""
    allowance_gpus: float = 0.0
    """EGS: spare GPUs always held, whatever the history says."""
    lead_s: float = 600.0
    """EGS: a node's provisioning time (seconds): rises are measured over blocks this long."""
    quantile: float = 0.99
    """EGS: quantile of the next rise at similar activity to cover (fitted on training days; 0 turns it off)."""
    activity_s: float = 3 * 3_600.0
    """EGS: activity is the largest change between lead-time blocks over this many seconds before a moment (in
    whole nodes)."""
    neighbours: int = 150
    """EGS: how many past moments of the closest activity the rise quantile is taken over (with every one as
    close as the last of them), at most `NEIGHBOUR_SHARE` of the history's lead-time blocks."""
    recent_s: float = 6 * 3_600.0
    """EGS: a sudden rise (a switch-on) is held as spare this long (seconds): switch-ons cluster."""
    hold_s: float = 2 * 3_600.0
    """EGS: capacity freed by a sudden drop is held this long (seconds), for the client to come back."""
    jump_threshold: float = 3.0
    """EGS: a rise (or drop) over one lead time beyond this many median rises is sudden (a client switching)."""
    learn_s: float = 0.0
    """EGS: the largest rise of the last this many seconds that the spare held before it would have missed
    is held (0 turns it off)."""
    history_s: float = 7 * 86_400.0
    """EGS: how much history the policy reads (seconds)."""
    still_up_s: float = 0.0
    """EGS: while the need stands above its low of the last this many seconds by nearly the largest missed rise
    (and no rise that large came in the history while it stood so), the client behind that rise is on and
    cannot switch on again: the largest missed rise below 0.75x it (`UP_TOLERANCE`) is held instead
    (`_still_up`; 0 turns it off)."""
    quiet_nodes: int | None = None
    """EGS: at most this many idle nodes in the quiet hours of the day, those where no switch-on larger than
    them came near this time of day over the history (`QUIET_WINDOW_S`), or what the background's own rise
    needs if that is more; None for no cap."""
    max_idle_nodes: int | None = None
    """Never hold more idle nodes than this (a budget cap); None for no cap."""

    def __post_init__(self) -> None:
        if self.gpus_per_node < 1:
            raise ValueError(f"PoolSettings.gpus_per_node must be >= 1, got {self.gpus_per_node}")
        if min(self.static_nodes, self.allowance_gpus, self.hold_s, self.recent_s) < 0:
            raise ValueError("PoolSettings: static_nodes, allowance_gpus, hold_s and recent_s must be >= 0")
        if not 0 <= self.quantile <= 1:
            raise ValueError(f"PoolSettings.quantile must be in [0, 1], got {self.quantile}")
        if self.neighbours < 1 or self.activity_s <= 0:
            raise ValueError("PoolSettings: neighbours >= 1 and activity_s > 0")
        if self.lead_s <= 0 or self.history_s <= 0 or self.jump_threshold < 0 or self.still_up_s < 0:
            raise ValueError("PoolSettings: lead_s and history_s > 0, jump_threshold and still_up_s >= 0")
        if self.max_idle_nodes is not None and self.max_idle_nodes < 0:
            raise ValueError(f"PoolSettings.max_idle_nodes must be >= 0, got {self.max_idle_nodes}")
        if self.quiet_nodes is not None and self.quiet_nodes < 0:
            raise ValueError(f"PoolSettings.quiet_nodes must be >= 0, got {self.quiet_nodes}")


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
        return len(self.need_gpus.values) == 0 or math.isnan(self.need_gpus.values[-1])


SUSTAIN_S = 180.0
"""EGS sees a level only once it has lasted this long: replicas for a one- or two-minute spike are cancelled
before any wait over 60 s (at 10-minute sampling, every sample has)."""

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
    """The largest of the rises expected at similar activity, the recent switch-ons, the freed capacity and
    the rises it would have missed lately (module docstring)."""
    past = obs.need_gpus.until(now).values
    size = max(1, round(settings.lead_s / obs.need_gpus.step_s))
    span = max(1, math.ceil(SUSTAIN_S / obs.need_gpus.step_s - 1e-9))  # samples a level must last
    window = _history(past, size, settings)
    spare_settings = _spare_settings(settings)  # all the spare reads: its caches shared across quiet caps
    spare = max(_held(window, past, size, span, spare_settings), _missed_rise(past, size, span, spare_settings))
    nodes = _nodes_for(spare, obs, settings)
    quiet = settings.quiet_nodes
    if quiet is not None and nodes > quiet:
        covered = float(quiet * settings.gpus_per_node)
        background = _quiet_background(window, size, span, settings.lead_s, settings.jump_threshold, covered)
        if background is not None:
            return max(quiet, _nodes_for(min(spare, background), obs, settings))
    return nodes


QUIET_WINDOW_S = 2 * 3_600.0
"""EGS: now is a quiet hour for a cap when no switch-on larger than the cap came within this long of its time
of day over the history: a week's switch-ons of one time of day fall in a window of 4 h."""
QUIET_EVIDENCE_S = 3 * DAY_S
"""EGS: no hour is quiet before the history is this long (the fit's warm-up days): "none came at this time of
day" is a claim about several days, and a controller started an hour ago has seen none of most hours."""


@lru_cache(maxsize=64)
def _quiet_background(
    samples: _Samples, size: int, span: int, lead_s: float, jump_threshold: float, covered_gpus: float
) -> float | None:
    """In the quiet hours of the day for a cap of `covered_gpus`, the switch-on threshold (the background's
    largest rise: the cap still holds that where the busy nodes cannot absorb it); None outside them. Judged
    on the whole lead-time blocks of `samples` (`_history`), the latest ending now; the switch-ons are
    `_block_spare`'s.

    Not "fewer switch-ons than on average near this time of day": a week of them (most of them small) left
    half the day below average by chance, and a cap fitted to add no wait on the training days then held
    too little in hours where the scored days' switch-ons came (generator seeds 200-239: p99 > 60 s on 9 of
    40, 6 with this test). A switch-on the cap would not have covered is the evidence that matters; one
    seen near this time of day ends the claim that these hours are quiet."""
    blocked = _lead_blocks(samples, size, span)
    if blocked is None or lead_s * len(blocked[0]) < QUIET_EVIDENCE_S:
        return None
    mean, peak = blocked
    rise = peak[1:] - mean[:-1]
    step_up = mean[1:] - mean[:-1]
    sudden = _sudden(np.abs(step_up), rise, peak is mean, jump_threshold)
    on = step_up >= sudden
    apart = lead_s * np.flatnonzero((on & (rise > covered_gpus))[::-1]) % DAY_S  # their ages, as times of day
    if np.any(np.minimum(apart, DAY_S - apart) <= QUIET_WINDOW_S):
        return None
    return sudden


def _history(past: np.ndarray, size: int, settings: PoolSettings) -> _Samples:
    """The whole lead-time blocks of `past` that the spare and the quiet hours are judged on, as the key of
    their caches (built once a decide step: at 1-minute sampling a week of samples is 80 kB)."""
    whole = len(past) // size * size  # blocks end at whole multiples of the lead time from the start
    keep = min(whole, _history_samples(size, settings))
    return _Samples(past[whole - keep : whole])


def _held(window: _Samples, past: np.ndarray, size: int, span: int, settings: PoolSettings) -> float:
    """The spare GPUs held after `past` (its `_history` is `window`) from everything but the missed rises."""
    blocks = _block_spare(window, size, span, settings)
    if blocks is None:
        return settings.allowance_gpus
    rise, floor, freed, freed_from = blocks
    latest = [v for v in past[-span:].tolist() if not math.isnan(v)]
    need = min(latest) if latest else freed_from
    return max(settings.allowance_gpus, rise, floor, min(freed, freed_from - need))


def _history_samples(size: int, settings: PoolSettings) -> int:
    """Samples of history the spare is worked out from: `history_s` in whole lead-time blocks, and the
    block it ends in."""
    return (math.floor(settings.history_s / settings.lead_s + 1e-9) + 1) * size


def _missed_rise(past: np.ndarray, size: int, span: int, settings: PoolSettings) -> float:
    """The largest rise of the last `learn_s` that the spare held before it (`_held` on the history up to
    then, rounded up to whole nodes) would not have covered: a wait the pool caused, as far as the need
    series tells; 0 if none. A rise is left to the busy nodes where their free GPUs then (the need packed onto
    whole nodes) took it; one within a node that they did not take is learnt too (one waited for it). While
    the client behind it is still on (`_still_up`), the largest missed rise below (1 - `UP_TOLERANCE`) x it:
    one within the tolerance may be the same client's."""
    whole = len(past) // size * size
    blocks = min(whole // size - 1, math.ceil(settings.learn_s / settings.lead_s - 1e-9))
    if settings.learn_s <= 0 or blocks < 1:
        return 0.0
    keep = _history_samples(size, settings)
    samples = _Samples(past[max(0, whole - blocks * size - keep) : whole])
    largest = _missed_in(samples, blocks, size, span, settings, math.inf)
    if largest <= 0 or not _still_up(past, size, span, settings, largest):
        return largest
    return _missed_in(samples, blocks, size, span, settings, (1 - UP_TOLERANCE) * largest)


UP_TOLERANCE = 0.25
"""EGS: a client's level is its rise within this share (noise, and the background's drift while it is on)."""
UP_SETTLED_S = 1_800.0
"""EGS: a client counts as on once its level has lasted this long: a burst wakes others within half an hour,
and a level still climbing (BurstGPT's ramps) is not one client that is on."""


def _still_up(past: np.ndarray, size: int, span: int, settings: PoolSettings, rise: float) -> bool:
    """Whether the switch-on that rose by `rise` is still on: the need over the last `UP_SETTLED_S` stands at
    least (1 - `UP_TOLERANCE`) x `rise` above the least block mean of the last `still_up_s` (the background,
    the clients off), and no rise that large in the history came while the need already stood that far above
    its low (two clients of that size were never seen on at once: the need series cannot tell two equal
    clients apart).

    On the generator's tuning seeds 140-154 the largest client is on 2-30% of the time, and the need's excess
    over its 3 h low tells it with 83-100% precision; "the history never stood twice that far above its low"
    as the second test fired less than half as often (a week's highest excess sums several smaller clients)."""
    if settings.still_up_s <= 0:
        return False
    settled = max(span, math.ceil(UP_SETTLED_S * size / settings.lead_s - 1e-9))
    latest = [v for v in past[-settled:].tolist() if not math.isnan(v)]
    window = _history(past, size, settings)
    blocked = _lead_blocks(window, size, span)
    if not latest or blocked is None:
        return False
    blocks = max(1, round(settings.still_up_s / settings.lead_s))
    level = (1 - UP_TOLERANCE) * rise
    if min(latest) - float(blocked[0][-blocks:].min()) < level:
        return False
    return not _seen_on_twice(window, size, span, blocks, level)


@lru_cache(maxsize=64)
def _seen_on_twice(samples: _Samples, size: int, span: int, blocks: int, level: float) -> bool:
    """Whether a rise of at least `level` came after a whole lead-time block of `samples` whose mean stood
    `level` above the least block mean of its last `blocks` blocks (its own included)."""
    blocked = _lead_blocks(samples, size, span)
    if blocked is None:
        return False
    mean, peak = blocked
    width = min(blocks, len(mean))
    low = _window_extreme(np.minimum, np.concatenate([np.full(width - 1, mean[0]), mean]), width)
    return bool(np.any((peak[1:] - mean[:-1] >= level) & (mean[:-1] - low[:-1] >= level)))


@lru_cache(maxsize=64)
def _missed_in(samples: _Samples, blocks: int, size: int, span: int, settings: PoolSettings, below: float) -> float:
    """`_missed_rise` over the last `blocks` blocks of `samples` (and the history before them), once a block:
    the largest missed rise under `below`. The largest rises are tried first: the first one missed is the
    answer, and each try looks the spare held before it up (`_held`, cached since the simulation passed there)."""
    past = np.frombuffer(samples.data, dtype=np.float64)
    blocked = _lead_blocks(_Samples(past[len(past) - (blocks + 1) * size :]), size, span)
    if blocked is None:
        return 0.0
    mean, peak = blocked
    rise = peak[1:] - mean[:-1]
    gpn = settings.gpus_per_node
    room = gpn * np.ceil(mean[:-1] / gpn - 1e-9) - mean[:-1]  # the busy nodes' free GPUs then, packed
    above = np.flatnonzero((rise > room) & (rise < below))
    for j in above[np.argsort(-rise[above], kind="stable")].tolist():
        end = len(past) - (len(rise) - j) * size  # block j's end: "now" when the spare before the rise was set
        before = past[:end]
        held = _held(_history(before, size, settings), before, size, span, settings)
        if rise[j] > gpn * math.ceil(held / gpn - 1e-9):
            return float(rise[j])
    return 0.0


class _Samples:
    """A float64 series as a cache key, compared in full but hashed on every 251st byte and the last sample:
    hashing a week of minute samples (80 kB) at every decide step cost more than the steps' own work."""

    __slots__ = ("_hash", "data")

    def __init__(self, values: np.ndarray) -> None:
        self.data = values.tobytes()
        self._hash = hash((self.data[::251], self.data[-8:]))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Samples) and self.data == other.data


@lru_cache(maxsize=64)
def _spare_settings(settings: PoolSettings) -> PoolSettings:
    """`settings` without the quiet-hours cap, which the spare (`_held`, `_missed_rise`) does not read: the
    fit's runs of one rung at several caps, and the scored run after them, then share their caches."""
    return replace(settings, quiet_nodes=None)


@lru_cache(maxsize=2400)
def _block_spare(
    samples: _Samples, size: int, span: int, settings: PoolSettings
) -> tuple[float, float, float, float] | None:
    """(rise at similar activity, recent switch-on, freed capacity, the peak it fell from) after the whole
    lead-time blocks of `size` samples (the latest block ends "now"); None when no sample is known.

    A function of completed blocks alone, so that the decide steps within one block (ten at 1-minute
    sampling and 10-minute lead, or the ten 60 s steps of a 10-minute sample) compute it once; the cache
    holds a run's 10-minute blocks (a 15-day training window, and more), so that `_missed_rise` finds each
    past block's spare in it and the next run of the same settings (the fit's next cap, the scored run
    after the fit) need not work them out again (`forget` empties it).
    """
    blocked = _lead_blocks(samples, size, span)
    if blocked is None:
        return None
    mean, peak = blocked
    rise = peak[1:] - mean[:-1]  # what arrived within about one lead time after each block
    if rise.size == 0:
        return 0.0, 0.0, 0.0, 0.0
    lead_s = settings.lead_s
    step_up = mean[1:] - mean[:-1]  # a switch-on that lasted a whole lead time moves the blocks' mean
    change = np.abs(step_up)
    similar = _similar_activity_rise(rise, change, round(settings.activity_s / lead_s), settings)
    recent, hold = _younger(len(rise), lead_s, settings.recent_s), _younger(len(rise), lead_s, settings.hold_s)
    # The largest step up and down among the young blocks: below the threshold's least (1 GPU), nothing
    # young is sudden, and the median over the week need not be worked out.
    up = float(step_up[len(rise) - recent :].max()) if recent else -math.inf
    down = -float(step_up[len(rise) - hold :].min()) if hold else -math.inf
    if max(up, down) < 1.0:
        return similar, 0.0, 0.0, 0.0
    threshold = _sudden(change, rise, peak is mean, settings.jump_threshold)
    floor = freed = freed_from = 0.0
    if up >= threshold:
        switched_on = step_up[len(rise) - recent :] >= threshold
        floor = float(np.max(rise[len(rise) - recent :][switched_on]))
    if down >= threshold:
        drop = -step_up[len(rise) - hold :]  # fall from one block to the next
        freed = float(np.sum(drop[drop >= threshold]))
        freed_from = float(np.max(peak[len(peak) - hold :]))
    return similar, floor, freed, freed_from


def _sudden(change: np.ndarray, rise: np.ndarray, peak_is_mean: bool, jump_threshold: float) -> float:
    """The change between blocks beyond which it is sudden (a client switching): `jump_threshold` median
    rises, and at least one GPU. With one-sample blocks and no sustain, peak is mean: the rises' sizes are
    the changes."""
    return max(1.0, jump_threshold * _median(change if peak_is_mean else np.abs(rise)))


def _younger(blocks: int, lead_s: float, horizon_s: float) -> int:
    """How many of the latest `blocks` blocks ended less than `horizon_s` ago (block ages 0, lead_s, 2 x
    lead_s ... from now): the switch-ons and drops that count are in them alone."""
    young = min(blocks, math.ceil(horizon_s / lead_s) + 1)
    while young and lead_s * (young - 1) >= horizon_s:
        young -= 1
    return young


def _similar_activity_rise(rise: np.ndarray, change: np.ndarray, span: int, settings: PoolSettings) -> float:
    """The `quantile` of the next rise among the past blocks whose activity (largest change between blocks
    over the `activity_s` before them, in whole nodes) was closest to now's: the `neighbours` closest, and every
    block as close as the last of them. `rise[j]` follows block j, `change[j]` is the change from block j to j+1.

    Activity is counted in nodes, rounded up: changes within one node are one kind of weather to a pool that
    orders nodes. Counted in GPUs, hours of changes of 1 GPU and of 3 were strangers: on check_demand.py's
    check-flash-5 the 677 blocks of activity 1 were the 400 neighbours, the crowds (rises of 30-70 GPUs) had
    come after activity 2-4, and the top rung held 1 node in calm while they waited. So ties are the rule: in
    a calm week most blocks share one value (750 of 990 on the flash crowds, even in GPUs). Keeping only the
    latest `neighbours` of equals made the model a memory of the last 3 days in calm weather, and a flash crowd
    4 days old was forgotten by the top rung (check-flash-8: 24% of replicas over 60 s where `static:auto` let
    1.9%); equally close blocks are equal evidence, and all of them are read, on every machine alike."""
    if settings.quantile <= 0:
        return 0.0
    span = max(1, span)
    if change.size <= span:
        return float(np.max(rise))
    node = settings.gpus_per_node
    before = np.ceil(_window_extreme(np.maximum, change[:-1], span) / node - 1e-9)  # activity up to block j
    after = rise[span:]  # the rise after each of those blocks, j = span .. n-2
    now = math.ceil(float(change[-span:].max()) / node - 1e-9)
    distance = np.abs(np.log1p(before) - np.log1p(now))
    k = min(len(distance), _neighbour_blocks(settings))
    nearest = after[distance <= np.partition(distance, k - 1)[k - 1]]  # the k closest, and all tied with them
    at = math.ceil((len(nearest) - 1) * settings.quantile)  # np.quantile's "higher", without its overhead
    # The highest is the largest; otherwise sorting the ties is cheaper than numpy's selection.
    return float(nearest.max() if at == len(nearest) - 1 else np.sort(nearest)[at])


NEIGHBOUR_SHARE = 0.4
"""The most of the history's lead-time blocks the rise quantile reads: the top rung's 400 of a week's 1008
10-minute blocks, the lead the fitted ladder was built at (`autoscaler.fitting.LEVELS`)."""


def _neighbour_blocks(settings: PoolSettings) -> int:
    """`neighbours`, but never more than `NEIGHBOUR_SHARE` of the blocks a full history holds (`history_s`; with
    less history on hand, as many as there are, as at any lead). At a 20-minute lead (5-20
    minute orders) a week has 504 blocks: 400 of them read the week's largest rise, the static cap nearly
    always (ServeGen m-large at 0.991x `static:auto`, where 201 of them cost 0.748x with no wait). The
    150-neighbour rungs keep their counts: halved, their quantiles 0.99 to 1 were one rung (75 blocks), which
    met the rule on generator demand where it held too little (synthetic-2, p99 600 s)."""
    return max(1, min(settings.neighbours, math.floor(NEIGHBOUR_SHARE * settings.history_s / settings.lead_s)))


def _median(values: np.ndarray) -> float:
    """np.median of values with no NaN, exactly (the mean of the two middle ones), at half its cost: the
    rises are mostly ties, which numpy's selection handles slower than a sort."""
    ordered, half = np.sort(values), len(values) // 2
    return float(ordered[half] if len(values) % 2 else (ordered[half - 1] + ordered[half]) / 2)


@lru_cache(maxsize=8)
def _lead_blocks(samples: _Samples, size: int, span: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean, lasting peak) of each block of `size` samples; None when no sample is known. Gaps carry the
    value before them (blocks before the first known sample are dropped). A lasting value is the least of
    the last `span` samples (`SUSTAIN_S`): a one-minute spike is over before a node could serve it.
    Cached: `_held` and `_missed_in` read the same week when `learn_s` is `history_s`."""
    values = np.frombuffer(samples.data, dtype=np.float64)
    known = ~np.isnan(values)
    if not known.any():
        return None
    first_known = int(known.argmax())
    first = first_known // size * size
    if not known[first:].all():
        idx = np.where(known[first:], np.arange(len(values) - first), 0)
        values = values[first:][np.maximum.accumulate(idx)]
        values[: first_known - first] = values[first_known - first]  # before the first known sample
    else:
        values = values[first:]
    lasting = values
    if 1 < span <= len(values):
        lasting = np.concatenate([values[: span - 1], _window_extreme(np.minimum, values, span)])
    if size == 1:  # a block of one sample: its mean and peak are the sample (exactly what reshaping gives)
        return values, lasting
    return values.reshape(-1, size).mean(axis=1), lasting.reshape(-1, size).max(axis=1)


def _window_extreme(pick: np.ufunc, values: np.ndarray, span: int) -> np.ndarray:
    """out[i] = pick over values[i : i + span] (np.minimum or np.maximum), exactly, in whole-array passes:
    windows of 2, 4, 8 ... samples from the previous size, then two overlapping ones of the largest power
    of two cover `span` (reducing a sliding window view took 70x as long: numpy reduces each window apart)."""
    out, width = values, 1
    while 2 * width <= span:
        out = pick(out[:-width], out[width:])
        width *= 2
    extreme: np.ndarray = pick(out[: len(values) - span + 1], out[span - width : len(out)])
    return extreme


def forget() -> None:
    """Empty the EGS policy's caches, as a fresh process starts: a benchmark times a cold simulation."""
    for cache in (_block_spare, _spare_settings, _lead_blocks, _missed_in, _quiet_background, _seen_on_twice):
        cache.cache_clear()


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


def _nodes_for(spare_gpus: float, obs: PoolObservation, settings: PoolSettings) -> int:
    """Idle nodes to hold so that `spare_gpus` above the need fit, free GPUs on busy nodes counted."""
    short = spare_gpus - obs.free_gpus_on_busy_nodes
    return max(0, math.ceil(short / settings.gpus_per_node - 1e-9))
