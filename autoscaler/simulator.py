"""The warm-pool simulator behind `egs simulate`: DESIGN.md's "Warm-pool simulation model", exactly.

Part of the autoscaler's pure core (plain data in, plain data out; the CLI and the benchmark load the
files and draw the plots). It drives the same `replica_target`, forecast, pool policy, `pool_actions`
and `queue_etas` code the controller runs, one 60 s step at a time, for one GPU class:

1. orders that finished become ready nodes (the oracle's orders first, see below);
2. R is applied per model: a rise queues replicas FIFO; a fall cancels waiting replicas first, then
   removes running replicas from the emptiest node;
3. waiting replicas take free GPUs, fullest node first;
4. nodes are ordered for replicas still waiting;
5. the policy sets how many idle nodes (empty ready nodes plus unearmarked orders) to hold, and
   `pool_actions` orders or releases to match; then each newly waiting replica is promised a time.

Where DESIGN.md is silent, these are the choices (an independent implementation compares costs):

- Demand: each trace sample (10 min) holds over its window; a sample whose rate is exactly 0 (so no
  client is active), or one the trace lacks, is a collection gap: the previous rate carries on for R,
  while the policies see the gap as missing data (and so release nothing). R = ceil(demand x (1 +
  headroom) / throughput) with no min/max bound; a multiple within 1e-9 does not round up.
- Start: at t = 0 the first window's replicas run on just enough ready nodes; nothing is ordered.
- Delays: each order draws its delay uniformly (continuous) from [min, max] s with numpy's PCG64
  seeded by `seed`, in the order orders are placed; an order placed at step t whose delay ends at
  t + d is ready at the first step boundary >= t + d. A cancelled order's draw is not reused.
- Billing: a node is billed for every whole step that begins with it ready (price x 60 s / 3600),
  from its ready step until the step it is released in (that step is not billed); orders cost nothing.
- Scale-down removes from the node with the fewest used GPUs that runs the model, newest node on a
  tie; placement takes the node with the most used GPUs that has room, oldest node on a tie; among
  waiting replicas the oldest go first, a later one that fits may pass one that does not. Cancelling
  waiting replicas takes the newest first; cancelling orders, the newest first, and releasing ready
  nodes, the newest empty node first.
- Earmarking: orders in flight serve the waiting replicas first (as many as `nodes_for_waiting`
  needs); the rest are "unearmarked" and count in the pool. No order is cancelled while a replica
  waits: its promise counted every order in flight, and whichever is ready first serves it.
- Waits: a replica's capacity wait runs from the step it is added to the step it gets a GPU (model
  load excluded), so one placed at once waits 0 and one placed a step later 60 s. Replicas cancelled
  while waiting, or still waiting at the end, have no wait; they do count in replica-minutes short
  (waiting replicas x 1 min per step). Statistics cover replicas added in the scored days;
  percentiles are numpy's (linear interpolation). Node-hours, idle GPU-hours (ready GPUs no replica
  uses) and cost cover the steps of the scored days.
- ETAs: a replica that has no GPU by the end of its first step is promised `queue_etas`'s time,
  with every order then in flight (earmarked or in the pool: whichever is ready first serves the
  queue's head) at the 0.95 quantile of its remaining delay given the delays observed so far
  (exact drawn delays, weighed with the ages of the orders cancelled or still in flight, which were
  longer: Kaplan-Meier; the scenario's [min, max] until 20 are seen), on the 60 s step grid, plus its load
  time. It is kept when the replica has its GPU and has loaded by then; slack is promised minus
  actual, averaged over every promised replica that got a GPU. That first promise is what the user
  was answered, and what `eta_kept_frac` and `eta_mean_slack_s` score. At each later step where
  something known changed, the whole queue is promised again (orders placed since, for later replicas
  or the pool; replicas ahead cancelled; GPUs freed); a promise that comes out earlier is revised to it, a
  later one never (a replica keeps the earlier word): `eta_revised` counts the revisions, and
  `eta_kept_last_frac` and `eta_mean_slack_last_s` score the last promise each replica had.
  `eta_quantile_slack_s` is the slack the promise's quantile alone leaves: the mean of the first promise
  minus the median the same `queue_etas` gives for it then (a slack above it is the delays' draw, or a
  defect in what the promise counted; one fresh 5-10 minute order under the prior range leaves 120 s:
  600 against 480 on the step grid). `eta_bound_slack_s` is what no rule could go below: each first promise's
  law (when its replica would serve, had every order in flight then, and every one placed for the queue,
  the scenario's own uniform delay conditioned on its age, as the delays are drawn: `eta.ready_laws`; an
  order placed later may serve sooner) and the least mean slack over those kept of any rule that keeps the
  promises' quantile (0.95) of them in expectation (`eta.least_mean_slack`, as the churn benchmark bounds
  the 202s).
- The oracle knows the trace and the drawn delays: it holds nothing idle and, for every rise of the
  nodes needed (ceil(sum of GPUs the models' R need / GPUs per node)), its order was placed one drawn
  delay earlier and becomes ready in step 1 of that very step. It is the cost floor of zero waits.
- Forecasts and the policies' demand history are in GPUs needed (sum over models of R x GPUs per
  replica) per trace sample; a forecast is recomputed when a new sample starts, with the lead time
  set to the promised delay of a fresh order.
- A pool policy answers from what it observes (its `now` only selects the samples started), so a step
  that observes what the step before did (the same sample, GPUs used, free GPUs on busy nodes, idle
  nodes and previous target) reuses its answer: most steps of a 10-minute sample change none of these.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from autoscaler.eta import (
    ClassCapacity,
    EtaSettings,
    law_points,
    least_mean_slack,
    queue_etas,
    ready_laws,
    remaining_delay,
)
from autoscaler.forecast import (
    DAY_S,
    DemandSeries,
    Forecast,
    ForecastSettings,
    forecast_seasonal,
    forecast_seasonal_naive,
)
from autoscaler.pool import (
    POLICIES,
    PoolObservation,
    PoolSettings,
    hold_on_missing_data,
    nodes_for_waiting,
    pool_actions,
)
from autoscaler.replicas import replica_target

STEP_S = 60.0
WAIT_LIMIT_S = 60.0
"""A replica that waits longer than this for capacity counts against the wait rule and targets."""

PolicyName = Literal["egs", "reactive", "static", "seasonal-naive", "oracle"]


@dataclass(frozen=True)
class GpuClass:
    """One GPU node class: what a node holds, costs, and takes to be ready."""

    name: str
    gpus_per_node: int
    price_per_node_hour: float
    provision_delay_s: tuple[float, float]
    """An order's delay is drawn uniformly from [min, max] seconds."""


@dataclass(frozen=True)
class ModelSpec:
    """How one model is served."""

    throughput_rps: float
    """Requests per second one replica serves."""
    gpus_per_replica: int
    load_s: float
    """Seconds from a replica having its GPUs to it serving (model load)."""


@dataclass(frozen=True)
class Scenario:
    """What is simulated besides the demand: the GPU class, headroom and the models."""

    gpu_class: GpuClass
    headroom: float
    models: Mapping[str, ModelSpec]


@dataclass(frozen=True)
class Trace:
    """Demand per model on one regular grid of samples; NaN where a sample is a collection gap."""

    step_s: float
    demand_rps: Mapping[str, npt.NDArray[np.float64]]

    @property
    def samples(self) -> int:
        return len(next(iter(self.demand_rps.values())))

    @property
    def days(self) -> float:
        return self.samples * self.step_s / DAY_S

    def first_days(self, days: float) -> Trace:
        """The trace cut after `days` days (what a policy fitted on them may see)."""
        keep = round(days * DAY_S / self.step_s)
        return Trace(self.step_s, {m: v[:keep] for m, v in self.demand_rps.items()})


def pool_settings(scenario: Scenario, static_nodes: int = 0) -> PoolSettings:
    """A pool's settings for the scenario's GPU class: its node size, and a lead time of its slowest order."""
    gc = scenario.gpu_class
    return PoolSettings(gc.gpus_per_node, static_nodes=static_nodes, lead_s=max(STEP_S, gc.provision_delay_s[1]))


@dataclass(frozen=True)
class Policy:
    """A warm-pool policy and its parameters, as the simulator runs it."""

    name: PolicyName
    pool: PoolSettings
    forecast: ForecastSettings = field(default_factory=ForecastSettings)
    eta: EtaSettings = field(default_factory=EtaSettings)


@dataclass(frozen=True)
class Window:
    """The days scored: [start_day, end_day)."""

    start_day: float
    end_day: float


@dataclass
class Timeline:
    """Per-step series for plots: time, demand and R per model, nodes, pool, waiting replicas."""

    time_s: npt.NDArray[np.float64]
    demand_rps: dict[str, npt.NDArray[np.float64]]
    replicas: dict[str, npt.NDArray[np.int64]]
    need_gpus: npt.NDArray[np.int64]
    """GPUs the models' R need, summed."""
    ready_nodes: npt.NDArray[np.int64]
    idle_nodes: npt.NDArray[np.int64]
    target_idle_nodes: npt.NDArray[np.int64]
    waiting: npt.NDArray[np.int64]
    busy_gpus: npt.NDArray[np.int64]
    """GPUs replicas hold (the rest of the ready nodes' GPUs are idle)."""
    forecast_time_s: list[float] = field(default_factory=list)
    forecast_upper_gpus: list[float] = field(default_factory=list)
    eta_made_s: list[float] = field(default_factory=list)
    """For each scored replica that was promised a time and got its GPU: when the promise was made,"""
    eta_promised_s: list[float] = field(default_factory=list)
    """the time first promised (ready and loaded),"""
    eta_last_s: list[float] = field(default_factory=list)
    """the last promise (revised earlier as orders were placed since),"""
    eta_actual_s: list[float] = field(default_factory=list)
    """and when it was ready and loaded."""


@dataclass(frozen=True)
class Result:
    """What `egs simulate --json` prints, over the scored days."""

    policy: str
    p50_wait_s: float
    p95_wait_s: float
    p99_wait_s: float
    max_wait_s: float
    frac_wait_gt_60s: float
    short_replica_minutes: float
    node_hours: float
    idle_gpu_hours: float
    cost_usd: float
    eta_promised: int
    eta_kept_frac: float
    eta_mean_slack_s: float
    replicas_added: int
    eta_revised: int = 0
    """Promises revised earlier while their replica waited."""
    eta_kept_last_frac: float = 1.0
    """Share of promises kept, each replica's last one."""
    eta_mean_slack_last_s: float = 0.0
    """Mean of last promise minus actual."""
    eta_quantile_slack_s: float = 0.0
    """Mean of first promise minus the model's median then: the slack the promise's quantile leaves."""
    eta_bound_slack_s: float = 0.0
    """The least mean slack of any rule that keeps the promises' quantile of them in expectation, knowing the
    true delay law and the queue at each first promise (`eta.least_mean_slack`): no promise rule goes below it."""
    static_k: int | None = None

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {k: v for k, v in self.__dict__.items() if k != "static_k"}
        if self.static_k is not None:
            out["static_k"] = self.static_k
        return out


@dataclass
class _Node:
    ready_step: int
    used: int = 0
    replicas: dict[str, int] = field(default_factory=dict)


@dataclass
class _Order:
    placed_s: float
    ready_s: float


@dataclass
class _Waiting:
    model: str
    added_step: int
    first_s: float | None = None
    """The time first promised (the answer); `promised_s` only moves earlier from it."""
    median_s: float = 0.0
    """When the same model expected it, at even odds, as `first_s` was promised."""
    law: tuple[float, ...] = ()
    """When it would serve then, had the orders the scenario's own delay law (`eta.ready_laws`, `law_points`)."""
    promised_s: float | None = None


def simulate(
    trace: Trace,
    scenario: Scenario,
    policy: Policy,
    score: Window,
    seed: int = 0,
    progress: Callable[[float], None] | None = None,
    timeline: bool = False,
) -> tuple[Result, Timeline | None]:
    """Run the model over the whole trace; score the steps and replicas of `score`'s days."""
    run = _Run(trace, scenario, policy, score, seed, progress, timeline)
    run.run()
    return run.result(), run.timeline


def simulate_unless_late(
    trace: Trace, scenario: Scenario, policy: Policy, score: Window, seed: int, fraction: float
) -> Result | None:
    """`simulate`'s result, or None as soon as its `frac_wait_gt_60s` is sure to exceed `fraction`.

    For fitting, where most candidates fail the wait rule, many within hours of the window's start.
    The replicas added in `score` are at most those the trace's rises queue there (a replica cancelled
    while it waits is not added), so once the replicas that waited over 60 s are more than `fraction`
    of those, the whole run's fraction is too; nothing else in the run depends on stopping early.
    """
    run = _Run(trace, scenario, policy, score, seed, None, False)
    queued = run.queued_in_score()
    if not run.run(lambda: queued > 0 and run.late / queued > fraction):
        return None
    return run.result()


class _Run:
    """One simulation's state; `run` steps it through the trace."""

    def __init__(
        self,
        trace: Trace,
        scenario: Scenario,
        policy: Policy,
        score: Window,
        seed: int,
        progress: Callable[[float], None] | None,
        keep_timeline: bool,
    ) -> None:
        missing = sorted(set(trace.demand_rps) - set(scenario.models))
        if missing:
            raise ValueError(f"trace models not in the scenario: {', '.join(missing)}")
        per = trace.step_s / STEP_S
        if per < 1 or abs(per - round(per)) > 1e-9:
            raise ValueError(f"the trace step ({trace.step_s} s) must be a whole number of {STEP_S:.0f} s steps")
        self.trace, self.scenario, self.policy, self.progress = trace, scenario, policy, progress
        self.gc = scenario.gpu_class
        # Promises start from the class's own delay range (as the controller's settings give it).
        self.eta = replace(policy.eta, prior_delay_s=self.gc.provision_delay_s)
        self.models = list(trace.demand_rps)
        self.per_sample = round(per)
        self.steps = trace.samples * self.per_sample
        self.score_steps = (round(score.start_day * DAY_S / STEP_S), round(score.end_day * DAY_S / STEP_S))
        self.rng = np.random.default_rng(seed)
        self.gpr = {m: scenario.models[m].gpus_per_replica for m in self.models}
        self.load = {m: scenario.models[m].load_s for m in self.models}
        self._targets(trace, scenario)
        self.nodes: list[_Node] = []
        self.used_gpus = 0
        self.empty_nodes = 0
        """GPUs replicas hold and nodes none runs on, kept as they change: every step reads them."""
        self.orders: list[_Order] = []
        self.queue: list[_Waiting] = []
        self.running = {m: 0 for m in self.models}
        self.observed: list[float] = []
        self.cancelled: list[float] = []
        """Ages at which orders were cancelled: their delays were longer (`eta._survival`)."""
        self.target = 0
        self.history = DemandSeries(0.0, trace.step_s, self.seen_need[:1])
        self.forecast: Forecast | None = None
        self.asked: tuple[int, ...] = ()
        self.answer = 0
        """The policy's last observation (sample, GPUs used, free on busy nodes, idle, previous target) and
        its answer: a step that observes the same reuses it (tests/test_simulator_shortcuts.py)."""
        self.waits: list[float] = []
        self.late = 0
        """Scored replicas that got their GPU after waiting over `WAIT_LIMIT_S`."""
        self.kept: list[bool] = []
        self.slack: list[float] = []
        self.kept_last: list[bool] = []
        self.slack_last: list[float] = []
        self.quantile_slack: list[float] = []
        self.laws: list[tuple[float, ...]] = []
        self.revised = 0
        self.known: tuple[float, ...] = ()
        """What the promises were last made from (`_promise`)."""
        self.short_minutes = 0.0
        self.node_steps = 0
        self.idle_gpu_steps = 0
        n = self.steps if keep_timeline else 0
        self.timeline: Timeline | None = (
            Timeline(
                time_s=np.arange(n, dtype=np.float64) * STEP_S,
                demand_rps={m: np.repeat(self.demand[m], self.per_sample) for m in self.models},
                replicas={m: np.repeat(self.r[m], self.per_sample) for m in self.models},
                need_gpus=np.repeat(self.need_gpus, self.per_sample),
                ready_nodes=np.zeros(n, dtype=np.int64),
                idle_nodes=np.zeros(n, dtype=np.int64),
                target_idle_nodes=np.zeros(n, dtype=np.int64),
                waiting=np.zeros(n, dtype=np.int64),
                busy_gpus=np.zeros(n, dtype=np.int64),
            )
            if keep_timeline
            else None
        )

    def _scored(self, step: int) -> bool:
        """Whether `step` is on the scored days."""
        return self.score_steps[0] <= step < self.score_steps[1]

    def _targets(self, trace: Trace, scenario: Scenario) -> None:
        """R per model and sample (gaps carry the previous rate), and the need series the policies see."""
        self.demand: dict[str, npt.NDArray[np.float64]] = {}
        self.r: dict[str, npt.NDArray[np.int64]] = {}
        gap = np.zeros(trace.samples, dtype=bool)
        for m in self.models:
            raw = np.asarray(trace.demand_rps[m], dtype=np.float64)
            missing = np.isnan(raw) | (raw == 0)
            gap |= missing
            carried = _carry(np.where(missing, np.nan, raw))
            self.demand[m] = carried
            spec = scenario.models[m]
            self.r[m] = np.array(
                [replica_target(d, spec.throughput_rps, scenario.headroom) for d in carried], dtype=np.int64
            )
        need = sum(self.r[m] * self.gpr[m] for m in self.models)
        self.need_gpus = np.asarray(need, dtype=np.int64)
        # A sample is missing for the policies when every model's is (one model's zero is its own gap).
        all_gap = np.ones(trace.samples, dtype=bool)
        for m in self.models:
            raw = np.asarray(trace.demand_rps[m], dtype=np.float64)
            all_gap &= np.isnan(raw) | (raw == 0)
        self.seen_need = np.where(all_gap, np.nan, self.need_gpus.astype(np.float64))
        self.need_nodes = -(-self.need_gpus // self.gc.gpus_per_node)

    # -- the step -------------------------------------------------------------------------------

    def run(self, stop: Callable[[], bool] = lambda: False) -> bool:
        """Step through the whole trace; False if `stop()` said so after some step (the run is then cut)."""
        self._start()
        report_every = max(1, self.steps // 200)
        for step in range(self.steps):
            self._step(step)
            if self.progress is not None and (step % report_every == 0 or step == self.steps - 1):
                self.progress((step + 1) / self.steps)
            if stop():
                return False
        return True

    def queued_in_score(self) -> int:
        """Replicas the trace's rises queue in the scored steps: R rises only at a sample's first step,
        and after each such step every model has exactly R replicas running or waiting."""
        rises = sum(np.maximum(np.diff(self.r[m]), 0) for m in self.models)
        steps = np.arange(1, self.trace.samples) * self.per_sample
        scored = (steps >= self.score_steps[0]) & (steps < self.score_steps[1])
        return int(np.sum(np.asarray(rises)[scored]))

    def _start(self) -> None:
        for m in self.models:
            for _ in range(int(self.r[m][0])):
                node = self._fullest_with_room(self.gpr[m])
                self._place(node or self._add_node(0), m)

    def _step(self, step: int) -> None:
        now = step * STEP_S
        sample = step // self.per_sample
        self._finish_orders(step, now, sample)
        if step % self.per_sample == 0:
            self._apply_targets(step, sample)
        self._place_waiting(step)
        self._order_for_waiting(now)
        self._pool(step, now, sample)
        self._promise(step, now)
        self._account(step)

    def _finish_orders(self, step: int, now: float, sample: int) -> None:
        if self.policy.name == "oracle" and step % self.per_sample == 0:
            # Ready exactly when the nodes needed rise; each was ordered one drawn delay before.
            for _ in range(int(self.need_nodes[sample]) - len(self.nodes)):
                self.observed.append(self._draw())
                self._add_node(step)
        done = [o for o in self.orders if o.ready_s <= now + 1e-9]
        if done:
            self.orders = [o for o in self.orders if o.ready_s > now + 1e-9]
            for o in done:
                self.observed.append(o.ready_s - o.placed_s)
                self._add_node(step)

    def _add_node(self, step: int) -> _Node:
        node = _Node(ready_step=step)
        self.nodes.append(node)
        self.empty_nodes += 1
        return node

    def _apply_targets(self, step: int, sample: int) -> None:
        for m in self.models:
            wanted = int(self.r[m][sample])
            waiting = sum(1 for w in self.queue if w.model == m)
            have = self.running[m] + waiting
            if wanted > have:
                self.queue.extend(_Waiting(m, step) for _ in range(wanted - have))
                continue
            drop = have - wanted
            for i in range(len(self.queue) - 1, -1, -1):
                if drop == 0:
                    break
                if self.queue[i].model == m:
                    del self.queue[i]
                    drop -= 1
            for _ in range(drop):
                self._remove(m)

    def _remove(self, model: str) -> None:
        best: _Node | None = None
        for node in self.nodes:
            if node.replicas.get(model, 0) > 0 and (best is None or node.used <= best.used):
                best = node
        assert best is not None, "a running replica is on some node"
        best.replicas[model] -= 1
        best.used -= self.gpr[model]
        self.used_gpus -= self.gpr[model]
        self.empty_nodes += best.used == 0
        self.running[model] -= 1

    def _place_waiting(self, step: int) -> None:
        if not self.queue:
            return
        left: list[_Waiting] = []
        for w in self.queue:
            node = self._fullest_with_room(self.gpr[w.model])
            if node is None:
                left.append(w)
                continue
            self._place(node, w.model)
            self._served(w, step)
        self.queue = left

    def _fullest_with_room(self, gpus: int) -> _Node | None:
        best: _Node | None = None
        for node in self.nodes:
            if self.gc.gpus_per_node - node.used >= gpus and (best is None or node.used > best.used):
                best = node
        return best

    def _place(self, node: _Node, model: str) -> None:
        self.empty_nodes -= node.used == 0
        node.used += self.gpr[model]
        self.used_gpus += self.gpr[model]
        node.replicas[model] = node.replicas.get(model, 0) + 1
        self.running[model] += 1

    def _served(self, w: _Waiting, step: int) -> None:
        if not self._scored(w.added_step):
            return
        wait = (step - w.added_step) * STEP_S
        self.waits.append(wait)
        self.late += wait > WAIT_LIMIT_S
        if w.first_s is not None and w.promised_s is not None:
            actual = step * STEP_S + self.load[w.model]
            self.kept.append(actual <= w.first_s + 1e-9)
            self.slack.append(w.first_s - actual)
            self.kept_last.append(actual <= w.promised_s + 1e-9)
            self.slack_last.append(w.promised_s - actual)
            self.quantile_slack.append(w.first_s - w.median_s)
            self.laws.append(w.law)
            if self.timeline is not None:
                self.timeline.eta_made_s.append(w.added_step * STEP_S)
                self.timeline.eta_promised_s.append(w.first_s)
                self.timeline.eta_last_s.append(w.promised_s)
                self.timeline.eta_actual_s.append(actual)

    def _earmarked(self) -> int:
        if not self.queue:
            return 0
        return min(len(self.orders), nodes_for_waiting([self.gpr[w.model] for w in self.queue], self.gc.gpus_per_node))

    def _order_for_waiting(self, now: float) -> None:
        if not self.queue:
            return
        short = nodes_for_waiting([self.gpr[w.model] for w in self.queue], self.gc.gpus_per_node) - len(self.orders)
        for _ in range(short):
            self._order(now)

    def _promise(self, step: int, now: float) -> None:
        """Promise the replicas added this step; revise the others' promises where they come out earlier.

        Promises are made again only when something known changed (an order placed, ready or cancelled,
        a replica served or cancelled, GPUs freed, a delay observed): with nothing new, time passing
        alone moves no promise earlier under the uniform delays drawn here, and recomputing every step
        would cost a reactive run, the CPU baseline, twice its time."""
        if not self.queue:
            return
        last = self.orders[-1].placed_s if self.orders else -1.0
        known: tuple[float, ...] = (len(self.orders), last, len(self.queue), id(self.queue[0]), self.used_gpus)
        known += (len(self.nodes), len(self.observed))
        if known == self.known and all(w.added_step != step for w in self.queue):
            return
        self.known = known
        capacity = ClassCapacity(
            self.gc.gpus_per_node,
            [self.gc.gpus_per_node - n.used for n in self.nodes],
            [o.placed_s for o in self.orders],
        )
        gpus, loads = [self.gpr[w.model] for w in self.queue], [self.load[w.model] for w in self.queue]
        etas = queue_etas(now, gpus, capacity, loads, self.observed, self.eta, self.cancelled)
        # The median only where a promise is scored: reactive runs, the CPU baseline, promise the most.
        scored = self._scored(step)
        new = [scored and w.promised_s is None and w.added_step == step for w in self.queue]
        if any(new):
            even = replace(self.eta, quantile=0.5)
            medians = queue_etas(now, gpus, capacity, loads, self.observed, even, self.cancelled)
            laws = ready_laws(now, gpus, capacity, loads, self.eta, STEP_S)  # the delays drawn are the prior's law
            for w, median, (start, served), is_new in zip(self.queue, medians, laws, new, strict=True):
                if is_new:
                    w.median_s, w.law = median, law_points(start, served, STEP_S)
        for w, eta in zip(self.queue, etas, strict=True):
            if w.promised_s is None:
                if w.added_step == step:
                    w.first_s = w.promised_s = eta
            elif eta < w.promised_s - 1e-9:
                w.promised_s = eta
                self.revised += int(self._scored(w.added_step))

    def _pool(self, step: int, now: float, sample: int) -> None:
        empty = self.empty_nodes
        unearmarked = len(self.orders) - self._earmarked()
        if self.policy.name == "oracle":
            target = 0
        else:
            if step % self.per_sample == 0:
                self.history = DemandSeries(0.0, self.trace.step_s, self.seen_need[: sample + 1])
                self.forecast = self._forecast(self.history, now)
            busy_free = self.gc.gpus_per_node * (len(self.nodes) - empty) - self.used_gpus
            asked = (sample, self.used_gpus, busy_free, empty + unearmarked, self.target)
            if asked != self.asked:  # most steps of a sample change nothing the policy reads
                obs = PoolObservation(self.history, self.used_gpus, busy_free, empty + unearmarked, self.forecast)
                self.asked = asked
                self.answer = hold_on_missing_data(POLICIES[self.policy.name], obs, now, self.policy.pool, self.target)
            target = self.answer
        self.target = target
        act = pool_actions(target, empty, unearmarked)
        if self.queue and act.cancel_orders:  # a promise rests on every order in flight: keep them
            act = replace(act, cancel_orders=0)
        for _ in range(act.order):
            self._order(now)
        if act.cancel_orders:
            self.orders.sort(key=lambda o: o.placed_s)
            self.cancelled += [now - o.placed_s for o in self.orders[len(self.orders) - act.cancel_orders :]]
            del self.orders[len(self.orders) - act.cancel_orders :]
        if act.release_nodes:
            released = 0
            for i in range(len(self.nodes) - 1, -1, -1):
                if released == act.release_nodes:
                    break
                if self.nodes[i].used == 0:
                    del self.nodes[i]
                    released += 1
            self.empty_nodes -= released
        if self.timeline is not None:
            self.timeline.target_idle_nodes[step] = target
            self.timeline.idle_nodes[step] = empty + unearmarked + act.order - act.cancel_orders - act.release_nodes

    def _forecast(self, history: DemandSeries, now: float) -> Forecast | None:
        # EGS's pool reads no forecast; it is drawn for the plots (a fit per sample: only when asked).
        if not (self.policy.name == "seasonal-naive" or (self.policy.name == "egs" and self.timeline is not None)):
            return None
        _, lead = remaining_delay(0.0, self.observed, self.eta)
        settings = replace(self.policy.forecast, lead_s=max(lead, 1.0))
        fc = (forecast_seasonal if self.policy.name == "egs" else forecast_seasonal_naive)(history, now, settings)
        if self.timeline is not None:
            self.timeline.forecast_time_s.append(now)
            self.timeline.forecast_upper_gpus.append(fc.upper_peak)
        return fc

    def _order(self, now: float) -> None:
        self.orders.append(_Order(now, now + self._draw()))

    def _draw(self) -> float:
        low, high = self.gc.provision_delay_s
        return float(self.rng.uniform(low, high))

    def _account(self, step: int) -> None:
        if self.timeline is not None:
            self.timeline.ready_nodes[step] = len(self.nodes)
            self.timeline.waiting[step] = len(self.queue)
            self.timeline.busy_gpus[step] = self.used_gpus
        if not self._scored(step):
            return
        self.node_steps += len(self.nodes)
        self.idle_gpu_steps += self.gc.gpus_per_node * len(self.nodes) - self.used_gpus
        self.short_minutes += len(self.queue) * STEP_S / 60.0

    def result(self) -> Result:
        waits = np.asarray(self.waits, dtype=np.float64)

        def pct(q: float) -> float:
            return float(np.percentile(waits, q)) if waits.size else 0.0

        node_hours = self.node_steps * STEP_S / 3600.0
        return Result(
            policy=self.policy.name if self.policy.name != "static" else f"static:{self.policy.pool.static_nodes}",
            p50_wait_s=pct(50),
            p95_wait_s=pct(95),
            p99_wait_s=pct(99),
            max_wait_s=float(waits.max()) if waits.size else 0.0,
            frac_wait_gt_60s=float(np.mean(waits > WAIT_LIMIT_S)) if waits.size else 0.0,
            short_replica_minutes=self.short_minutes,
            node_hours=node_hours,
            idle_gpu_hours=self.idle_gpu_steps * STEP_S / 3600.0,
            cost_usd=node_hours * self.gc.price_per_node_hour,
            eta_promised=len(self.kept),
            eta_kept_frac=float(np.mean(self.kept)) if self.kept else 1.0,
            eta_mean_slack_s=float(np.mean(self.slack)) if self.slack else 0.0,
            replicas_added=int(waits.size),
            eta_revised=self.revised,
            eta_kept_last_frac=float(np.mean(self.kept_last)) if self.kept_last else 1.0,
            eta_mean_slack_last_s=float(np.mean(self.slack_last)) if self.slack_last else 0.0,
            eta_quantile_slack_s=float(np.mean(self.quantile_slack)) if self.quantile_slack else 0.0,
            eta_bound_slack_s=least_mean_slack(self.laws, self.eta.quantile) if self.laws else 0.0,
            static_k=self.policy.pool.static_nodes if self.policy.name == "static" else None,
        )


def _carry(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Each gap takes the last known value before it; a leading gap takes 0."""
    idx = np.where(~np.isnan(x), np.arange(len(x)), 0)
    np.maximum.accumulate(idx, out=idx)
    out = np.where(np.isnan(x[idx]), 0.0, x[idx])
    return np.asarray(out, dtype=np.float64)


def min_zero_wait_node_hours(trace: Trace, scenario: Scenario, score: Window) -> float:
    """sum over scored steps of ceil(GPUs the models' R need / GPUs per node), in node-hours."""
    run = _Run(
        trace, scenario, Policy("reactive", PoolSettings(scenario.gpu_class.gpus_per_node)), score, 0, None, False
    )
    nodes = np.repeat(run.need_nodes, run.per_sample)[run.score_steps[0] : run.score_steps[1]]
    return float(nodes.sum()) * STEP_S / 3600.0
