"""Churn's fleet and scenario, drawn from the seed (benchmarks/churn.py, whose docstring documents both).

The kinds of fleet (`FLEETS`) and the nodes of one (`fleet`, `play_node`), the endpoints POSTed
(`endpoint_bodies`), the scenario's knobs (`Shape`) and what a seed draws under them (`script`): plain
data and draws, no cluster, so that a test can check what a seed draws without playing it. The events
are played on a run by benchmarks/churnkit/events.py.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from localplay.demo_cluster import pod_status
from scheduler.catalog import Catalog
from scheduler.inventory import HAMI_REGISTER
from scheduler.synthetic import gpu_node

OTHER_TEAM = "research"
"""The namespace of another team's pods (`--occupied`)."""


def teams(n: int) -> tuple[str, ...]:
    """The namespaces the endpoints are posted from: `team-a` on."""
    return tuple(f"team-{chr(ord('a') + i)}" for i in range(n))


MODELS = (
    "llama-3.1-8b-instruct",
    "mistral-7b-instruct-v0.3",
    "phi-3-mini-4k-instruct",
    "qwen2.5-14b-instruct",
    "gemma-2-27b-it",
    "qwen2.5-32b-instruct",
    "llama-3.1-70b-instruct",
)
PRICES = {"H100-80GB": 2.49, "A100-80GB": 1.79, "L40S": 0.99, "MI300X": 1.99, "MI250X": 1.1, "L4": 0.6}
"""USD per GPU-hour: a cluster's own contract prices, below the catalogue's list prices."""
FOREIGN_TAINT = {"key": "egs.dev/team", "value": "research", "effect": "NoSchedule"}
DELAY_S = (300.0, 600.0)
STARTUP_S = (30.0, 90.0)
"""From a node's registration to Ready (kubelet, network and device plugin up): the last part of its delay."""
MINUTE = 60.0


def fleet(catalog: Catalog, rng: random.Random, endpoints: int, shape: Shape) -> list[dict[str, Any]]:
    """The nodes present at the start, of the shape's fleet kind (`FLEETS`): today's (`mixed`) holds about half
    the GPUs the endpoints want (the rest are provisioned), `--fleet-size` times that."""
    kind = FLEETS[shape.fleet]
    scale = round(endpoints * shape.fleet_size / 16)
    scale = max(1, scale) if shape.fleet_size else 0
    nodes = []

    def add(name: str, gpu: str, count: int, **kw: Any) -> None:
        nodes.append(play_node(catalog, name, gpu, count, kind.sharing, **kw))

    for i in range(scale):
        for prefix, gpu, count, kw in kind.nodes:
            add(f"{prefix}-{i}", gpu, rng.choice(count) if isinstance(count, tuple) else count, **kw)
    for name, gpu, count in kind.tainted:
        add(name, gpu, count, taints=[FOREIGN_TAINT])
    # Drawn apart, so that the nodes above are what they were before these were added.
    more = random.Random(f"churn-fleet-more-{rng.random()}")
    for name in more.sample(sorted(kind.more), more.randint(min(2, len(kind.more)), len(kind.more))):
        gpu, count, kw = kind.more[name]
        for i in range(max(1, scale // 2) if scale else 0):
            add(f"{name}-{i}", gpu, count, **kw)
    return nodes


MORE_KINDS: dict[str, tuple[str, int, dict[str, Any]]] = {
    "a10g-ts": ("A10G", 4, {"replicas": 4}),
    "h200-hami": ("H200-141GB", 2, {}),
    "mi325x-cpx": ("MI325X", 1, {"partition": "cpx_nps4"}),
    "l4": ("L4", 2, {}),
    "a100-40-mig": ("A100-40GB", 1, {"mig": {"2g.10gb": 3}}),
    "mi210": ("MI210", 2, {}),
}
"""Further kinds a fleet may hold (name prefix: class, GPUs a node, how it is split): time-slicing,
HAMi memory sharing, AMD CPX partitions, plain GPUs, a smaller MIG split."""
RARE_KINDS: dict[str, tuple[str, int, dict[str, Any]]] = {
    "t4-ts": ("T4", 4, {"replicas": 2}),
    "rtx6000": ("RTX-6000-Ada", 4, {}),
    "h100-pcie": ("H100-PCIE", 2, {}),
    "a100-pcie-mig": ("A100-80GB-PCIE", 1, {"mig": {"3g.40gb": 1, "2g.20gb": 1}}),
    "v100": ("V100-32GB", 4, {}),
    "h100-nvl": ("H100-NVL-94GB", 2, {}),
    "b200": ("B200", 2, {}),
}
"""Kinds only the `many` fleet holds, beside today's: older, PCIe, workstation and newer GPUs."""

Counts = int | tuple[int, ...]


@dataclass(frozen=True)
class FleetKind:
    """A kind of fleet the play can make (`--fleet`): its nodes, what the node autoscaler adds, how GPUs are shared."""

    nodes: tuple[tuple[str, str, Counts, Mapping[str, Any]], ...]
    """(name prefix, class, GPUs a node (a tuple: drawn per node), how they are split) of each `scale` of nodes."""
    tainted: tuple[tuple[str, str, int], ...]
    """(name, class, GPUs) of the nodes tainted for another team."""
    provisionable: Mapping[str, int]
    """Class -> GPUs a node of the classes the node autoscaler adds (whole GPUs, unshared but by `sharing`)."""
    sharing: Mapping[str, str]
    """The `sharing:` configured, per class (`SharingPolicy`)."""
    unordered: Mapping[str, tuple[str, int, Mapping[str, Any]]]
    """Nodes that may join without an order (`--late-nodes`): name prefix -> class, GPUs, how they are split."""
    more: Mapping[str, tuple[str, int, Mapping[str, Any]]] = field(default_factory=dict)
    """Further kinds, at least two (or all there are) drawn, `scale // 2` nodes each."""


A100_MIG = {"3g.40gb": 2, "1g.10gb": 3}
FLEETS: dict[str, FleetKind] = {
    "mixed": FleetKind(
        (("h100", "H100-80GB", (2, 4), {}), ("a100-mig", "A100-80GB", 2, {"mig": A100_MIG}),
         ("l40s-kai", "L40S", 1, {}), ("mi300x-dpx", "MI300X", 1, {"partition": "dpx_nps1"}),
         ("mi250x", "MI250X", 1, {})),
        (("h100-research", "H100-80GB", 8), ("l4-research", "L4", 4)),
        {"H100-80GB": 8, "MI300X": 8, "L40S": 4}, {"L40S": "kai", "H200-141GB": "hami"},
        {"a100-mig": ("A100-80GB", 2, {"mig": A100_MIG}), "mi250x": ("MI250X", 1, {}), "h100": ("H100-80GB", 4, {}),
         "l40s-kai": ("L40S", 1, {})},
        MORE_KINDS,
    ),
    "amd": FleetKind(
        (("mi300x-dpx", "MI300X", 1, {"partition": "dpx_nps1"}), ("mi300x-cpx", "MI300X", (1, 2),
         {"partition": "cpx_nps4"}), ("mi325x-qpx", "MI325X", 1, {"partition": "qpx_nps1"}),
         ("mi250x", "MI250X", (1, 2), {}), ("mi210", "MI210", 2, {})),
        (("mi300x-research", "MI300X", 8),),
        {"MI300X": 8, "MI325X": 8}, {},
        {"mi300x-cpx": ("MI300X", 1, {"partition": "cpx_nps4"}), "mi250x": ("MI250X", 2, {})},
    ),
    "nvidia": FleetKind(
        (("a100-mig", "A100-80GB", 2, {"mig": A100_MIG}), ("h100-mig", "H100-80GB", 2,
         {"mig": {"3g.40gb": 2, "2g.20gb": 1, "1g.10gb": 1}}), ("a100-40-mig", "A100-40GB", 1,
         {"mig": {"2g.10gb": 3}}), ("h100", "H100-80GB", (1, 2), {}), ("l4", "L4", 2, {})),
        (("h100-research", "H100-80GB", 8),),
        {"H100-80GB": 8, "A100-80GB": 8}, {},
        {"a100-mig": ("A100-80GB", 2, {"mig": A100_MIG}), "h100": ("H100-80GB", 4, {})},
    ),
    "shared": FleetKind(
        (("h200-hami", "H200-141GB", (1, 2), {}), ("l40s-kai", "L40S", (1, 2), {}), ("h100-kai", "H100-80GB", 2, {}),
         ("l4-hami", "L4", 2, {}), ("a10g-ts", "A10G", 4, {"replicas": 4}), ("mi300x-dpx", "MI300X", 1,
         {"partition": "dpx_nps1"})),
        (("h100-research", "H100-80GB", 8),),
        {"H200-141GB": 8, "L40S": 4, "H100-80GB": 8},
        {"H200-141GB": "hami", "L4": "hami", "L40S": "kai", "H100-80GB": "kai"},
        {"h200-hami": ("H200-141GB", 2, {}), "l40s-kai": ("L40S", 2, {})},
    ),
    "pcie": FleetKind(
        (("h100-pcie", "H100-PCIE", (2, 4), {}), ("l40s", "L40S", 4, {}), ("l4", "L4", 4, {}),
         ("a10g", "A10G", 4, {}), ("rtx6000", "RTX-6000-Ada", 2, {})),
        (("l4-research", "L4", 4),),
        {"H100-PCIE": 4, "L40S": 8}, {},
        {"h100-pcie": ("H100-PCIE", 4, {}), "l40s": ("L40S", 4, {})},
    ),
}  # fmt: skip
FLEETS["many"] = FleetKind(
    (*FLEETS["mixed"].nodes, *((name, gpu, count, kw) for name, (gpu, count, kw) in RARE_KINDS.items())),
    FLEETS["mixed"].tainted,
    FLEETS["mixed"].provisionable,
    FLEETS["mixed"].sharing,
    FLEETS["mixed"].unordered,
    MORE_KINDS,
)
"""The fleets `--fleet` names: `mixed` is today's (both vendors, MIG, KAI, AMD partitions, HAMi and time-slicing
among the kinds drawn); `amd` AMD alone, mostly partitioned; `nvidia` NVIDIA alone, mostly MIG; `shared` mostly
HAMi and KAI shares; `pcie` PCIe-only GPUs, unshared (models too big for one GPU run tensor parallel over PCIe);
`many` today's with the rare kinds beside (14-18 kinds, 14 or more classes)."""


def endpoint_bodies(
    n: int, rng: random.Random, prefix: str, namespaces: tuple[str, ...]
) -> list[tuple[str, dict[str, Any]]]:
    """(namespace, POST body) per endpoint, the namespaces in turn."""
    out = []
    for i in range(n):
        low = rng.choice((1, 1, 2))
        body = {
            "name": f"{prefix}-{i}",
            "model": rng.choice(MODELS),
            "qualityFloor": rng.choice((0.95, 0.98, 0.99, 1.0)),
            "replicas": {"min": low, "max": low + 2},
        }
        out.append((namespaces[i % len(namespaces)], body))
    return out


def gpu_uuid(node: str, index: int) -> str:
    """The UUID NVML gives GPU `index` of `node` in the play: fixed, as a GPU's is."""
    return f"GPU-{uuid.uuid5(uuid.NAMESPACE_DNS, f'{node}.gpu{index}')}"


def play_node(
    catalog: Catalog, name: str, gpu: str, count: int, sharing: Mapping[str, str], **kw: Any
) -> dict[str, Any]:
    """A node of the play's fleet, at the start or joining later: on a HAMi class, registered as HAMi registers."""
    node = gpu_node(name, catalog.get(gpu), count, **kw)
    return hami_registered(node) if sharing.get(gpu) == "hami" else node


def occupying(nodes: Sequence[dict[str, Any]], share: float, rng: random.Random) -> list[dict[str, Any]]:
    """Pods of another team (`OTHER_TEAM`) holding every GPU, MIG instance or partition of `share` of the
    untainted `nodes`, drawn: a fleet already busy when EGS starts, which it must read as taken."""
    free = sorted(n["metadata"]["name"] for n in nodes if not n["spec"].get("taints"))
    taken = set(rng.sample(free, round(len(free) * share)))
    return [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"work-{name}-{i}", "namespace": OTHER_TEAM},
            "spec": {
                "nodeName": name,
                "containers": [{"name": "train", "resources": {"limits": {resource: count}}}],
            },
            "status": pod_status(name, True),
        }
        for node in nodes
        if (name := node["metadata"]["name"]) in taken
        for i, (resource, count) in enumerate(sorted(node["status"]["allocatable"].items()))
    ]


def hami_registered(node: dict[str, Any]) -> dict[str, Any]:
    """`node` with its GPUs registered as HAMi's device plugin registers them (UUID and index)."""
    name, gpus = node["metadata"]["name"], int(node["metadata"]["labels"]["nvidia.com/gpu.count"])
    listed = [{"id": gpu_uuid(name, i), "index": i, "type": "NVIDIA"} for i in range(gpus)]
    node["metadata"]["annotations"] = {**(node["metadata"].get("annotations") or {}), HAMI_REGISTER: json.dumps(listed)}
    return node


MALFORMED: dict[str, Any] = {
    "spec-a-string": "llama, please",
    "no-model": {"qualityFloor": 1.0, "replicas": {"min": 1, "max": 2}},
    "min-above-max": {"model": MODELS[0], "qualityFloor": 1.0, "replicas": {"min": 3, "max": 1}},
    "unknown-model": {"model": "no-such-model", "qualityFloor": 1.0, "replicas": {"min": 1, "max": 2}},
}
"""The spec of each kind of InferenceEndpoint the API would refuse, applied directly."""
MORE_MALFORMED: dict[str, Any] = {
    "negative-minimum": {"model": MODELS[0], "qualityFloor": 1.0, "replicas": {"min": -1, "max": 2}},
    "fractional-minimum": {"model": MODELS[1], "qualityFloor": 1.0, "replicas": {"min": 1.5, "max": 2}},
    "negative-throughput": {"model": MODELS[2], "qualityFloor": 1.0, "replicas": {"min": 1, "max": 2},
                            "throughputPerReplica": -1},
    "context-a-word": {"model": MODELS[3], "qualityFloor": 1.0, "replicas": {"min": 1, "max": 2},
                       "contextTokens": "long"},
}  # fmt: skip
"""More kinds (drawn apart): values of the right shape that the CRD's schema refuses, as an object stored
before the schema was tightened holds them."""
BAD_LABELS = (("nvidia.com/gpu.replicas", "two"), ("nvidia.com/gpu.count", "-1"), ("nvidia.com/gpu.memory", "lots"))
LATE = 3
"""Most endpoints posted late (`Script.late_burst`), beyond `--endpoints`."""
API_TROUBLE = (
    ("GET", 503, 3, "/pods"),
    ("GET", 503, 2, "/nodes"),
    ("PATCH", 500, 3, "/deployments/"),
    ("PATCH", 409, 2, "/status"),
    ("PATCH", 503, 2, "/services/"),
)
"""(method, status, how many requests, path part) the API server fails when it has a bad minute: lists, applies
and status writes, from the controller and the endpoint API alike."""


@dataclass(frozen=True)
class Shape:
    """The scenario's knobs (`--help`), today's by default: under them a seed draws the scenario it always drew.
    Ranges are (least, most), counts drawn uniformly, minutes uncompressed."""

    namespaces: int = 3
    bursts: tuple[int, int] = (1, 3)
    """How many bursts the `--endpoints` POSTs come in (the first holds at least a third of them)."""
    burst_minutes: tuple[float, float] = (2.0, 12.0)
    """When the bursts after the first come."""
    deleted: tuple[float, ...] = (0.25, 1 / 3, 0.5)
    """The share of the endpoints deleted through the API and posted again (all, or all but one or two), drawn."""
    class_changes: tuple[int, int] = (1, 2)
    malformed: tuple[int, int] = (1, 3)
    """InferenceEndpoints the API would refuse (`MALFORMED`), applied directly."""
    schema_refused: tuple[int, int] = (1, 2)
    """InferenceEndpoints the CRD's schema refuses (`MORE_MALFORMED`), applied directly."""
    bad_nodes: tuple[int, int] = (1, 2)
    """Nodes with a label that cannot be read (`BAD_LABELS`)."""
    late_nodes: tuple[int, int] = (0, 3)
    """GPU nodes nobody ordered (`FleetKind.unordered`) joining late."""
    late_minutes: tuple[float, float] = (2.0, 20.0)
    """When the late nodes join, and the fleet's (`late_fleet`)."""
    late_fleet: float = 0.0
    """The share of the fleet's nodes, drawn, that join late instead of being there at the start."""
    provision_minutes: tuple[float, float] = (DELAY_S[0] / MINUTE, DELAY_S[1] / MINUTE)
    """An ordered node's delay until Ready, drawn per order; the ETA's prior is configured to it, as an operator
    configures it to their cloud's."""
    prometheus_outage: tuple[float, float] = (0.0, 0.0)
    """How long Prometheus is unreachable (`PrometheusStandIn.down`), once; (0, 0): never."""
    cordons: tuple[int, int] = (0, 0)
    """Ready nodes that serve replicas cordoned for a while (`cordon`)."""
    fleet: str = "mixed"
    """The fleet's kind (`FLEETS`): its nodes, the classes ordered, how GPUs are shared."""
    fleet_size: float = 1.0
    """The nodes at the start, as a multiple of today's (about half the GPUs the endpoints want); 0: none but
    those tainted for another team, so that every POST waits for an order."""
    occupied: float = 0.0
    """The share of the untainted nodes at the start, drawn, whose GPUs another team's pods hold."""
    occupied_minutes: tuple[float, float] = (0.0, 0.0)
    """When another team's pods end, drawn within (their GPUs free: room for consolidation); (0, 0): never."""
    consolidation: float = 0.0
    """Consolidation's least saving (`minSavingFraction`), switched on; 0: off, as configured by default."""
    api_replicas: int = 1
    """`egs api` processes answering the POSTs, each POST to the next in turn (a Service's endpoints)."""
    controller_kills: tuple[int, int] = (0, 0)
    """Times the leading controller is killed amid a burst (`Run.kill_controller`)."""
    linger: float = 0.0
    """Minutes played on once settled, before the quiet loops: room for the scale-down window and consolidation."""

    @property
    def provision_s(self) -> tuple[float, float]:
        """`provision_minutes` in (uncompressed) seconds."""
        return self.provision_minutes[0] * MINUTE, self.provision_minutes[1] * MINUTE

    def __post_init__(self) -> None:
        ranges = {
            "bursts": (self.bursts, 1), "burst-minutes": (self.burst_minutes, 0), "class-changes":
            (self.class_changes, 0), "malformed": (self.malformed, 0), "schema-refused": (self.schema_refused, 0),
            "bad-nodes": (self.bad_nodes, 0), "late-nodes": (self.late_nodes, 0), "late-minutes":
            (self.late_minutes, 0), "provision-minutes": (self.provision_minutes, STARTUP_S[1] / MINUTE),
            "prometheus-outage": (self.prometheus_outage, 0), "cordons": (self.cordons, 0),
            "occupied-minutes": (self.occupied_minutes, 0),
            "controller-kills": (self.controller_kills, 0),
        }  # fmt: skip
        kinds = {"malformed": len(MALFORMED), "schema-refused": len(MORE_MALFORMED), "bad-nodes": len(BAD_LABELS)}
        for name, ((low, high), least) in ranges.items():
            if not least <= low <= high:
                raise ValueError(
                    f"--{name} {low:g}-{high:g}: the least must be at least {least:g} and at most the most"
                )
            if high > kinds.get(name, high):
                raise ValueError(f"--{name} {low:g}-{high:g}: there are {kinds[name]} kinds, each used once at most")
        if not 1 <= self.namespaces <= 26:
            raise ValueError(f"--namespaces {self.namespaces}: 1 to 26 (team-a to team-z)")
        if not self.deleted or not all(0 < share <= 1 for share in self.deleted):
            raise ValueError(f"--deleted {self.deleted}: shares above 0 and at most 1")
        if not 0 <= self.late_fleet <= 1:
            raise ValueError(f"--late-fleet {self.late_fleet:g}: a share from 0 to 1")
        if self.fleet not in FLEETS:
            raise ValueError(f"--fleet {self.fleet}: one of {', '.join(FLEETS)}")
        if self.fleet_size < 0:
            raise ValueError(f"--fleet-size {self.fleet_size:g}: a multiple of today's, 0 or more")
        if not 0 <= self.occupied <= 1:
            raise ValueError(f"--occupied {self.occupied:g}: a share from 0 to 1")
        if not 0 <= self.consolidation < 1:
            raise ValueError(f"--consolidation {self.consolidation:g}: the least saving, from 0 (off) to below 1")
        if not 1 <= self.api_replicas <= 4:
            raise ValueError(f"--api-replicas {self.api_replicas}: 1 to 4")
        if self.linger < 0:
            raise ValueError(f"--linger {self.linger:g}: minutes, 0 or more")


@dataclass(frozen=True)
class Script:
    """What happens when (uncompressed minutes), drawn from the seed."""

    bursts: tuple[tuple[float, tuple[int, ...]], ...]
    """(minute, indices of the endpoints posted at once)."""
    malformed: tuple[tuple[float, str], ...]
    bad_nodes: tuple[tuple[float, str, str], ...]
    """(minute, label, value)."""
    bad_samples: float
    late_nodes: tuple[tuple[float, str], ...]
    """(minute, kind of `FleetKind.unordered`)."""
    class_changes: tuple[float, int]
    """(minute, how many Ready endpoints)."""
    deleted: tuple[float, tuple[int, ...]]
    reposted: tuple[float, tuple[int, ...]]
    handover: float = 0.0
    """When a new controller replica takes over (a rolling update: SIGTERM, the Lease handed back)."""
    lost_nodes: tuple[float, int] = (0.0, 0)
    """(minute, how many Ready nodes serving replicas go away: spot reclaimed, scaled in)."""
    replica_changes: tuple[float, int] = (0.0, 0)
    """(minute, how many Ready endpoints' minimum replicas go up by one)."""
    early_deletes: tuple[float, int] = (0.0, 0)
    """(minute, how many endpoints still waiting for capacity are deleted for good)."""
    model_change: float = 0.0
    """When one Ready endpoint is changed to serve another model."""
    api_trouble: float = 0.0
    """When the Kubernetes API server has a bad minute (`API_TROUBLE`: a restart, an overloaded etcd)."""
    late_burst: tuple[float, tuple[int, ...]] = (0.0, ())
    """(minute, indices) of the few endpoints posted late, after the others settled and some changed."""
    more_malformed: tuple[tuple[float, str], ...] = ()
    """(minute, kind of `MORE_MALFORMED`) applied directly."""
    unreadable: tuple[float, float] = (0.0, 0.0)
    """(minute, minutes until it is mended) a label of an NVIDIA node that serves replicas cannot be read (a
    time-slicing or GPU Feature Discovery configuration gone wrong): the node is there and its pods run."""
    twice: tuple[int, ...] = ()
    """Endpoints of the first burst POSTed twice at once (a client that retries on its own timeout)."""
    late_fleet: tuple[tuple[float, str], ...] = ()
    """(minute, name) of the fleet's nodes that join late (`Shape.late_fleet`)."""
    prometheus_outage: tuple[float, float] = (0.0, 0.0)
    """(minute, minutes until it answers again) Prometheus is unreachable (`Shape.prometheus_outage`)."""
    cordons: tuple[float, float, int] = (0.0, 0.0, 0)
    """(minute, minutes until they are uncordoned, how many) Ready nodes serving replicas are cordoned."""
    controller_kills: tuple[tuple[float, float], ...] = ()
    """(minute of a burst, the share of its POSTs answered first) the leading controller is killed amid it."""
    released: float = 0.0
    """When another team's pods (`Shape.occupied`) end and give their GPUs back; 0: never."""

    @property
    def last(self) -> float:
        return max(
            self.reposted[0], self.class_changes[0], *(m for m, _ in self.late_nodes), self.handover,
            self.lost_nodes[0], self.replica_changes[0], self.model_change, self.api_trouble, self.late_burst[0],
            sum(self.unreadable), *(m for m, _ in self.late_fleet), sum(self.prometheus_outage),
            sum(self.cordons[:2]), self.released,
        )  # fmt: skip


def script(seed: int, endpoints: int, shape: Shape = Shape(), fleet: Sequence[str] = ()) -> Script:
    """The scenario of `seed` for `endpoints` in `shape`; `fleet` names the nodes of which `shape.late_fleet` join
    late."""
    rng = random.Random(f"churn-script-{seed}")
    bursts_after = rng.choice(range(shape.bursts[0] - 1, shape.bursts[1]))
    cuts = sorted(rng.sample(range(endpoints // 3, endpoints), min(bursts_after, endpoints - endpoints // 3)))
    starts = [0.0, *sorted(round(rng.uniform(*shape.burst_minutes), 1) for _ in cuts)]
    edges = [0, *cuts, endpoints]
    bursts = tuple((m, tuple(range(a, b))) for m, a, b in zip(starts, edges, edges[1:], strict=False))
    malformed = tuple(
        (round(rng.uniform(3, 14), 1), k) for k in rng.sample(sorted(MALFORMED), rng.randint(*shape.malformed))
    )
    bad_nodes = tuple(
        (round(rng.uniform(4, 14), 1), *label) for label in rng.sample(BAD_LABELS, rng.randint(*shape.bad_nodes))
    )
    late = tuple(
        (round(rng.uniform(*shape.late_minutes), 1), rng.choice(sorted(FLEETS[shape.fleet].unordered)))
        for _ in range(rng.randint(*shape.late_nodes))
    )
    deleted = tuple(sorted(rng.sample(range(endpoints), max(1, round(endpoints * rng.choice(shape.deleted))))))
    at = round(rng.uniform(16, 22), 1)
    kept_away = rng.randint(0, min(2, len(deleted) - 1))
    reposted = tuple(sorted(rng.sample(deleted, len(deleted) - kept_away)))
    # Drawn apart, so that the draws above stay what they were for every seed.
    more = random.Random(f"churn-script-more-{seed}")
    twice = random.Random(f"churn-script-twice-{seed}")
    late_fleet = random.Random(f"churn-script-fleet-{seed}")
    outage = random.Random(f"churn-script-outage-{seed}")
    cordons = random.Random(f"churn-script-cordons-{seed}")
    plan = Script(
        bursts, malformed, bad_nodes, round(rng.uniform(6, 14), 1), late,
        (round(rng.uniform(12, 18), 1), rng.randint(*shape.class_changes)), (at, deleted),
        (round(at + rng.uniform(2, 5), 1), reposted),
        round(more.uniform(4, 20), 1), (round(more.uniform(10, 20), 1), more.randint(1, 2)),
        (round(more.uniform(12, 18), 1), more.randint(1, 2)), (round(bursts[0][0] + more.uniform(1, 5), 1),
        more.randint(0, 2)), round(more.uniform(12, 18), 1), round(more.uniform(2, 20), 1),
        (round(more.uniform(12, 16), 1), tuple(range(endpoints, endpoints + more.randint(1, LATE)))),
        tuple((round(more.uniform(3, 14), 1), k)
              for k in more.sample(sorted(MORE_MALFORMED), more.randint(*shape.schema_refused))),
        (round(more.uniform(6, 16), 1), round(more.uniform(2, 6), 1)),
        tuple(sorted(twice.sample(bursts[0][1], min(len(bursts[0][1]), twice.randint(1, 2))))),
        tuple((round(late_fleet.uniform(*shape.late_minutes), 1), name)
              for name in late_fleet.sample(sorted(fleet), round(len(fleet) * shape.late_fleet))),
        (round(outage.uniform(4, 18), 1), round(outage.uniform(*shape.prometheus_outage), 1))
        if shape.prometheus_outage[1] else (0.0, 0.0),
        (round(cordons.uniform(6, 18), 1), round(cordons.uniform(2, 6), 1), cordons.randint(*shape.cordons))
        if shape.cordons[1] else (0.0, 0.0, 0),
    )  # fmt: skip
    kills = random.Random(f"churn-script-kills-{seed}")
    amid = [*(m for m, _ in plan.bursts), plan.reposted[0]]  # the bursts of POSTs, the reposts' included
    # In bursts of their own while there are bursts enough: a second kill in one burst waits out the restart.
    count = kills.randint(*shape.controller_kills)
    minutes = kills.sample(amid, min(count, len(amid))) + [kills.choice(amid) for _ in range(count - len(amid))]
    released = random.Random(f"churn-script-released-{seed}")
    return replace(
        plan,
        controller_kills=tuple(sorted((m, round(kills.uniform(0.1, 0.9), 2)) for m in minutes)),
        released=round(released.uniform(*shape.occupied_minutes), 1) if shape.occupied_minutes[1] else 0.0,
    )
