"""The controller loop: observe the cluster and Prometheus, decide (pure), act with server-side apply.

The one module that wires the adapters to the core; `egs controller` runs it. Each `reconcile()`:

0. **wake**: every `--interval`, or, while this replica leads, at once when a watch sees an
   InferenceEndpoint, a Node or an owned object change (`autoscaler.watches`); the periodic loop is
   the resync;
1. **lead**: a replica that does not hold the Lease (a standby) writes nothing; every interval it reads
   the Nodes and GPU pods (for the node orders in flight) and, of Prometheus, what it keeps: what a new
   leader needs warm (the orders, the demand history, the GPUs' indexes), and checks each Node and loads
   the scheduler's engine (`autoscaler.decide.warm`), so that a new leader's first loop reads and costs no
   more than any loop; a read that fails there is logged, not counted as an error.
   The Lease is renewed apart from the loop, by
   `autoscaler.leader.Elector` in a thread of its own; a loop whose replica stops leading mid-loop
   stops before its next write;
2. **observe**: Nodes, InferenceEndpoints, the objects EGS owns and the GPU pods (adapter), each model's signals
   (Prometheus adapter; unreachable = `None`, which the decide step holds on);
3. **decide**: `autoscaler.decide.decide(observation, settings, registry, catalog, now)`; where the
   decision writes a workload the cluster does not hold as it is (a replica placed anew), the endpoints
   are listed again first, and where one was created or its spec changed meanwhile (a 201 the API
   answered while the loop decided), the cluster is listed again and decided once more, at most once a
   loop: a decision made without that answer would give its GPUs away;
4. **act**: apply each intended object and status that differs from what the cluster holds, then delete what the
   decision no longer intends (`Decision.deletions`) (an intended object whose every field is already there, and that
   leaves out no field the controller applied before (`_drops`), is not written, so a second reconcile with nothing
   changed writes nothing); a 409 is retried by the adapter; a write that fails for a while (5xx, 429, no answer) is
   retried after the others, after 0.25, 1 and 2 s (`Settings.write_retry_delays_s`, or the 429's `Retry-After` if
   longer, up to the last of them), a round trying the rest only once its first passes; what still fails is counted
   and waits for the next loop, and a write the API server refuses (4xx) is counted at once: one object's failure
   never stops the others, but for a consolidation move's status, written first, whose failure holds back its
   endpoint's objects to the next loop (the status is the move's one record);
5. **record** the series of `autoscaler.metrics`, log the holds, and write Events
   (`autoscaler.events`) on each endpoint whose phase changed, that is held, or whose object could
   not be written.

Nothing is kept between loops that the cluster does not hold: the replicas to hold, the warm-pool sizes and the
promised ready times are all read back from the objects, so a restart loses nothing it needs, but for the
consolidation moves the leader began (`Observation.moves_begun`: their endpoints may be deleted, and their records
with them), which a new leader starts without. What else is kept in memory only makes a loop cheaper or a promise
better, kept by a standby as by the leader: the demand history (read whole, a week, on start and after a failed read,
and otherwise only from a little before the last read, `HISTORY_OVERLAP_S`, so that a loop costs Prometheus a few
samples a model instead of a week of them, a new leader's first loop included); the node orders in flight and the
provisioning delays learnt (`autoscaler.orders`: after a restart the promises start from the prior again); and the
GPU index map, kept per node through a failed read (and left on the Lease for KAI's nodes,
`autoscaler.pods.GPU_INDEXES_NOTE`: a replica that starts during an outage reads it there).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from autoscaler.adapters.kubernetes import (
    OWNED_KINDS,
    Cluster,
    ForbiddenError,
    KubernetesError,
    NotFoundError,
    TemporaryKubernetesError,
)
from autoscaler.cost import Holdings, holdings
from autoscaler.decide import (
    Decision,
    Observation,
    Settings,
    decide,
    endpoint_key,
    promise_of,
    promise_outcome,
    report,
    report_holds,
    status_of,
    warm,
)
from autoscaler.decide.consolidation import Blocked
from autoscaler.decide.decision import NoRoom
from autoscaler.decide.state import MOVES_NOTE, WORKLOAD_KINDS, Move, moves_note, read_moves_note
from autoscaler.decide.status import CONSOLIDATING
from autoscaler.decide.workloads import by_identity, owning_endpoint
from autoscaler.decide.workloads import identity as object_identity
from autoscaler.endpoint import API_VERSION, CRD_APPLY, CRD_NAME, KIND, stale_status_fields
from autoscaler.events import Event, ObjectRef, Recorder, event, ref
from autoscaler.fields import as_list
from autoscaler.kubetime import parse_time
from autoscaler.leader import Elector, LeaderSettings
from autoscaler.metrics import SERIES
from autoscaler.orders import OrderBook, track
from autoscaler.pods import GPU_INDEXES_NOTE, carried, merged_indexes, read_carried
from autoscaler.signals import BadSample, History, Snapshot, extended
from autoscaler.watches import NODE, Watches
from common.errors import SetupError, TemporaryError
from scheduler.catalog import Catalog
from scheduler.registry import Registry

log = logging.getLogger("egs.controller")

HISTORY_STEP_S = 300.0
"""The step of the demand history the warm-pool policies read (`Settings.history_s`, a week by default:
2,016 samples a model)."""
HISTORY_OVERLAP_S = 600.0
"""How far before its last read a loop reads the demand history again: a step's value moves until every
sample up to it is in Prometheus, a rule evaluation and a scrape later, or minutes later through remote
write (Thanos, Mimir); two steps cover both, and cost two samples a model more per loop."""


def owned_kinds(settings: Settings) -> tuple[tuple[str, str], ...]:
    """The kinds the controller writes with this configuration, which it lists back every loop."""
    kinds = [*OWNED_KINDS, ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"), ("keda.sh/v1alpha1", "ScaledObject")]
    pools = {c.pool for c in settings.classes.values()}
    if "balloon" in pools:
        kinds.append(("scheduling.k8s.io/v1", "PriorityClass"))
    if "capacitybuffer" in pools:
        kinds += [("v1", "PodTemplate"), ("autoscaling.x-k8s.io/v1alpha1", "CapacityBuffer")]
    if "karpenter-static" in pools:
        kinds.append(("karpenter.sh/v1", "NodePool"))
    return tuple(kinds)


ERROR_REASONS = ("temporary", "rejected", "lease_lost", "internal")
"""The `reason` of egs_autoscaler_reconcile_errors_total: a temporary failure (the loop goes on), a write
the API server refused, the Lease lost mid-loop, a fault of the loop itself (logged with its trace)."""
COALESCE_S = 0.1
"""After a watch wakes the loop, how long it waits for the rest of a burst of changes."""
LOOPS_TIMED = 10
"""The recent loops whose longest time, added to the interval, gives `Observation.loop_period_s`: about
3-4 minutes at a 20 s interval, so a slow spell (a loaded node, a large burst) counts while it lasts."""
RESULTS = ("success", "error", "lease_lost", "follower")
"""The `result` of egs_autoscaler_reconcile_total: a loop that decided and wrote without an error, one
with at least one error, one that stopped because its replica stopped leading, one of a replica that
does not lead (it does nothing)."""


class Signals(Protocol):
    """Where per-model metrics come from (the Prometheus adapter, or a test's stand-in)."""

    def snapshot(self, at: float, history_s: float, step_s: float, live: bool = True) -> Snapshot:
        """Everything one loop reads, evaluated at `at`; raises a TemporaryError when it cannot. Not `live`
        (a standby's read): the demand history and the GPU indexes only, the signals of now left empty."""
        ...


@dataclass(frozen=True)
class KeptHistory:
    """The demand history as read at `read_at` (the loop's time), for the next loop to extend."""

    read_at: float
    history: Mapping[str, History]


Write = tuple[str, ObjectRef, Callable[[], Any], tuple[Event, ...]]
"""One write of a loop: what it is (for the log), whom an Event about it is on, the call, and the Events to
record once it is made (a phase change, a consolidation move the status records)."""
Failed = tuple[Write, TemporaryKubernetesError]
"""A write that failed for a while, and how."""


class LostLease(Exception):
    """This replica's claim on the Lease ran out: it must not write again until it wins it back."""


@dataclass
class Outcome:
    """What one reconcile did."""

    leader: bool
    writes: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)
    decision: Decision | None = None
    observation: Observation | None = None
    """What the decision was made from (the endpoints' statuses before it, the nodes)."""
    cost: Holdings | None = None
    """The GPUs each namespace holds and the fleet has, for cost per team (None: not observed)."""
    bad_samples: tuple[BadSample, ...] = ()
    """Prometheus samples dropped because they were not finite numbers at least 0."""
    events: list[Event] = field(default_factory=list)
    """What the loop tells about each object (`kubectl describe`): recorded after the writes."""

    @property
    def result(self) -> str:
        """This loop's `result` label (`RESULTS`)."""
        if "lease_lost" in self.errors:
            return "lease_lost"
        if self.errors:
            return "error"
        return "success" if self.leader else "follower"


class ControllerMetrics:
    """The series of `autoscaler.metrics`, registered on `registry`. Between loops it keeps only each
    class's idle nodes, to count the warm nodes taken."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.families: dict[str, Gauge | Counter | Histogram] = {}
        for s in SERIES:
            if s.kind == "histogram":
                self.families[s.name] = Histogram(s.name, s.help, s.labels, registry=registry, buckets=s.buckets)
            else:
                kind = Gauge if s.kind == "gauge" else Counter
                name = s.name.removesuffix("_total") if s.kind == "counter" else s.name
                self.families[s.name] = kind(name, s.help, s.labels, registry=registry)
        self.idle: dict[str, frozenset[str]] = {}
        for reason in ERROR_REASONS:  # at zero from the start, so that a rate of errors is 0, not nothing
            self.counter("egs_autoscaler_reconcile_errors_total").labels(reason)
        for result in RESULTS:
            self.counter("egs_autoscaler_reconcile_total").labels(result)

    def gauge(self, name: str) -> Gauge:
        family = self.families[name]
        assert isinstance(family, Gauge)
        return family

    def counter(self, name: str) -> Counter:
        family = self.families[name]
        assert isinstance(family, Counter)
        return family

    def histogram(self, name: str) -> Histogram:
        family = self.families[name]
        assert isinstance(family, Histogram)
        return family

    def record(self, outcome: Outcome, duration_s: float, now: float) -> None:
        self.gauge("egs_autoscaler_leader").set(1 if outcome.leader else 0)
        # Did this replica's loop read Prometheus? A standby's reads (the history it keeps warm) are not
        # the word: 0, so that the alert's max over replicas is the leader's, not a former leader's; a
        # leader's loop that failed before reading leaves the last word.
        if not outcome.leader:
            self.gauge("egs_autoscaler_prometheus_up").set(0)
        elif outcome.observation is not None:
            self.gauge("egs_autoscaler_prometheus_up").set(0 if outcome.observation.signals is None else 1)
        for error in outcome.errors:
            self.counter("egs_autoscaler_reconcile_errors_total").labels(error).inc()
        self._cost(outcome.cost)
        self.counter("egs_autoscaler_reconcile_total").labels(outcome.result).inc()
        for bad in outcome.bad_samples:
            self.counter("egs_autoscaler_bad_samples_total").labels(bad.series, bad.reason).inc()
        if outcome.result != "follower":
            self.histogram("egs_autoscaler_reconcile_duration_seconds").observe(duration_s)
        decision = outcome.decision
        if decision is None:
            return
        self.counter("egs_autoscaler_decisions_total").labels("applied").inc(outcome.writes)
        self.counter("egs_autoscaler_decisions_total").labels("unchanged").inc(outcome.unchanged)
        self.counter("egs_autoscaler_decisions_total").labels("held").inc(len(decision.holds))
        self.gauge("egs_autoscaler_holding").set(1 if decision.holds else 0)
        for name in ("egs_endpoint_replicas_waiting", "egs_endpoint_estimated_ready_timestamp_seconds"):
            self.gauge(name).clear()
        self.gauge("egs_endpoint_ready").clear()
        self.gauge("egs_endpoint_cost_usd_per_hour").clear()
        for d in decision.endpoints:
            labels = (d.namespace, d.name, d.model, d.gpu_class or "")
            self.gauge("egs_endpoint_replicas_waiting").labels(*labels).set(d.waiting)
            self.gauge("egs_endpoint_ready").labels(*labels).set(1 if d.phase == "Ready" else 0)
            self.gauge("egs_endpoint_cost_usd_per_hour").labels(*labels).set(d.cost_per_hour)
            if d.eta is not None:
                self.gauge("egs_endpoint_estimated_ready_timestamp_seconds").labels(*labels).set(d.eta)
        self.gauge("egs_model_demand_split_evenly").clear()
        for model in decision.split_evenly:
            self.gauge("egs_model_demand_split_evenly").labels(model).set(1)
        self.gauge("egs_autoscaler_skipped_nodes").clear()
        for skipped in decision.inventory.skipped:
            self.gauge("egs_autoscaler_skipped_nodes").labels(skipped.node).set(1)
        self.gauge("egs_autoscaler_held_endpoints").clear()
        kept = set(decision.kept)
        for d in decision.endpoints:
            if d.key in kept:
                # A spec not applied has its serving replicas' phase (Ready): why is SpecApplied's reason.
                reason = d.not_applied[0] if d.not_applied else d.reason
                self.gauge("egs_autoscaler_held_endpoints").labels(d.namespace, d.name, reason).set(1)
        self.gauge("egs_warm_pool_forecast_gpus").clear()
        for pool in decision.pools:
            self.gauge("egs_warm_pool_idle_nodes").labels(pool.gpu_class).set(pool.idle_nodes)
            self.gauge("egs_warm_pool_target_nodes").labels(pool.gpu_class).set(pool.target)
            # Zero until an endpoint waits for the class, so that its first wait counts as an increase.
            self.histogram("egs_endpoint_provisioning_seconds").labels(pool.gpu_class)
            self._outcomes_from_zero(pool.gpu_class)
            if pool.forecast is not None:
                forecast = self.gauge("egs_warm_pool_forecast_gpus")
                forecast.labels(pool.gpu_class, "expected").set(pool.forecast.expected_peak)
                forecast.labels(pool.gpu_class, "upper").set(pool.forecast.upper_peak)
        if outcome.observation is not None:
            self._taken(decision, outcome.observation)
            self._provisioned(decision, outcome.observation, now)
            self._promises(decision, outcome.observation, now)
        self.gauge("egs_autoscaler_last_reconcile_timestamp_seconds").set(now)

    def _cost(self, held: Holdings | None) -> None:
        """Cost per team's inputs; none from a replica that did not observe (it does not lead), so that
        only the leader's figures are summed."""
        names = ("egs_namespace_gpus", "egs_gpu_class_gpus", "egs_gpu_class_price_usd_per_hour")
        for name in names:
            self.gauge(name).clear()
        if held is None:
            return
        for (namespace, gpu_class), gpus in held.namespace_gpus.items():
            self.gauge("egs_namespace_gpus").labels(namespace, gpu_class).set(gpus)
        for gpu_class, count in held.class_gpus.items():
            self.gauge("egs_gpu_class_gpus").labels(gpu_class).set(count)
        for gpu_class, price in held.price_usd_per_hour.items():
            self.gauge("egs_gpu_class_price_usd_per_hour").labels(gpu_class).set(price)

    def _taken(self, decision: Decision, obs: Observation) -> None:
        schedulable = {
            str((n.get("metadata") or {}).get("name"))
            for n in obs.nodes
            if not (n.get("spec") or {}).get("unschedulable")
        }
        for pool in decision.pools:
            taken = (self.idle.get(pool.gpu_class, frozenset()) - set(pool.idle)) & schedulable
            self.counter("egs_warm_pool_taken_nodes_total").labels(pool.gpu_class).inc(len(taken))
            self.idle[pool.gpu_class] = frozenset(pool.idle)

    def _provisioned(self, decision: Decision, obs: Observation, now: float) -> None:
        """An endpoint Provisioning before this decision whose replicas are placed now: it waited from its
        Ready condition's last transition to False (KEP-1623: the time moves only when Ready's status does, so an
        endpoint that was Pending before it waited counts from then)."""
        before = _statuses(obs)
        for d in decision.endpoints:
            status = before.get((d.namespace, d.name)) or {}
            if status.get("phase") != "Provisioning" or d.phase not in ("Pending", "Ready"):
                continue
            ready: Mapping[str, Any] = next((c for c in status.get("conditions") or () if c.get("type") == "Ready"), {})
            if ready.get("lastTransitionTime"):
                waited = now - parse_time(str(ready["lastTransitionTime"]))
                gpu_class = d.gpu_class or str(status.get("gpuClass", ""))
                self.histogram("egs_endpoint_provisioning_seconds").labels(gpu_class).observe(max(0.0, waited))

    def _promises(self, decision: Decision, obs: Observation, now: float) -> None:
        """Each ETA promised once, in the loop that sees it resolve (`promise_outcome`); the class of every
        promise with an ETA has both outcomes from 0 meanwhile, a class with no warm pool too."""
        before = {object_identity(o)[2:]: o for o in obs.endpoints}
        for d in decision.endpoints:
            raw = before.get((d.namespace, d.name))
            promise = promise_of(raw) if raw is not None else None
            if raw is None or promise is None or promise.eta is None:
                continue
            gpu_class = d.gpu_class or str(status_of(raw).get("gpuClass", ""))
            self._outcomes_from_zero(gpu_class)
            resolved = promise_outcome(raw, d, now)
            if resolved is not None:
                self.counter("egs_endpoint_promises_total").labels(gpu_class, resolved).inc()

    def _outcomes_from_zero(self, gpu_class: str) -> None:
        """Both outcomes of the class exposed at 0, so that its first resolution is an increase: a counter
        Prometheus first scrapes at 1 shows none (prometheus_client's "initialise your labels")."""
        for resolved in ("kept", "late"):
            self.counter("egs_endpoint_promises_total").labels(gpu_class, resolved)


class Controller:
    """One controller replica: `reconcile()` once, or `run()` until `shutdown()`."""

    def __init__(
        self,
        cluster: Cluster,
        metrics: Signals | None,
        settings: Settings,
        registry: Registry,
        catalog: Catalog,
        identity: str,
        dry_run: bool = False,
        leadership: LeaderSettings | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        exposition: CollectorRegistry | None = None,
    ) -> None:
        """`clock` is the wall clock the decisions are dated by; `monotonic` times the Lease."""
        self.cluster = cluster
        self.metrics = metrics
        self.settings = settings
        self.registry = registry
        self.catalog = catalog
        self.identity = identity
        self.dry_run = dry_run
        self.clock = clock
        self.monotonic = monotonic
        self.started_at = monotonic()
        self.last_loop_at: float | None = None
        """When (`monotonic`) the last loop finished, leader or not: what liveness is judged on."""
        self.elector = Elector(
            cluster, settings.namespace, identity, leadership, clock=monotonic, wall=clock, write=not dry_run
        )
        self.events = Recorder(cluster, identity, clock)
        self.exposition_registry = exposition or CollectorRegistry()
        self.exposition = ControllerMetrics(self.exposition_registry)
        self.split_evenly: set[str] = set()
        self.orders = OrderBook()
        """The node orders in flight as last read (`autoscaler.orders`), by the leader or a standby: lost on
        a restart, which only makes promises later until the pods show them again."""
        self.history: KeptHistory | None = None
        """The demand history as last read, by the leader or a standby, until a read fails."""
        self.gpu_indexes: Mapping[str, Mapping[str, int]] = {}
        """NVML's index of each GPU UUID per node, as last read: hardware, so a node's is kept through a read
        that failed or lacks it (numbered by EGS meanwhile, KAI's shares could move GPUs between loops)."""
        self.moves_begun: tuple[tuple[str, Move], ...] = ()
        """The consolidation moves this leader began that it still counts (`Observation.moves_begun`)."""
        self.blocked: tuple[Blocked, ...] = ()
        """The consolidation move the last decision found larger than the whole budget (`Observation.blocked`)."""
        self.no_room: NoRoom | None = None
        """The endpoints whose new pod template the last decision found no room for (`Observation.no_room`)."""
        self.said: frozenset[str] = frozenset()
        """The last decision's notices (a node skipped, an annotation that cannot be read): each is
        logged once, when it starts, and again in a new term."""
        self.metrics_down = False
        """Whether the last read of Prometheus failed."""
        self.holding: frozenset[str] = frozenset()
        """The causes the last decision held parts of itself for: each is logged when it starts and ends, and
        again when a new term finds it."""
        self.interval_s: float | None = None
        """The interval `run()` loops at (None: loops run one by one, by whoever calls `reconcile()`)."""
        self.loop_s: deque[float] = deque(maxlen=LOOPS_TIMED)
        """How long each recent loop took (real seconds)."""
        self.wake = threading.Event()
        """Set to start the next loop now (a watch saw a change, this replica started leading)."""
        self.stop = threading.Event()
        self.crd_checked = False
        """Whether the served InferenceEndpoint CRD was checked (`_check_crd`): once a process."""

    def reconcile(self) -> Outcome:
        started = time.monotonic()
        now = self.clock()
        try:
            outcome = self._reconcile(now)
        except LostLease:
            log.warning("stopped leading mid-loop: stopped writing")
            outcome = Outcome(leader=False, errors=["lease_lost"])
        except TemporaryError as e:
            log.warning("reconcile: %s (trying again next loop)", e)
            outcome = Outcome(leader=self.elector.leading(), errors=["temporary"])
        except (SetupError, KubernetesError):
            raise  # the process's own environment (credentials, a missing CRD): the one reason to exit
        except Exception:
            # Whatever one object does to a loop, the next loop runs: objects are reported on
            # themselves (decide), and a fault nobody foresaw is logged with its trace, not fatal.
            log.exception("reconcile failed (trying again next loop)")
            outcome = Outcome(leader=self.elector.leading(), errors=["internal"])
        if not outcome.leader:
            # Another replica may lead meanwhile: a new term logs the holds and notices it finds, as a first
            # term does. The outage's memory is kept: a standby reads Prometheus too, and keeps it true.
            self.holding, self.said, self.split_evenly = frozenset(), frozenset(), set()
        if not self.dry_run:
            for happened in outcome.events:
                self.events.record(happened)
        self.loop_s.append(time.monotonic() - started)
        self.exposition.record(outcome, self.loop_s[-1], self.clock())
        self.last_loop_at = self.monotonic()
        return outcome

    def health(self, interval_s: float) -> tuple[bool, str]:
        """Liveness: whether the last loop finished less than 3 intervals and a Lease ago (a loop stuck
        on a read with no deadline, or a dead loop thread, fails it), and why, in a sentence."""
        what = "started" if self.last_loop_at is None else "the last loop finished"
        age = self.monotonic() - (self.started_at if self.last_loop_at is None else self.last_loop_at)
        limit = 3 * interval_s + self.elector.settings.lease_duration_s
        if age < limit:
            return True, f"{what} {age:.1f}s ago"
        return False, f"{what} {age:.1f}s ago, more than {limit:g}s (3 intervals and a Lease): the loop is stuck"

    def run(self, interval_s: float) -> None:
        """Hold the Lease in a thread, watch what the decision reads, and reconcile every `interval_s`
        or as soon as something changed, until `shutdown()`; then hand the Lease back."""
        self.interval_s = interval_s
        self.elector.step()  # so that the first loop of a replica that can lead does
        self.elector.on_change = lambda leading: self.wake.set()
        elector = threading.Thread(target=self.elector.run, args=(self.stop,), name="lease", daemon=True)
        elector.start()
        watched = (NODE, (API_VERSION, KIND), *self.cluster.owned_kinds)
        watches = Watches(self.cluster, watched, self._changed)
        watches.start()
        while not self.stop.is_set():
            self.wake.clear()
            self.reconcile()
            if self.wake.wait(interval_s):
                # A burst of changes (an apply touches several objects) is one loop, not one each.
                self.stop.wait(COALESCE_S)
        watches.stop()
        elector.join()

    def _changed(self) -> None:
        """A watch saw a change: the leader acts on it now; a standby, which writes nothing, keeps its
        interval (a loop per change would double what the API server serves for nothing)."""
        if self.elector.leading():
            self.wake.set()

    def shutdown(self) -> None:
        """Stop after the loop in progress (safe from a signal handler)."""
        self.stop.set()
        self.wake.set()

    def _check_crd(self) -> None:
        """Exit (`SetupError`) where the served CRD lacks a status field this controller writes: the API server
        would refuse, every loop, each status that holds one (strict field validation), and with it the record of
        what a move replaces. Helm never upgrades `crds/`, so after `helm upgrade` that is the environment, not
        an object. A replica that may not read CRDs is only warned (the check is a guard, not its work)."""
        try:
            missing = stale_status_fields(self.cluster.endpoint_crd())
        except NotFoundError as e:
            raise SetupError(f"the InferenceEndpoint CRD {CRD_NAME} is not installed: {CRD_APPLY}") from e
        except ForbiddenError as e:
            log.warning("the served InferenceEndpoint CRD not checked against this controller's: %s", e)
            missing = []
        self.crd_checked = True
        if not missing:
            return
        message = (
            f"the served InferenceEndpoint CRD {CRD_NAME} is older than this controller: it lacks "
            f"{', '.join(missing)}, which the API server would refuse in every status written with it. "
            f"Helm never upgrades CRDs: {CRD_APPLY}"
        )
        if not self.dry_run:
            raise SetupError(message)
        log.error("%s (--dry-run writes no status: going on)", message)

    def _reconcile(self, now: float) -> Outcome:
        if not self.crd_checked:
            self._check_crd()
        if not self.elector.leading():
            try:
                nodes = self.cluster.nodes()
                self._keep(nodes, self.cluster.gpu_pods(), now, live=False)
                warm(nodes, self.settings, self.registry, self.catalog)
            except TemporaryError as e:  # a standby's reads only warm it: no reconcile failed
                log.info("standby: cluster not read (kept warm at the next interval): %s", e)
            return Outcome(leader=False)
        obs, read = self._observe(now)
        manager = self.cluster.field_manager
        decision = decide(obs, self.settings, self.registry, self.catalog, now)
        to_write = _to_write(decision, obs, manager)
        if _places(to_write) and (listed := self._endpoints_since(obs)) is not None:
            # An endpoint was created or changed while this loop decided (a 201 the API answered meanwhile
            # holds GPUs this decision may give away): decided again on the cluster as it is now, once.
            log.info("an InferenceEndpoint was created or changed while the loop decided: deciding again")
            obs = self._observed_again(obs, listed)
            decision = decide(obs, self.settings, self.registry, self.catalog, now)
            to_write = _to_write(decision, obs, manager)
        self.elector.note(GPU_INDEXES_NOTE, carried(self.gpu_indexes, decision.inventory))
        self.blocked, self.no_room = decision.blocked, decision.no_room
        self.holding = report_holds(decision, self.holding, log)
        self.said = report(decision, self.said, log)
        if set(decision.split_evenly) != self.split_evenly:
            self.split_evenly = set(decision.split_evenly)
            if self.split_evenly:
                log.warning(
                    "demand split evenly between the endpoints of %s: their pods' series carry no namespace/pod "
                    "labels to tell them apart",
                    ", ".join(sorted(self.split_evenly)),
                )
        held = holdings(obs.nodes, obs.pods, self.catalog, self.settings.sharing)
        bad = read.bad if read else ()
        outcome = Outcome(leader=True, decision=decision, observation=obs, cost=held, bad_samples=bad)
        # A Node that cannot be used is reported on itself, every loop while it is (one Event counting up).
        by_name = {str((n.get("metadata") or {}).get("name")): n for n in obs.nodes}
        for node, reason in sorted({(n.node, n.reason) for n in decision.inventory.skipped}):
            outcome.events.append(event(by_name.get(node, _node(node)), "Warning", "NodeSkipped", "Place", reason))
        interval, remembered = self.settings.consolidation.interval_s, self.moves_begun
        # Every move decided counts until the writes say which were not recorded: a loop cut short in them (a
        # lost lease) may have written a move's status, and this process may lead again within the interval.
        self.moves_begun = begun_moves(remembered, decision, interval, now)
        unrecorded = self._act(decision, obs, to_write, outcome)
        self.moves_begun = begun_moves(remembered, decision, interval, now, unrecorded)
        self.elector.note(MOVES_NOTE, moves_note(self.moves_begun))
        return outcome

    def _observe(self, now: float) -> tuple[Observation, Snapshot | None]:
        """The cluster as the loop decides on it. Pods are listed before Nodes: kube-scheduler binds only to a
        Ready node, so every node a listed pod is bound to is then read at least as new as the bind. Listed the
        other way, a node that joined and took its pods between the two lists read NotReady with pods bound
        to it: their replicas read as lost, a 202's were placed afresh elsewhere, and the new shape rewrote a
        serving Deployment's template (churn seed 800: a Ready replica rolled away)."""
        pods = self.cluster.gpu_pods()
        nodes = self.cluster.nodes()
        endpoints = self.cluster.endpoints()
        owned = self.cluster.owned()
        read = self._keep(nodes, pods, now)
        for bad in read.bad if read else ():
            log.warning("dropped a bad sample of %s{%s}: %s (%s)", bad.series, bad.labels, bad.value, bad.reason)
        obs = Observation(
            nodes, endpoints, owned, signals=read.signals if read else None, history=read.history if read else {},
            pods=pods, pod_signals=read.pods if read else {}, orders=self.orders, gpu_indexes=self.gpu_indexes,
            loop_period_s=self.loop_period_s(), moves_begun=self.moves_begun, blocked=self.blocked,
            no_room=self.no_room,
        )  # fmt: skip
        return obs, read

    def _endpoints_since(self, obs: Observation) -> list[dict[str, Any]] | None:
        """The InferenceEndpoints listed again, where one was created or its spec changed since `obs` (a uid
        or a generation it did not hold); None where none was."""
        listed = self.cluster.endpoints()
        seen = {_spec_version(o) for o in obs.endpoints}
        return listed if any(_spec_version(o) not in seen for o in listed) else None

    def _observed_again(self, obs: Observation, endpoints: list[dict[str, Any]]) -> Observation:
        """`obs` with the cluster listed again around `endpoints` (the metrics and the node orders, read a
        moment ago, are kept); pods before Nodes, as `_observe` lists them."""
        pods, nodes, owned = self.cluster.gpu_pods(), self.cluster.nodes(), self.cluster.owned()
        return replace(obs, nodes=nodes, endpoints=endpoints, owned=owned, pods=pods)

    def loop_period_s(self) -> float | None:
        """At most how long from one loop's start to the next's, as measured: the interval after a loop, plus
        the longest of the recent loops (a watch may start one sooner, never later)."""
        if self.interval_s is None:
            return None
        return self.interval_s + max(self.loop_s, default=0.0)

    def _keep(
        self, nodes: list[dict[str, Any]], pods: list[dict[str, Any]], now: float, live: bool = True
    ) -> Snapshot | None:
        """Track the node orders and read Prometheus: what the leader's loops and a standby's keep between
        loops (the orders, the demand history, the GPUs' indexes); the snapshot, or None where there is none.
        A standby (not `live`) reads no signals of now: it would drop them."""
        self.orders = track(self.orders, pods, nodes, self.catalog, self.settings, now)
        # The maps the last leader read, for the nodes this replica has read none of (it started while
        # Prometheus was down, or a node's exporter was).
        self.gpu_indexes = {**read_carried(self.elector.noted(GPU_INDEXES_NOTE)), **self.gpu_indexes}
        # And the moves it began: a moved endpoint deleted since has no status left to count its nodes by.
        noted = read_moves_note(self.elector.noted(MOVES_NOTE), now)
        self.moves_begun = merged_moves(self.moves_begun, noted, self.settings.consolidation.interval_s, now)
        if self.metrics is None:
            return None
        try:
            read = self._read(self.metrics, now, live)
        except TemporaryError as e:
            self.history = None
            # Said when the outage starts and when it ends, not every loop while it lasts.
            log.log(logging.DEBUG if self.metrics_down else logging.WARNING, "metrics unavailable: %s", e)
            self.metrics_down = True
            return None
        if self.metrics_down:
            log.info("metrics available again")
            self.metrics_down = False
        self.gpu_indexes = merged_indexes(self.gpu_indexes, read.gpu_indexes, nodes)
        return read

    def _read(self, metrics: Signals, now: float, live: bool) -> Snapshot:
        """One loop's read, the demand history whole or from a little before the last read on."""
        whole, kept = self.settings.history_s, self.history
        since = whole if kept is None or now <= kept.read_at else min(whole, now - kept.read_at + HISTORY_OVERLAP_S)
        read = metrics.snapshot(now, since, HISTORY_STEP_S, live)
        if kept is not None and since < whole:
            history = extended(kept.history, read.history, now - since, now - whole, now, HISTORY_STEP_S)
            read = replace(read, history=history)
        self.history = KeptHistory(now, read.history)
        return read

    def _act(
        self, decision: Decision, obs: Observation, to_write: list[dict[str, Any]], outcome: Outcome
    ) -> frozenset[str]:
        """Write `to_write` (the objects of `decision` the cluster does not hold as they are), the statuses that
        changed and the deletions, retrying those that failed for a while. A consolidation move's status goes
        first, and its endpoint's objects only once it is written: the status is the move's one record (the
        workloads it replaces, the nodes it spends), and a move's workloads running with none were counted by
        no new leader, nor known to replace the old ones; unwritten, the move is decided again next loop. The
        endpoints (by key) whose move was not written, made by none."""
        statuses = _statuses(obs)
        manager = self.cluster.field_manager
        endpoints = {object_identity(o)[2:]: o for o in obs.endpoints}
        uids = {(r.namespace, r.name): r.uid for r in map(ref, obs.endpoints)}
        # What the decision says happened (a promise revised); a consolidation move once the status that records
        # it is written: where that write fails, no move was made (a new leader decides it again).
        moves = {(e.regarding.namespace, e.regarding.name): e for e in decision.events if e.reason == CONSOLIDATING}
        outcome.events += [e for e in decision.events if e.reason != CONSOLIDATING]
        outcome.unchanged += len(decision.objects) - len(to_write)
        applies: list[Write] = [
            (f"{obj['kind']} {_name(obj)}", _regarding(obj), partial(self.cluster.apply, obj), ()) for obj in to_write
        ]
        recording: list[Write] = []  # the statuses of the moves begun this loop
        writes: list[Write] = []
        decided = {(d.namespace, d.name): d for d in decision.endpoints}
        for (namespace, name), status in decision.statuses.items():
            regarding = ObjectRef(API_VERSION, KIND, namespace, name, uids.get((namespace, name), ""))
            d = decided.get((namespace, name))
            if d is not None and d.held:
                outcome.events.append(event(regarding, "Warning", "HoldingReplicas", "Scale", d.held))
            before = statuses.get((namespace, name)) or {}
            endpoint = endpoints.get((namespace, name))  # its managedFields read only where its status holds all
            if _within(status, before) and not _drops(_applied_status(endpoint, manager), status):
                outcome.unchanged += 1
                continue
            written = (moves[namespace, name],) if (namespace, name) in moves else ()
            if d is not None and before.get("phase") != d.phase:
                note = f"{before.get('phase') or 'New'} -> {d.phase}: {d.message}"
                warning = d.phase in ("Degraded", "Failed")
                changed = event(regarding, "Warning" if warning else "Normal", d.reason or d.phase, "Reconcile", note)
                written = (changed, *written)
            # Written to the endpoint read: one deleted and posted again since keeps the status it was answered.
            write = partial(self.cluster.apply_status, namespace, name, status, regarding.uid)
            status_write = (f"status {namespace}/{name}", regarding, write, written)
            (recording if (namespace, name) in moves else writes).append(status_write)
        done: set[str] = set()
        self._write_all(recording, outcome, done)
        unrecorded = {(w[1].namespace, w[1].name) for w in recording if w[0] not in done}
        writes = [w for w in applies if not _of_endpoint(w[1], unrecorded)] + writes
        # After the applies: a replaced workload goes once its replacement serves (make-before-break).
        for api_version, kind, namespace, name in decision.deletions:
            what = f"delete {kind} {f'{namespace}/' if namespace else ''}{name}"
            gone = ObjectRef(api_version, kind, namespace, name)
            writes.append((what, gone, partial(self.cluster.delete, api_version, kind, namespace or None, name), ()))
        self._write_all(writes, outcome, done)
        return frozenset(f"{namespace}/{name}" for namespace, name in unrecorded)

    def _write_all(self, writes: list[Write], outcome: Outcome, done: set[str]) -> None:
        """Make `writes` in order, retrying those that failed for a while; `done` gathers what was written."""
        failed = self._write(writes, outcome, done)
        delays = self.settings.write_retry_delays_s
        for delay in delays:
            # The API server asked for a longer wait than this loop's retries (a 429's Retry-After): next loop.
            wait = max(delay, failed[0][1].retry_after_s) if failed else 0.0
            if not failed or wait > delays[-1] or self.stop.wait(wait):
                break
            log.info("retrying %d write(s) that failed for a while (%s)", len(failed), failed[0][1])
            # The first again; the rest only once it passes: an API server still failing gets one request a round.
            first = self._write([failed[0][0]], outcome, done)
            failed = first + failed[1:] if first else self._write([w for w, _ in failed[1:]], outcome, done)
        for (what, regarding, _, _), e in failed:
            log.warning("%s: %s", what, e)
            outcome.errors.append("temporary")
            outcome.events.append(event(regarding, "Warning", "WriteFailed", "Apply", f"{what}: {e}"))

    def _write(self, writes: list[Write], outcome: Outcome, done: set[str]) -> list[Failed]:
        """Make `writes` in order; return those that failed for a while, with their errors (a write the API
        server refused, or a conflict that outlasted the adapter's retries, is reported at once); `done` gathers
        what was written (or, in a dry run, would be)."""
        failed: list[Failed] = []
        for write in writes:
            what, regarding, call, written = write
            if not self.elector.leading():
                raise LostLease(what)
            if self.dry_run:
                log.info("dry run: would write %s", what)
                outcome.writes += 1
                done.add(what)
                continue
            try:
                call()
                outcome.writes += 1
                outcome.events += written
                done.add(what)
            except NotFoundError:
                log.info("%s: gone since it was read", what)
            except TemporaryKubernetesError as e:
                failed.append((write, e))
            except KubernetesError as e:  # refused, or a conflict the adapter retried already
                log.warning("%s: %s", what, e)
                outcome.errors.append("temporary" if isinstance(e, TemporaryError) else "rejected")
                outcome.events.append(event(regarding, "Warning", "WriteFailed", "Apply", f"{what}: {e}"))
        return failed


def _to_write(decision: Decision, obs: Observation, manager: str) -> list[dict[str, Any]]:
    """The objects of `decision` that the cluster does not hold as they are (the others need no write): a
    field differs, or one `manager` applied before is left out (`_drops`)."""
    held = by_identity(obs.owned)
    return [
        o
        for o in decision.objects
        if not _within(o, observed := held.get(object_identity(o))) or _drops(applied_fields(observed, manager), o)
    ]


def _places(to_write: list[dict[str, Any]]) -> bool:
    """Whether a decision's `to_write` holds a workload: where a new replica is placed (what a loop in flight
    could give away), and where nothing is, no check is needed."""
    return any(o["kind"] in WORKLOAD_KINDS for o in to_write)


def _spec_version(endpoint: Mapping[str, Any]) -> tuple[str, Any, Any]:
    """An InferenceEndpoint's name, uid and spec generation: what changes when it is posted, posted again
    or its spec edited, and not when a status is written."""
    meta = endpoint.get("metadata") or {}
    return (endpoint_key(endpoint), meta.get("uid"), meta.get("generation"))


def _of_endpoint(regarding: ObjectRef, keys: Collection[tuple[str, str]]) -> bool:
    """Whether a write `regarding` is of one of the endpoints `keys` (namespace, name): the endpoint's own, or an
    object it owns (`_regarding`)."""
    return regarding.kind == KIND and (regarding.namespace, regarding.name) in keys


def _node(name: str) -> ObjectRef:
    return ObjectRef(*NODE, "", name)


def _regarding(obj: Mapping[str, Any]) -> ObjectRef:
    """Whom an Event about writing `obj` is on: the endpoint that owns it, else the object itself."""
    meta = obj.get("metadata") or {}
    owner = owning_endpoint(obj)
    if owner is not None:
        return ObjectRef(API_VERSION, KIND, str(meta.get("namespace") or ""), *owner)
    return ObjectRef(str(obj["apiVersion"]), str(obj["kind"]), str(meta.get("namespace") or ""), str(meta["name"]))


def _statuses(obs: Observation) -> dict[tuple[str, str], Mapping[str, Any]]:
    """(namespace, name) -> each InferenceEndpoint's status as observed."""
    return {object_identity(o)[2:]: status_of(o) for o in obs.endpoints}


def applied_fields(obj: Mapping[str, Any] | None, manager: str, subresource: str = "") -> Mapping[str, Any]:
    """The fields `manager` applied last to `obj` (`metadata.managedFields`, a FieldsV1 tree), {} for none."""
    for entry in ((obj or {}).get("metadata") or {}).get("managedFields") or ():
        if (entry.get("manager"), entry.get("operation"), entry.get("subresource") or "") == (
            manager,
            "Apply",
            subresource,
        ):
            return entry.get("fieldsV1") or {}
    return {}


def _applied_status(endpoint: Mapping[str, Any] | None, manager: str) -> Mapping[str, Any]:
    """The status fields `manager` applied last to `endpoint` (its status subresource's FieldsV1 tree)."""
    status: Mapping[str, Any] = applied_fields(endpoint, manager, "status").get("f:status") or {}
    return status


def _drops(fields: Mapping[str, Any], intended: Any) -> bool:
    """Whether `fields` (a FieldsV1 tree of what the controller applied before) names a field `intended` leaves
    out. Such an object must be written although every field it has is there already: server-side apply then
    removes the field, where skipping the write kept it for good (churn seed 800, eleventh session: a shape
    change's `status.shapeChange` left behind, its endpoints read as changing shape half an hour after). A keyed
    list's item matches on the key fields `intended` gives (the server may have defaulted others, as a port's
    protocol); a field another manager owns is not in `fields`, and costs no write."""
    for key, sub in fields.items():
        if key.startswith("f:"):
            if not isinstance(intended, Mapping) or key[2:] not in intended:
                return True
            inner: Any = intended[key[2:]]
        elif key.startswith("k:"):
            want = _key_fields(key)
            items = as_list(intended)
            found = [i for i in items if isinstance(i, Mapping) and all(i[k] == v for k, v in want.items() if k in i)]
            if not found:
                return True
            inner = found[0]
        elif key.startswith("v:"):
            if not isinstance(intended, list) or _key_fields(key) not in intended:
                return True
            continue
        else:  # ".": the map or item itself; "i:": an index, which an apply never owns alone
            continue
        if sub and _drops(sub, inner):
            return True
    return False


@lru_cache(maxsize=4096)
def _key_fields(key: str) -> Any:
    """A FieldsV1 list item's key (`k:{...}`) or value (`v:...`), parsed once: the same keys come back on every
    unchanged object, every loop."""
    return json.loads(key[2:])


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta.get("name"))


def _within(intended: Any, observed: Any) -> bool:
    """Whether every field of `intended` already has that value in `observed` (which may hold more:
    defaults the API server filled in, fields other managers own)."""
    if isinstance(intended, Mapping):
        return isinstance(observed, Mapping) and all(_within(v, observed.get(k)) for k, v in intended.items())
    if isinstance(intended, list):
        return (
            isinstance(observed, list)
            and len(observed) == len(intended)
            and all(_within(a, b) for a, b in zip(intended, observed, strict=True))
        )
    return bool(intended == observed)


def begun_moves(
    remembered: Sequence[tuple[str, Move]],
    decision: Decision,
    interval_s: float,
    now: float,
    unrecorded: Collection[str] = (),
) -> tuple[tuple[str, Move], ...]:
    """The consolidation moves to keep counting against the budget, each with its endpoint's key: every one
    remembered from earlier loops within the interval (their endpoints may be gone, and their records with
    them; an endpoint's first move is not its last one's), and those the decision records that are not among
    them (begun this loop, or by an earlier leader), told apart by endpoint and second, as a status records
    them, but those of the endpoints `unrecorded` (their status write failed: nothing of their move was made)."""
    recorded = [(d.key, d.move) for d in decision.endpoints if d.move is not None and d.key not in unrecorded]
    return merged_moves(remembered, recorded, interval_s, now)


def merged_moves(
    kept: Sequence[tuple[str, Move]], more: Sequence[tuple[str, Move]], interval_s: float, now: float
) -> tuple[tuple[str, Move], ...]:
    """The moves of `kept`, then those of `more` not among them, told apart by endpoint and second (as a status
    records them), begun within the interval: what counts against the budget."""
    within = tuple((key, move) for key, move in kept if now - move.at < interval_s)
    seen = {(key, int(move.at)) for key, move in within}
    return within + tuple(
        (key, move) for key, move in more if now - move.at < interval_s and (key, int(move.at)) not in seen
    )
