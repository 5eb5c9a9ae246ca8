"""What the decide step is configured with (`egs controller --config`, `autoscaler.config`).

The GPU classes the node autoscaler may add and their warm pools, throughput per replica, staleness,
the ETA model and the scheduler's engine.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from autoscaler.eta import EtaSettings
from autoscaler.pool import POLICIES, PoolSettings

POOL_BACKENDS = ("balloon", "capacitybuffer", "karpenter-static")
MAX_RETRY_DELAY_S = 60.0
"""The longest wait before a write's retry: the loop waits it out, and longer is the next loop's work."""
MIN_HISTORY_S = 12 * 3_600.0
"""The demand history a loop reads where no class has a warm pool (no policy reads it then)."""


@dataclass(frozen=True)
class ClassSettings:
    """A GPU class the node autoscaler can add nodes of, and its warm pool."""

    gpus_per_node: int
    pool: str = "balloon"
    """balloon, capacitybuffer or karpenter-static."""
    policy: str = "static"
    """A warm-pool policy of `autoscaler.pool.POLICIES`."""
    static_nodes: int = 0
    """Idle nodes the `static` policy holds."""
    nodepool: str = ""
    """The Karpenter NodePool whose `replicas` the karpenter-static backend sets."""
    egs: Mapping[str, Any] = field(default_factory=dict)
    """The `egs` policy's parameters (`PoolSettings` fields, the keys `egs simulate --json` reports as
    `fitted`, its `fixed` ones included): what a fit on this class's demand chose; unset ones default."""

    def __post_init__(self) -> None:
        if self.gpus_per_node < 1:
            raise ValueError(f"gpus_per_node must be >= 1, got {self.gpus_per_node}")
        if self.pool not in POOL_BACKENDS:
            raise ValueError(f"pool must be one of {', '.join(POOL_BACKENDS)}, got {self.pool!r}")
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        if self.pool == "karpenter-static" and not self.nodepool:
            raise ValueError("the karpenter-static pool needs `nodepool`, the NodePool's name")
        self.pool_settings  # noqa: B018 (PoolSettings' checks of `egs`, at load rather than in the first loop)

    @property
    def pool_settings(self) -> PoolSettings:
        return PoolSettings(gpus_per_node=self.gpus_per_node, static_nodes=self.static_nodes, **self.egs)


@dataclass(frozen=True)
class ConsolidationSettings:
    """Moving running replicas to a cheaper shape (`autoscaler.decide.consolidation`; config key
    `consolidation: {enabled, minSavingFraction, maxNodesPerInterval, interval, consolidateAfter}`)."""

    enabled: bool = False
    """Off unless switched on: a move restarts a model server (minutes of loading) to save money."""
    min_saving_fraction: float = 0.2
    """The least saving, as a fraction of the endpoint's cost per hour, worth a move."""
    max_nodes_per_interval: int | str = "10%"
    """Nodes disrupted (a replica moved off) per `interval_s` at most, counted from the statuses: a number,
    or a percentage of the GPU nodes rounded up (`"10%"`), as Karpenter's NodePool `disruption.budgets[].nodes`
    and its default."""
    interval_s: float = 600.0
    consolidate_after_s: float = 3600.0
    """An endpoint is not moved again for this long after its last move (Karpenter's NodePool `consolidateAfter`):
    a move costs a model load on doubled capacity and a disruption, which a saving of 10-20% pays back only over
    tens of minutes, and each loop's cheapest shape shifts as others come and go (churn seed 2501 moved one
    endpoint three times in 27 minutes, 640-1,400 s apart, each saving at least 10%). A replica change holds it
    only while its count settles, `Settings.scale_down_stabilization_s` (`consolidation.last_changes`): an
    endpoint that follows demand changes its count more often than this, and would never move."""

    def __post_init__(self) -> None:
        if not 0 < self.min_saving_fraction < 1:
            raise ValueError(f"minSavingFraction must be between 0 and 1, got {self.min_saving_fraction}")
        if not _valid_budget(self.max_nodes_per_interval):
            budget = self.max_nodes_per_interval
            raise ValueError(f"maxNodesPerInterval must be a number >= 0 or a percentage of 0-100%, got {budget!r}")
        if not self.interval_s > 0:
            raise ValueError(f"interval must be a positive number of seconds, got {self.interval_s}")
        if not self.consolidate_after_s >= 0:
            raise ValueError(f"consolidateAfter must be a number of seconds >= 0, got {self.consolidate_after_s}")

    @property
    def settled_s(self) -> float:
        """How long a move stays on its endpoint's status, and the endpoint unmoved: the budget's interval (a status
        records one move, which a new leader counts), or `consolidate_after_s` where longer."""
        return max(self.interval_s, self.consolidate_after_s)

    def nodes_allowed(self, nodes: int) -> int:
        """The nodes an interval may disrupt in a fleet of `nodes` GPU nodes (a percentage rounded up)."""
        return _allowed(self.max_nodes_per_interval, nodes)


@dataclass(frozen=True)
class TemplateRolloutSettings:
    """Endpoints whose pod template EGS renders otherwise than their serving workload records, their spec
    unchanged (a registry entry changed, an EGS upgrade) or their change of it held for room: each is made
    before it breaks (a new workload, the old one serving until it does), this many at once at most (config
    key `templateRollout: {maxEndpoints}`): a number, or a percentage of the endpoints rounded up (`"10%"`),
    so that an upgrade that renders every template anew does not ask for twice the cluster at once."""

    max_endpoints: int | str = "10%"

    def __post_init__(self) -> None:
        if not _valid_budget(self.max_endpoints):
            raise ValueError(
                f"maxEndpoints must be a number >= 0 or a percentage of 0-100%, got {self.max_endpoints!r}"
            )

    def endpoints_allowed(self, endpoints: int) -> int:
        """The endpoints that may change their template at once among `endpoints` (a percentage rounded up)."""
        return _allowed(self.max_endpoints, endpoints)


def _allowed(budget: int | str, total: int) -> int:
    """A budget (`_valid_budget`) of `total`: the number, or the percentage of `total` rounded up."""
    return budget if isinstance(budget, int) else math.ceil(total * Fraction(budget[:-1]) / 100)


def _valid_budget(budget: int | str) -> bool:
    """A count (>= 0), or a percentage (`"10%"`, 0-100)."""
    if isinstance(budget, int):
        return not isinstance(budget, bool) and budget >= 0
    return re.fullmatch(r"\d+(\.\d+)?%", budget) is not None and Fraction(budget[:-1]) <= 100


@dataclass(frozen=True)
class Settings:
    """What the decide step is configured with (`egs controller --config`)."""

    namespace: str = "egs-system"
    """Where the controller's own objects live: warm pools, the Lease."""
    headroom: float = 0.2
    """Capacity above demand, as a fraction (R = ceil(demand x (1 + headroom) / throughput))."""
    throughput_rps: Mapping[str, float] = field(default_factory=dict)
    """Requests per second one replica of a model serves, by model; an endpoint may override it."""
    default_throughput_rps: float = 1.0
    stale_after_s: float = 180.0
    """Metrics older than this are stale: they never scale anything down."""
    classes: Mapping[str, ClassSettings] = field(default_factory=dict)
    """GPU classes that can be provisioned, and their warm pools."""
    sharing: Mapping[str, str] = field(default_factory=dict)
    """GPU class -> sharing mechanism, as `egs plan --sharing`."""
    eta: EtaSettings = field(default_factory=EtaSettings)
    prometheus_url: str = ""
    """Where KEDA's Prometheus trigger queries (the controller's --prometheus)."""
    engine: str = "online"
    """The scheduler's engine (`scheduler.schedule.ENGINES`): online rounds the re-plan's LP within 0.3 s
    of CPU (batches too large for that get the greedy passes), which the loop and the API can afford,
    and short of room leaves the later requests waiting where the choice costs the same, as the API
    answered them one by one; greedy is the passes alone; auto and exact search up to `time_limit_s`
    per call."""
    time_limit_s: float = 2.0
    consolidation: ConsolidationSettings = field(default_factory=ConsolidationSettings)
    template_rollout: TemplateRolloutSettings = field(default_factory=TemplateRolloutSettings)
    scale_down_stabilization_s: float = 300.0
    """Seconds a lower replica target must persist before an endpoint scales down (config key
    `scaleDownStabilizationSeconds`; HPA's default); scaling up is at once."""
    write_retry_delays_s: tuple[float, ...] = (0.25, 1.0, 2.0)
    """The controller's waits, in seconds, before each retry of a loop's writes that failed for a while (5xx,
    429, a refused connection; config key `writeRetryDelaysSeconds`): a blip of the API server (a restart
    behind its load balancer, an overload shed with a 429) passes within seconds, so the loop waits 3.25 s
    at most (6 s where a 429 asks for 2 s each time); what lasts longer is an outage the next loop meets.
    A 409 is not among them: the adapter retried it already. Never decreasing: the last is the longest a
    429's Retry-After is waited, which bounds the loop's retries (`decide`'s margin for them)."""

    def __post_init__(self) -> None:
        if not 0 <= self.scale_down_stabilization_s <= 86_400:
            raise ValueError(f"scaleDownStabilizationSeconds must be 0-86400, got {self.scale_down_stabilization_s}")
        if not all(0 <= d <= MAX_RETRY_DELAY_S for d in self.write_retry_delays_s):
            raise ValueError(
                f"writeRetryDelaysSeconds must each be 0-{MAX_RETRY_DELAY_S:g}, got {list(self.write_retry_delays_s)}"
            )
        if list(self.write_retry_delays_s) != sorted(self.write_retry_delays_s):
            raise ValueError(
                f"writeRetryDelaysSeconds must each be at least the one before, got {list(self.write_retry_delays_s)}"
            )

    @property
    def history_s(self) -> float:
        """The demand history a loop reads: what the warm-pool policies remember (`PoolSettings.history_s`, a
        week unless a class's fit says otherwise), so that the controller runs the policy `egs simulate`
        fitted and scored (learning's week, the quiet hours' three days), not a shorter-sighted one."""
        return max((c.pool_settings.history_s for c in self.classes.values()), default=MIN_HISTORY_S)
