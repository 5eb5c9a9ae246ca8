"""Churn: does the controller keep its word on a mixed fleet while endpoints come, change and go?

The real `egs api` and `egs controller` processes (their own interpreters, as users run them) on the
Kubernetes stand-in (localplay/kube_standin.py), with the rest of the cluster played here as
tests/test_end_to_end.py and benchmarks/reconcile.py play it (kmock runs no controllers):

- node autoscaler: a pod no node takes, of a configured GPU class, orders nodes of that class; each
  is Ready after a delay drawn uniformly from 5-10 minutes per order (seeded), labelled as GPU Feature
  Discovery or AMD's labeller labels it (`scheduler.synthetic.gpu_node`), and registers 30-90 s before
  that (drawn apart), NotReady and tainted `node.kubernetes.io/not-ready` as the node lifecycle
  controller taints it (the node autoscaler counts it as coming until it is Ready); nodes are not
  given back;
- scheduler: each Deployment's pods (`<name>-<template hash>-<i>`: a changed template rolls them over,
  a Ready pod of the old one staying until as many new ones are Ready; scaled down, the pods not bound
  go first, then those not Ready, as a ReplicaSet's do) are bound, first in first out as
  kube-scheduler's queue takes them (the order the controller wrote their Deployments), to a Ready node
  whose labels its node selector and required affinity accept, whose taints it tolerates, and where what
  it asks for fits, those its preferred node affinity names first (by weight), among them the node with
  the fewest pods of its ReplicaSet (kube-scheduler's default PodTopologySpread constraints, `kubernetes.io/
  hostname` with maxSkew 3, ScheduleAnyway, score such a pod's nodes so for pods a ReplicaSet owns: two
  replicas of one Deployment answered on two nodes both prefer, one on each; the preference's weight,
  normalised, still outscores the spread of a few pods), then the first listed:
  whole GPUs, MIG instances, AMD partitions, as `autoscaler.pods.holds` reads a bound pod (the
  controller's own reading of other workloads' pods); a share of a GPU's memory (KAI `gpu-memory`, HAMi
  memory) binpacked instead, on the GPU of any node with the least memory left that holds it, as KAI
  Scheduler does by default and HAMi for pods that ask (`_packed`), and recorded on the pod as they record
  it (`Pod.recorded`: HAMi's device annotation against the UUIDs its HAMi nodes register, KAI's GPU group
  with a reservation pod per shared GPU); a pod keeps the GPUs it was given;
  a pod that fits nowhere is Pending and Unschedulable;
- kubelet: a bound pod is Ready once its variant's load time has passed; Pod objects and each
  Deployment's `readyReplicas` say so (`localplay.demo_cluster.pod_status`);
- Prometheus: a stand-in of its query API answers each model's demand, low and in step with its
  endpoints (`DEMAND_RPS` for each one posted and not deleted: every endpoint wants its minimum
  replicas, and a change of replicas is the controller's own, not the load's).

Time is compressed by `--factor` F: the provisioning delays, the model load times (written into the
registry both processes read), the controller's ETA prior (300-600 s) and step (20 s), its
scale-down stabilization window, the waits before it retries a failed write (0.25, 1 and 2 s) and the age
at which the endpoint API rebuilds the capacity it answers from (`--capacity-ttl`, 10 s) are divided by F,
the controller loops every 20/F s and retries its Lease every 2/F s (its duration and renew deadline bound
real reads and writes: not compressed); every figure in seconds below is uncompressed.

Fleet (seeded; today's, `--fleet mixed`): H100 nodes (one tainted for another team), A100 nodes split into
MIG instances, L40S nodes shared through KAI Scheduler, MI300X nodes partitioned DPX, MI250X nodes, tainted
L4 nodes; H100, MI300X and L40S can be provisioned; and two to six further kinds, drawn (`MORE_KINDS`: A10G
time-sliced, H200 shared through HAMi, MI325X partitioned CPX, plain L4 and MI210, A100-40GB split into
small MIG instances). Prices configured (`prices:`) as a cluster's own.

Scenario (uncompressed minutes), drawn from the seed (`Script`, logged at the start) so that each seed is
another run of the same kinds of churn: `--endpoints` POSTs from three namespaces (models 4-70B, quality
floors 0.95-1.0, 1-2 replicas) in one to three bursts, the first at 0 and the others within 2-12, each
posted while the cluster runs; one to three malformed InferenceEndpoints applied directly (`spec` a
string, no model, a minimum above the maximum, a model the registry lacks) within 3-14; one or two Nodes
with a label that cannot be read (`nvidia.com/gpu.replicas: "two"`, a GPU count or memory that is not a
number) within 4-14; for three minutes from 6-14, Prometheus answers `+Inf`, `NaN` and a non-number for
three models; up to three GPU nodes nobody ordered (A100 MIG, MI250X, H100, L40S) join within 2-20; within
12-18 the GPU class of one or two Ready endpoints changes; within 16-22 a quarter to a half of the
endpoints, drawn, are deleted through the API, and 2-5 minutes later posted again (all, or all but one or
two). Drawn apart (so the draws above are what they were before these were added): within 1-5 minutes of the
first burst, up to two endpoints still waiting for capacity are deleted for good; within 4-20 a new
controller replica takes over (a rolling update: once it is Ready the old one gets SIGTERM, hands back the Lease);
within 10-20 one or two Ready nodes that serve replicas are lost, deleted (their pods go) or NotReady for good
(their pods are evicted 5 minutes later; only their replicas there may move); within 12-18 the minimum
replicas of one or two Ready endpoints go up by one, and one Ready endpoint is changed to serve another
model; within 12-16 one to three more endpoints are posted; within 2-20 the API server fails a few lists,
applies and status writes (503, 500, 409); within 3-14 one or two more malformed InferenceEndpoints, with
values the CRD's schema refuses (a minimum of -1 or 1.5, a throughput of -1, a context that is a word), as
an object stored before the schema was tightened holds them; within 6-16 a label of an NVIDIA node that
serves Ready replicas cannot be read for 2-6 minutes (its replicas stay: the node did not go); one or two
endpoints of the first burst POSTed twice at once, as a client that retries on its own timeout does (one
answer, the other refused 409; drawn apart again). Then the
cluster settles (until every endpoint is Ready or Failed, at most `--settle` minutes), and three controller
loops run with nothing changing. Before the run, a registry holding a variant vLLM cannot load (int8
without a pre-quantised checkpoint) is given to `egs controller --once`: it must refuse it when it reads
it, naming the file and the field.

The last line of stdout is one JSON object:

- `applied_over_intended`: $/h of the replicas the workloads hold (each Deployment's replicas at its
  recorded shape, `autoscaler.decide.placement.serving_cost`) over $/h the statuses intend
  (`costPerHour`), once settled (target <= 1.02);
- `stale_workloads`: workloads whose endpoint is gone, or beyond those (of the status's shape first) that
  hold its desired replicas (0);
- `disruptions_outside_consolidation`: Ready replicas of endpoints whose spec did not change that went
  away, unless an Event on the endpoint names consolidation (0); `consolidation_disruptions` those;
  `consolidation_moves` the moves it began (`Consolidating` Events) and `consolidation_moves_in_one_interval`
  the most begun within one budget interval (at most 1, its `maxDisruptionsPerInterval`; `--consolidation`);
- `etas_kept`, `eta_mean_slack_s`: of the 202 answers, the share Ready by their `estimatedReadyTime`
  (Ready at the middle of the play's two reads between which the status turned Ready; no other grace),
  and the mean of (promised - ready) over those kept (targets >= 0.95, <= 120 s): the first promise,
  the answer; `etas_kept_last`, `eta_mean_slack_last_s` the same against the last ETA the endpoint's
  status showed before it was Ready (the controller moves a promise earlier once its pods are bound);
  each incarnation (uid) of an endpoint on its own promise: one deleted and posted again is scored twice,
  and one deleted (or whose node was lost) before it was Ready is not scored;
  `eta_quantile_slack_s`: of the first promises kept, the mean of the promise less the median the same
  ETA rule gave then (`egs api`'s debug line), the slack the 0.95 quantile alone leaves (one fresh 5-10
  minute order: about 135-140 s); the rest of `eta_mean_slack_s` is the delays' draw, or a promise that
  ignored something known; `eta_early_by_cause`: those promises by what served the last pod bound before
  Ready (`Play.early_cause`: its own order, an order in flight at the answer, one placed for pods queued
  ahead of it or after it, a node nobody ordered, a GPU free at the answer or freed after it), each with
  its promises, their nodes, the mean of (median - ready) and the mean delay drawn for the ordered nodes;
  `eta_bound_slack_s`: the least mean slack over the first promises kept that any answer-time rule keeping
  95% of them could leave, knowing at each answer the true delay law and what `egs api` knew (its queue,
  orders in flight, nodes registered), not the later draws or POSTs (from each 202's law, `egs api`'s debug
  line: `least_mean_slack`); `eta_bound_q95_slack_s` that rule promising each answer its law's 0.95
  quantile, and `eta_bound_q95_kept`, `eta_bound_q95_realized_slack_s` those promises against the run;
  `promises_revised_without_reason`: times a 202's ETA moved later while no PromiseKept condition said
  why (0);
- `demoted_201`: 201 answers that a status later reported Provisioning, those of endpoints deleted since
  included (0); `answered_201` all 201 answers; `pods_201_off_answer`: their pods bound to another node
  than the API answered (the workloads carry no per-node pin, so the scheduler picks the node within the
  class: a figure, not a target); `served_201_otherwise`: 201s first Ready in a variant and GPU class none
  of their replicas was answered in, their spec unchanged (a figure: logged with their conditions);
- `controller_exits`: times the controller process ended (it is restarted) (0);
- `quiet_reconcile_writes`: writes to the API server (Leases and Events aside) during three loops
  with nothing changed (0); `posts_answered_twice`: POSTs of a pair sent at once answered 201 or 202
  after the other was (0: the second is refused 409, as Kubernetes' create is);
- `ready_with_conditions_stuck`: Ready endpoints whose status, once settled, still shows Ready or
  ScalingActive False, Degraded True or a PromiseKept False (0); `endpoints_without_metrics`: endpoints
  with no `egs_endpoint_ready` series on the controller's /metrics (0);
- `unloadable_variant_refused`: the registry check above;
- `handover_read_gap_s`: across the controller's handover, from the old replica's last read of the
  endpoints before its SIGTERM to the new replica's first (each replica has a token of its own; the stand-in times each
  request): how long a change, a 202's pods turning Ready, may wait on the handover (a figure; a loop at
  most in steady state); `handover_status_gap_s` from the old replica's last status write to the new one's
  first, which adds the quiet loops on either side (`handover_gaps` logs the parts).

    python benchmarks/churn.py [--endpoints 49] [--factor 20] [--seed 1] [--quick] [shape knobs]

The scenario's shape has knobs (`Shape`, `--help`): namespaces, bursts and their minutes, the share deleted
and posted again, class changes, malformed and schema-refused endpoints, bad Nodes, late nodes nobody
ordered, a share of the fleet joining late and when, the provisioning delay (the ETA's prior configured to
it). Their defaults are the ranges above: under them a seed draws the scenario it always drew; the JSON's
`shape` names the knobs a run changed. Two events are played only when asked (drawn apart, off by default):
`--prometheus-outage` (Prometheus unreachable for those minutes from a minute within 4-18: each read fails at
once; the controller holds its replica targets and still places what is new) and `--cordons` (Ready nodes
that serve replicas cordoned within 6-18 for 2-6 minutes, as a drain that waits on the endpoints'
PodDisruptionBudgets leaves them: their replicas stay, nothing new is bound there).
The fleet has knobs too, off by default (`FLEETS`): `--fleet` another kind of fleet (`amd`: AMD alone, mostly
partitioned; `nvidia`: NVIDIA alone, mostly MIG; `shared`: mostly HAMi and KAI shares; `pcie`: PCIe-only GPUs,
unshared, so that big models run tensor parallel over PCIe; `many`: today's with seven rarer kinds, 14 or more
classes), each with its own classes ordered, sharing and late nodes; `--fleet-size` the nodes at the start as a
multiple of today's (0: none but those tainted for another team, so every POST is a 202); `--occupied` the share
of the untainted nodes at the start whose every GPU another team's pods hold (`occupying`: a fleet already
full, which the API and the controller must read as taken), until a minute drawn within `--occupied-minutes`
(never by default); `--consolidation` switches consolidation on with
that least saving (its budget as configured by default: one endpoint per 600 s, compressed), and `--linger`
plays on for those minutes once settled (before the quiet loops), so that it and the scale-down window may act.
Two events more, off by default too: `--api-replicas N` runs N `egs api` processes (`api.log`, `api-2.log`, ...)
and sends each request to the next in turn, as a Service spreads them over the chart's two replicas, and
`--controller-kills` kills the leading controller (SIGKILL: the OOM killer, a crash) amid a burst of POSTs drawn
(the first bursts or the reposts) once a drawn share (0.1-0.9) of its POSTs is answered; the kubelet restarts it
in its pod after its back-off (10 s), under the same identity (`--identity`, the pod's name), so it leads again at
once (not counted in `controller_exits`).

The run's folder (named on the first line of stderr) keeps what a late promise is traced from:
`api.log` (debug: each POST's answer and the capacity, queues and orders it came from),
`controller.log`, and `play.log` (each node ordered with its drawn delay, registered, Ready; each pod
created, bound with its GPUs, gone or evicted; wall-clock times as the other logs have them).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import json
import math
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlparse

import requests
import yaml
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # localplay/: the stand-ins the tests and the demo use

from autoscaler.adapters.api_limits import CAPACITY_TTL_S  # noqa: E402
from autoscaler.adapters.prometheus import DEMAND, GPU_INDEXES, KV_CACHE, RUNNING, WAITING  # noqa: E402
from autoscaler.decide import PROMISE_ANNOTATION, Settings  # noqa: E402
from autoscaler.decide.placement import serving_cost  # noqa: E402
from autoscaler.decide.state import read_owned  # noqa: E402
from autoscaler.decide.status import PROMISE_KEPT, SCALING_ACTIVE  # noqa: E402
from autoscaler.decide.workloads import HOSTNAME, owning_endpoint  # noqa: E402
from autoscaler.kubetime import parse_time, rfc3339  # noqa: E402
from autoscaler.leader import LeaderSettings  # noqa: E402
from autoscaler.pods import HAMI_DEVICES, KAI_GPU_GROUP, KAI_RESERVED, asks_for_gpu, holds, kai_share, placed_on  # noqa: E402
from autoscaler.pods import requests as asked_of  # noqa: E402
from localplay.demo_cluster import pod_status, registry_with_loads  # noqa: E402
from localplay.kube_standin import KubeCluster  # noqa: E402
from localplay.localstack import StackError, answers, free_port, wait_http  # noqa: E402
from scheduler.catalog import Catalog  # noqa: E402
from scheduler.inventory import (  # noqa: E402
    HAMI_REGISTER,
    Allocation,
    Inventory,
    NodeGpus,
    SharingPolicy,
    build_inventory,
)
from scheduler.manifests import HAMI_GPU_MEMORY  # noqa: E402
from scheduler.plan import Toleration  # noqa: E402
from scheduler.registry import Registry  # noqa: E402
from scheduler.synthetic import gpu_node  # noqa: E402

ENDPOINTS = "egs.dev/v1alpha1/inferenceendpoints"
DEPLOYMENTS = "apps/v1/deployments"
NODES = "v1/nodes"
PODS = "v1/pods"
OTHER_TEAM = "research"
"""The namespace of another team's pods (`--occupied`)."""
RESERVATIONS = "kai-resource-reservation"
"""KAI's namespace (and `app` label) of its reservation pods."""
EVENTS = "events.k8s.io/v1/events"


def teams(n: int) -> tuple[str, ...]:
    """The namespaces the endpoints are posted from: `team-a` on."""
    return tuple(f"team-{chr(ord('a') + i)}" for i in range(n))


TOKEN = "t-churn"
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
NOT_READY_TAINTS = {"False": "node.kubernetes.io/not-ready", "Unknown": "node.kubernetes.io/unreachable"}
"""The NoExecute taint the node lifecycle controller puts on a node, by the status of its Ready condition."""
EVICTION_S = 300.0
"""How long a pod stays bound to a node that is not Ready before it is evicted, where it carries no
toleration of that node's taint: what the DefaultTolerationSeconds admission plugin (on by default)
gives every pod."""
NOT_READY_TAINT = {"key": NOT_READY_TAINTS["False"], "effect": "NoSchedule"}
RESTART_BACKOFF_S = 10.0
"""The kubelet's back-off before it restarts a container that ended (its first: 10 s, doubling after)."""
HANDOVER_S = 60.0
"""Real seconds a new controller replica has to be Ready in a handover before the play gives up, and the old
one to end after its SIGTERM before it is killed."""
STARTING_NICE = 19
"""The niceness a new controller replica starts at in a handover, until it leads: in a cluster its pod runs on
CPU of its own (its requests), while here its start-up (imports, first reads) would take the old leader's
cores and slow its last loops. With Linux's autogroups (on by default) niceness is weighed within a session:
it yields to the play's own processes, not to the rest of the machine."""
LOOP_S = 20.0
"""The controller's interval (uncompressed): its decide step, so the ETA's step too."""
MINUTE = 60.0
DEMAND_RPS = 0.05
"""Requests per second each endpoint adds to its model's demand: far below a replica's throughput."""
LOOP = "egs_autoscaler_reconcile_duration_seconds"
CONSOLIDATION = Settings().consolidation
"""Consolidation's budget (`--consolidation` sets only its least saving): one endpoint moved per 600 s."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the fleet and the requests -------------------------------------------------------------------


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


def compressed_registry(path: Path, factor: float, catalog: Catalog) -> Registry:
    """examples/models.yaml with every variant's load time divided by `factor`, written to `path`."""
    loads = registry_with_loads(path, lambda variant: round(variant.load_seconds / factor, 3), catalog)
    return Registry.load(loads, catalog)


# -- Prometheus' query API, played --------------------------------------------------------------


class PrometheusStandIn:
    """`/api/v1/query` and `/api/v1/query_range` answering each model's demand, and the GPU index of each
    UUID on the Ready NVIDIA nodes of `nodes` as the GPU exporter's series label them (`GPU_INDEXES`); `bad`
    replaces a (query, model) sample's value with what a broken exporter or proxy would give; while `down`,
    every connection is closed unanswered, so each read fails at once as it does against a Prometheus whose
    Service has no ready endpoint (restarting, its volume full, OOM-killed)."""

    def __init__(self, demand: Mapping[str, float], nodes: Callable[[], list[dict[str, Any]]]) -> None:
        self.demand = dict(demand)
        self.nodes = nodes
        self.bad: dict[tuple[str, str], str] = {}
        self.down = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if outer.down:
                    self.close_connection = True
                    return
                url = urlparse(self.path)
                args = {k: v[-1] for k, v in parse_qs(url.query).items()}
                result = outer.answer(args.get("query", ""), float(args.get("time", time.time())))
                kind = "matrix" if url.path.endswith("query_range") else "vector"
                body = json.dumps({"status": "success", "data": {"resultType": kind, "result": result}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, name="prometheus", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, query: str, at: float) -> list[dict[str, Any]]:
        if query == GPU_INDEXES:
            return [{"metric": labels, "value": [at, "1"]} for labels in exported_gpus(self.nodes())]
        values = {DEMAND: None, WAITING: "0", RUNNING: "1", KV_CACHE: "0.3"}
        stamped = query.removeprefix("timestamp(").removesuffix(")")
        if stamped not in values:
            return []  # per pod, GPU saturation, history: none (the demand is split evenly)
        out = []
        for model, rps in self.demand.items():
            value = f"{at:.3f}" if stamped != query else values[query] or f"{rps:g}"
            value = self.bad.get((query, model), value)
            out.append({"metric": {"model_name": model}, "value": [at, value]})
        return out

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- scheduler, kubelet and node autoscaler, played ----------------------------------------------


@dataclass
class Pod:
    namespace: str
    name: str
    deployment: str
    endpoint: str
    """namespace/name of the InferenceEndpoint it serves."""
    template: dict[str, Any]
    load_s: float
    gpu_class: str
    queued: tuple[float, int] = (0.0, 0)
    """(when it was first seen, its Deployment's resourceVersion then): kube-scheduler's queue is first in,
    first out, so a pod the controller wrote first is bound first."""
    node: str = ""
    bound_at: float = 0.0
    ready: bool = False
    held: tuple[Allocation, ...] = ()
    """What the scheduler and device plugin gave it when it was bound: kept while it runs."""
    uid: str = ""
    """The uid of the InferenceEndpoint incarnation its Deployment was written for (its ownerReference)."""
    gone_at: float | None = None
    """When it went (deleted or evicted): its GPUs were held until then (`early_cause`)."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def replica_set(self) -> tuple[str, str]:
        """Its ReplicaSet: its Deployment at its template's revision (the name less the pod's index)."""
        return self.namespace, self.name.rsplit("-", 1)[0]

    def obj(self) -> dict[str, Any]:
        meta = self.template.get("metadata") or {}
        return {
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                **{k: {**(meta.get(k) or {}), **v} for k, v in self.recorded().items() if k in meta or v},
            },
            "spec": {**self.template["spec"], **({"nodeName": self.node} if self.node else {})},
        }

    def recorded(self) -> dict[str, dict[str, str]]:
        """The labels and annotations its scheduler writes on a pod it gives a share of GPU memory, in their
        real form (`autoscaler.pods.placed_on` reads them): HAMi's devices (UUID, type, MiB, cores per
        device, one container), KAI's GPU group of each GPU (`runai-gpu-group/<group>` for several)."""
        hami = [a for a in self.held if a.sharing == "hami"]
        kai = [gpu_group(self.node, i) for a in self.held if a.sharing == "kai" for i in a.gpus]
        devices = "".join(f"{gpu_uuid(self.node, a.gpus[0])},NVIDIA,{a.vram_mib},0:" for a in hami)
        labels = {KAI_GPU_GROUP: kai[0]} if len(kai) == 1 else {f"{KAI_GPU_GROUP}/{g}": g for g in kai}
        return {"labels": labels, "annotations": dict.fromkeys(HAMI_DEVICES, devices + ";") if devices else {}}


def gpu_uuid(node: str, index: int) -> str:
    """The UUID NVML gives GPU `index` of `node` in the play: fixed, as a GPU's is."""
    return f"GPU-{uuid.uuid5(uuid.NAMESPACE_DNS, f'{node}.gpu{index}')}"


def exported_gpus(nodes: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """`Hostname`, `UUID` and `gpu` of each GPU of the Ready NVIDIA `nodes`, as the exporter each runs (a
    DaemonSet, `$NODE_NAME`) labels its series: the UUID NVML gives the GPU in the play (`gpu_uuid`)."""
    out = []
    for node in nodes:
        name, labels = node["metadata"]["name"], node["metadata"].get("labels") or {}
        conditions = (node.get("status") or {}).get("conditions") or ()
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        count = str(labels.get("nvidia.com/gpu.count", ""))
        if ready and count.isdigit():
            out += [{"Hostname": name, "UUID": gpu_uuid(name, i), "gpu": str(i)} for i in range(int(count))]
    return out


def gpu_group(node: str, index: int) -> str:
    """KAI's GPU group of the shares on GPU `index` of `node` (KAI draws one per GPU it starts sharing)."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{node}.gpu{index}.group"))


def reservation_name(node: str, index: int) -> str:
    return f"gpu-reservation-{node}-{gpu_group(node, index)[:5]}"


def reservation_pod(node: str, index: int) -> dict[str, Any]:
    """KAI's reservation pod of a shared GPU: it asks for the whole GPU and names it by its UUID
    (NVIDIA/KAI-Scheduler pkg/binder/binding/resourcereservation, pkg/resourcereservation/patcher)."""
    group = gpu_group(node, index)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": reservation_name(node, index),
            "namespace": RESERVATIONS,
            "labels": {"app": RESERVATIONS, KAI_GPU_GROUP: group},
            "annotations": {KAI_RESERVED: gpu_uuid(node, index)},
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "resource-reservation", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
        },
        "status": pod_status(node, True),
    }


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


@dataclass
class Play:
    kube: KubeCluster
    catalog: Catalog
    registry: Registry
    rng: random.Random
    factor: float
    pods: dict[str, Pod] = field(default_factory=dict)
    coming: list[tuple[float, float, str, str]] = field(default_factory=list)
    """(Ready at, registers at, node name, class) of the nodes ordered: each registers NotReady and tainted
    `node.kubernetes.io/not-ready` `STARTUP_S` before it is Ready, within its provisioning delay."""
    ordered: int = 0
    seen: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Endpoint incarnation (uid) -> (when its first pod appeared, when its last pod was bound), for the log:
    a reposted endpoint's pods are not its first incarnation's."""
    joined: set[str] = field(default_factory=set)
    registered: set[str] = field(default_factory=set)
    startup_rng: random.Random = field(default_factory=lambda: random.Random(0))
    """Draws each order's `STARTUP_S`, apart from its delay (so that the delays are what they were)."""
    delay_s: tuple[float, float] = DELAY_S
    """An order's delay until its node is Ready (uncompressed), drawn uniformly (`Shape.provision_minutes`)."""
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    """Each node's labels as last read."""
    _written: dict[str, tuple[str, bool]] = field(default_factory=dict)
    reserved: set[tuple[str, int]] = field(default_factory=set)
    """(node, GPU) of each KAI reservation pod written: one per GPU that KAI shares."""
    down: dict[str, float] = field(default_factory=dict)
    """Node -> when it went NotReady (its kubelet stopped posting): its pods are not Ready from then on, and
    evicted `EVICTION_S` later (the default toleration of `node.kubernetes.io/unreachable`)."""
    binds: list[tuple[float, Pod]] = field(default_factory=list)
    """(when, pod) of every pod bound: who took which GPUs before a late 202 (`overtaken`)."""
    orders: dict[str, tuple[float, float, tuple[tuple[str, tuple[float, int]], ...]]] = field(default_factory=dict)
    """Node ordered -> (when, its delay drawn (uncompressed), (endpoint incarnation's uid, place in kube-scheduler's
    queue) of each pod it was ordered for): what served a 202 early (`early_cause`)."""
    arrived: dict[str, float] = field(default_factory=dict)
    """Node nobody ordered that joined during the play (late nodes, the fleet's late share) -> when."""
    kind: FleetKind = field(default_factory=lambda: FLEETS["mixed"])
    """The fleet's kind: the classes its node autoscaler adds, and how each class shares its GPUs."""
    others: list[dict[str, Any]] = field(default_factory=list)
    """Pods of another team bound at the start (`--occupied`): their GPUs are held all along."""
    journal: TextIO | None = None
    """Where the play's events go (`play.log` in the run's folder): each order and its delay, each node
    registered and Ready, each pod created, bound and gone, so that a late promise can be traced after the
    run (who took the GPUs it was counted on) beside `api.log`'s capacity of each answer."""

    def step(self, now: float) -> None:
        self._join(now)
        # Pod garbage collection and eviction: a pod bound to a Node that is gone, or NotReady for longer than
        # it tolerates, goes (its Deployment makes another).
        nodes = self.kube.all(NODES)
        present = {n["metadata"]["name"] for n in nodes}
        evicted = {n for n, since in self.down.items() if now - since >= EVICTION_S / self.factor}
        for key in [k for k, p in self.pods.items() if p.node and (p.node not in present or p.node in evicted)]:
            self._note(now, f"evicted {key} from {self.pods[key].node}")
            self.pods.pop(key).gone_at = now
        wanted = self._wanted(now)
        replicas = {(p.namespace, p.deployment): 0 for p in wanted.values()}
        for pod in wanted.values():
            replicas[(pod.namespace, pod.deployment)] += 1
        serving = dict.fromkeys(replicas, 0)
        for key, pod in self.pods.items():
            if key in wanted and pod.ready:
                serving[(pod.namespace, pod.deployment)] += 1
        for key in [k for k in self.pods if k not in wanted]:
            # A rolling update (maxUnavailable 0): a Ready pod of the Deployment's previous template stays
            # until as many pods of its new one are Ready; anything else goes at once.
            pod = self.pods[key]
            deployment = (pod.namespace, pod.deployment)
            if pod.ready and deployment in replicas and serving[deployment] < replicas[deployment]:
                serving[deployment] += 1
                continue
            self._note(now, f"gone {key}")
            self.pods.pop(key).gone_at = now
        for key, pod in wanted.items():
            if key not in self.pods:
                self._note(now, f"created {key} ({pod.gpu_class})")
            self.pods.setdefault(key, pod)
            self.seen.setdefault(pod.uid, (now, 0.0))
        self._schedule(now, nodes)
        self._order(now)
        for pod in self.pods.values():
            pod.ready = bool(pod.node) and pod.node not in self.down and now - pod.bound_at >= pod.load_s
        self._report(now)

    def _wanted(self, now: float) -> dict[str, Pod]:
        pods = {}
        running: dict[tuple[str, str], list[Pod]] = {}
        for p in self.pods.values():
            running.setdefault((p.namespace, p.deployment), []).append(p)
        for d in self.kube.all(DEPLOYMENTS):
            meta, spec = d["metadata"], d.get("spec") or {}
            annotations = meta.get("annotations") or {}
            template = spec.get("template") or {}
            if "egs.io/request-name" not in annotations or not asks_for_gpu(template):
                continue
            variant = self.registry.get(annotations["egs.io/model"]).variant(annotations["egs.io/variant"])
            endpoint = f"{meta['namespace']}/{annotations['egs.io/request-name']}"
            revision = hashlib.sha1(json.dumps(template, sort_keys=True).encode()).hexdigest()[:6]
            template = self._admitted(template)
            prefix = f"{meta['name']}-{revision}-"
            # Scaled down, its ReplicaSet removes the pods not bound first, then those not Ready, the newest
            # first (kube-controller-manager's `ActivePods` order); new pods take the lowest free names.
            have = [p for p in running.get((meta["namespace"], meta["name"]), ()) if p.name.startswith(prefix)]
            have.sort(key=lambda p: (not p.node, not p.ready, p.bound_at, p.name))
            names = [p.name for p in have[: int(spec.get("replicas", 0))]]
            free = (f"{prefix}{i}" for i in itertools.count() if f"{prefix}{i}" not in names)
            names += list(itertools.islice(free, int(spec.get("replicas", 0)) - len(names)))
            for name in names:
                pod = Pod(
                    meta["namespace"],
                    name,
                    meta["name"],
                    endpoint,
                    template,
                    variant.load_seconds,
                    annotations["egs.io/gpu-class"],
                    (now, int(meta.get("resourceVersion") or 0)),
                    uid=(owning_endpoint(d) or ("", ""))[1],
                )
                pods[pod.key] = pod
        return pods

    def _admitted(self, template: dict[str, Any]) -> dict[str, Any]:
        """A pod of `template` as the API server admits it: the DefaultTolerationSeconds admission plugin adds
        `EVICTION_S` (compressed, whole seconds) of toleration of a node not Ready, what its eviction counts."""
        spec = template.get("spec") or {}
        keys = {t.get("key") for t in spec.get("tolerations") or ()}
        seconds = math.floor(EVICTION_S / self.factor)
        added = [
            {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}
            for key in NOT_READY_TAINTS.values()
            if key not in keys
        ]
        return {**template, "spec": {**spec, "tolerations": [*(spec.get("tolerations") or ()), *added]}}

    def _inventory(self, nodes: list[dict[str, Any]]) -> Inventory:
        inventory = build_inventory(nodes, self.catalog, sharing=SharingPolicy(self.kind.sharing), strict=False)
        by_name = {n.node: n for n in inventory}
        for other in self.others:
            if (name := other["spec"]["nodeName"]) in by_name:
                node = by_name[name]
                by_name[name] = Inventory((node,)).allocated(holds(node, other, None)).nodes[0]
        for pod in sorted((p for p in self.pods.values() if p.node), key=lambda p: p.bound_at):
            if pod.node in by_name:
                by_name[pod.node] = Inventory((by_name[pod.node],)).allocated(pod.held).nodes[0]
        # As the kubelet labels every Node, with its hostname.
        self.labels = {
            n["metadata"]["name"]: {**(n["metadata"].get("labels") or {}), HOSTNAME: n["metadata"]["name"]}
            for n in nodes
        }
        return Inventory(tuple(by_name[n.node] for n in inventory))

    def _schedule(self, now: float, nodes: list[dict[str, Any]]) -> None:
        inventory = self._inventory(nodes)
        by_name = {n.node: n for n in inventory}
        siblings = Counter((p.replica_set, p.node) for p in self.pods.values() if p.node)
        for pod in sorted((p for p in self.pods.values() if not p.node), key=lambda p: (p.queued, p.name)):
            obj = pod.obj()
            fits = []
            for name, node in by_name.items():
                if not node.schedulable or not _selects(obj, self.labels.get(name, {})) or not _tolerates(obj, node):
                    continue
                packed = _packed(node, obj)
                taken, left = packed if packed is not None else (holds(node, obj, placed_on(node, obj)), 0)
                if _units(taken) >= _asked_units(obj):
                    rank = (-_preferred(obj, self.labels.get(name, {})), siblings[(pod.replica_set, name)], left)
                    fits.append((rank, name, taken))
            if fits:
                # The nodes it prefers first; among those, the node with the fewest pods of its ReplicaSet, as
                # kube-scheduler's default topology spreading scores them (`SPREAD`); then the tightest fit (for
                # shared GPUs; the first node for any other pod): stable, so first among equals.
                _, name, taken = min(fits, key=lambda f: f[0])
                siblings[(pod.replica_set, name)] += 1
                pod.node, pod.bound_at, pod.held = name, now, tuple(taken)
                self._note(now, f"bound {pod.key} to {name} {[a.gpus for a in taken]}")
                self.binds.append((now, pod))
                self.seen[pod.uid] = (self.seen.get(pod.uid, (now, 0.0))[0], now)
                by_name[name] = Inventory((by_name[name],)).allocated(taken).nodes[0]

    def _order(self, now: float) -> None:
        """Nodes for the pods no node takes, of the classes the node autoscaler can add, packed by GPUs."""
        need: dict[str, int] = {}
        queue: dict[str, list[tuple[int, int, Pod]]] = {}  # per class: the GPUs each pod asks, first in first out
        for pod in sorted(self.pods.values(), key=lambda p: (p.queued, p.name)):
            if not pod.node and pod.gpu_class in self.kind.provisionable:
                start = need.get(pod.gpu_class, 0)
                need[pod.gpu_class] = start + max(1, _asked_units(pod.obj()))
                queue.setdefault(pod.gpu_class, []).append((start, need[pod.gpu_class], pod))
        for gpu_class, gpus in need.items():
            per_node = self.kind.provisionable[gpu_class]
            coming = sum(1 for t, _, _, c in self.coming if c == gpu_class and t > now)
            for i in range(coming, math.ceil(gpus / per_node)):
                self.ordered += 1
                delay = self.rng.uniform(*self.delay_s) / self.factor
                name = f"{gpu_class.lower()}-new-{self.ordered}"
                registers = now + delay - self.startup_rng.uniform(*STARTUP_S) / self.factor
                self.coming.append((now + delay, registers, name, gpu_class))
                # The pods whose GPUs it brings, behind those of the nodes coming.
                wanted = [p for start, end, p in queue[gpu_class] if start < (i + 1) * per_node and end > i * per_node]
                self.orders[name] = (now, delay * self.factor, tuple((p.uid, p.queued) for p in wanted))
                self._note(now, f"ordered {name}, Ready in {delay * self.factor:.0f} s ({gpus} {gpu_class} GPUs wait)")

    def _join(self, now: float) -> None:
        """Nodes ordered register NotReady, tainted as the node lifecycle controller taints them, and are
        Ready, untainted, when their delay is over (the node autoscaler counts them as coming until then)."""
        for t, registers, name, gpu_class in self.coming:
            if name not in self.registered and registers <= now < t:
                node = play_node(self.catalog, name, gpu_class, self.kind.provisionable[gpu_class], self.kind.sharing)
                node["status"]["conditions"] = [{"type": "Ready", "status": "False", "reason": "KubeletNotReady"}]
                node["spec"]["taints"] = [*node["spec"].get("taints", []), NOT_READY_TAINT]
                self.kube.put(NODES, node)
                self.registered.add(name)
                self._note(now, f"registered {name}, NotReady")
            elif t <= now and name not in self.joined:
                self.joined.add(name)
                self._note(now, f"Ready {name}")
                node = play_node(self.catalog, name, gpu_class, self.kind.provisionable[gpu_class], self.kind.sharing)
                if name in self.registered:  # registered: Ready now, and the not-ready taint is taken off
                    ready = {"type": "Ready", "status": "True", "lastTransitionTime": rfc3339(now)}
                    changes = {"status": {"conditions": [ready]}, "spec": {"taints": node["spec"].get("taints", [])}}
                    self.kube.patch(NODES, None, name, changes)
                else:
                    self.kube.put(NODES, node)

    def overtaken(self, uid: str, posted: float) -> list[str]:
        """The pods bound in the class of the endpoint incarnation `uid`'s pods after its POST, at a step before
        its last bind, that were created after its first: first in, first out they would have been bound after
        it, so they took GPUs it was counted on (none: it waited for what it was counted on, a node or a pod's
        going). By uid, as `early_cause`: a reposted endpoint's earlier incarnation is another's pods."""
        mine = [(t, p) for t, p in self.binds if p.uid == uid and t >= posted]
        if not mine:
            return []
        first, last = min(p.queued for _, p in mine), max(t for t, _ in mine)
        classes = {p.gpu_class for _, p in mine}
        return [
            f"{p.key}@{p.node}"
            for t, p in self.binds
            if posted <= t < last and p.uid != uid and p.gpu_class in classes and p.queued > first
        ]

    def early_cause(self, uid: str, posted: float, ready: float) -> tuple[str, str, float | None]:
        """What served the last pod of the endpoint incarnation `uid` (a reposted endpoint's name is another's
        too) bound between its POST and its Ready, that pod's node and, where it was ordered, its delay drawn:
        the node its 202 was promised on, or capacity the answer knew of (an order in flight, a GPU free), or
        could not."""
        mine = [(t, p) for t, p in self.binds if p.uid == uid and posted <= t <= ready]
        if not mine:
            return "not bound", "", None
        pod = max(mine, key=lambda b: b[0])[1]
        delay = self.orders[pod.node][1] if pod.node in self.orders else None
        return self._served_by(uid, posted, pod), pod.node, delay

    def _served_by(self, uid: str, posted: float, pod: Pod) -> str:
        """The kind of capacity `pod` of the incarnation `uid` (POSTed at `posted`) was bound on (`early_cause`)."""
        if pod.node in self.orders:
            ordered, _, wanted = self.orders[pod.node]
            if ordered < posted:
                return "an order in flight at the answer"
            if any(u == uid for u, _ in wanted):
                return "its own order"
            if all(queued < pod.queued for _, queued in wanted):
                return "an order for pods queued ahead of it"
            return "an order for pods queued after it"
        if self.arrived.get(pod.node, 0.0) > posted:
            return "a node nobody ordered, joined later"
        taken = {g for a in pod.held for g in a.gpus}
        held = any(
            q.node == pod.node and q.bound_at <= posted and (q.gone_at is None or q.gone_at > posted)
            and taken & {g for a in q.held for g in a.gpus}
            for _, q in self.binds if q is not pod
        )  # fmt: skip
        return "a GPU freed after the answer" if held else "a GPU free at the answer"

    def _note(self, now: float, event: str) -> None:
        if self.journal is not None:
            stamp = time.strftime("%H:%M:%S", time.gmtime(now))
            self.journal.write(f"{stamp}.{int(now * 1000) % 1000:03d} {event}\n")

    def _report(self, now: float) -> None:
        """Pod objects and each Deployment's counts, as the kubelet and the Deployment controller write them."""
        for key in [k for k in self._written if k not in self.pods]:
            namespace, name = key.split("/", 1)
            self.kube.delete(PODS, namespace, name)
            del self._written[key]
        for key, pod in self.pods.items():
            state = (pod.node, pod.ready)
            if self._written.get(key) == state:
                continue
            status = pod_status(pod.node, pod.ready)
            if key in self._written:
                bound = {"metadata": pod.recorded(), "spec": {"nodeName": pod.node}, "status": status}
                self.kube.patch(PODS, pod.namespace, pod.name, bound)
            else:
                self.kube.put(PODS, {"apiVersion": "v1", "kind": "Pod", **pod.obj(), "status": status})
            self._written[key] = state
        shared = {
            (p.node, i) for p in self.pods.values() if p.node for a in p.held if a.sharing == "kai" for i in a.gpus
        }
        for node, index in shared - self.reserved:
            self.kube.put(PODS, reservation_pod(node, index))
        for node, index in self.reserved - shared:
            self.kube.delete(PODS, RESERVATIONS, reservation_name(node, index))
        self.reserved = shared
        for d in self.kube.all(DEPLOYMENTS):
            meta = d["metadata"]
            mine = [p for p in self.pods.values() if p.namespace == meta["namespace"] and p.deployment == meta["name"]]
            status = {"replicas": len(mine), "readyReplicas": sum(p.ready for p in mine)}
            if {k: (d.get("status") or {}).get(k) for k in status} != status:
                self.kube.patch(DEPLOYMENTS, meta["namespace"], meta["name"], {"status": status})


def _packed(node: NodeGpus, pod: Mapping[str, Any]) -> tuple[list[Allocation], int] | None:
    """Where a pod that asks for a share of GPU memory (KAI `gpu-memory` or `gpu-fraction`, HAMi
    `gpumem`) is put: binpacked, the GPUs with the least memory left that hold its share, as KAI
    Scheduler's default placement strategy does and HAMi does for the pods that ask for it (EGS's do:
    `hami.io/gpu-scheduler-policy`), with the memory it leaves free on them (the tightest node is
    chosen by it); None for any other pod (first fit)."""
    asked = asked_of(pod)
    share = kai_share(pod)
    sharing = "kai"
    if share is None and HAMI_GPU_MEMORY in asked and node.sharing != "timeslice":
        share, sharing = (max(1, asked.get("nvidia.com/gpu", 1)), asked[HAMI_GPU_MEMORY], 0.0), "hami"
    if share is None:
        return None
    devices, mib, fraction = share
    room = [(g.free_mib, g.index, mib or int(g.vram_mib * fraction)) for g in node.gpus if not g.whole]
    tightest = sorted((free, index, need) for free, index, need in room if 0 < need <= free)[:devices]
    taken = [Allocation(node.node, (index,), need, sharing=sharing, owner="foreign") for _, index, need in tightest]
    return taken, sum(free - need for free, _, need in tightest)


def _units(taken: list[Allocation]) -> int:
    return sum(a.count if a.mig else len(a.gpus) for a in taken)


def _asked_units(pod: Mapping[str, Any]) -> int:
    """Devices a pod asks for: GPUs, MIG instances or partitions, or KAI's devices."""
    asked = {k: v for k, v in asked_of(pod).items() if k != HAMI_GPU_MEMORY}
    kai = kai_share(pod)
    return sum(asked.values()) or (kai[0] if kai else 0)


def _selects(pod: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """The pod's node selector and required node affinity accept a node with `labels`."""
    spec = pod.get("spec") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not affinity:
        return True

    return any(all(_matches(e, labels) for e in t.get("matchExpressions") or ()) for t in affinity["nodeSelectorTerms"])


def _preferred(pod: Mapping[str, Any], labels: Mapping[str, str]) -> int:
    """The weight of the pod's preferred node affinity terms a node with `labels` matches (kube-scheduler's
    NodeAffinity score)."""
    affinity = ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
    terms = affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or ()
    return sum(t["weight"] for t in terms if all(_matches(e, labels) for e in t["preference"]["matchExpressions"]))


def _matches(e: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op, values = e["key"], e["operator"], e.get("values") or ()
    return {
        "In": key in labels and labels[key] in values,
        "NotIn": labels.get(key) not in values,
        "Exists": key in labels,
        "DoesNotExist": key not in labels,
    }[op]


def _tolerates(pod: Mapping[str, Any], node: NodeGpus) -> bool:
    fields = ("key", "operator", "value", "effect")
    tolerations = [
        Toleration(**{k: t[k] for k in fields if k in t}) for t in (pod.get("spec") or {}).get("tolerations") or ()
    ]
    return all(
        any(t.tolerates(taint) for t in tolerations)
        for taint in node.taints
        if taint.effect in ("NoSchedule", "NoExecute")
    )


# -- what is measured ---------------------------------------------------------------------------


@dataclass
class Promised:
    """A 202's promise, scored once per incarnation (uid): an endpoint deleted and posted again is another
    endpoint, whose promise neither replaces its first incarnation's nor is read from that one's status."""

    key: str
    """The endpoint (namespace/name)."""
    posted: float
    eta: float
    """The ETA the 202 answered."""
    last: float
    """The ETA its status last showed before it was Ready (revised earlier or later)."""
    ready: float | None = None
    median: float | None = None
    """The median the same ETA rule gave when it answered (`answered`): the promise less this is the
    slack its quantile alone leaves."""
    cause: tuple[str, str, float | None] | None = None
    """What served it, the node and the delay drawn for it if ordered (`Play.early_cause`), once Ready."""
    law: tuple[float, ...] = ()
    """When its queue would serve had the delays their own law (`answered`): each percent's middle
    quantile, equally likely points that `least_mean_slack` bounds the slack of any promise from."""


@dataclass
class Tally:
    promises: dict[str, Promised] = field(default_factory=dict)
    """Incarnation (uid) -> its 202's promise."""
    posted: dict[str, float] = field(default_factory=dict)
    incarnation: dict[str, str] = field(default_factory=dict)
    """Endpoint (namespace/name) -> the uid its last answered POST created: a status of another is not read."""
    ready_at: dict[str, float] = field(default_factory=dict)
    answered_201: set[str] = field(default_factory=set)
    demoted: set[str] = field(default_factory=set)
    """Of the endpoints answered 201 and not deleted since, those a status reported Provisioning."""
    answers_201: int = 0
    demotions: int = 0
    """201s answered, and reported Provisioning, over the run: a delete does not take one back."""
    changed: set[str] = field(default_factory=set)
    """Endpoints whose spec changed or that were deleted (their replicas may move)."""
    ready_pods: dict[str, set[str]] = field(default_factory=dict)
    lost_pods: set[str] = field(default_factory=set)
    """Pods on a node that was lost, until a pod of that name is Ready again: their going is no disruption."""
    lost_capacity: set[str] = field(default_factory=set)
    """Endpoints with capacity on a node that was lost (a pod bound there, or a 201 answered there): a 201 among
    them may wait again."""
    disruptions: int = 0
    consolidations: int = 0
    exits: int = 0
    unexplained: int = 0
    """A 202's ETA moved later with no PromiseKept condition False saying why."""
    off_answer: int = 0
    """Pods of a 201 bound to another node than the API answered it on (the workloads carry no per-node pin)."""
    bound: set[str] = field(default_factory=set)
    """The pods of 201s whose node was compared with the answer."""
    served_otherwise: int = 0
    """201s Ready for the first time in another variant or class than answered (their spec unchanged)."""
    doubled: set[str] = field(default_factory=set)
    """Endpoints POSTed twice at once, one of whose POSTs was answered."""
    answered_twice: int = 0
    """POSTs of such a pair answered 201 or 202 after the other was: Kubernetes' create is not idempotent."""

    def drop_waiting(self, key: str, now: float) -> None:
        """Drop the promise of endpoint `key` not Ready yet (deleted, or its capacity lost) and not due yet:
        nothing is left to hold it to. A promise of an incarnation that was Ready before stays scored, and so
        does one already past its ETA (broken before the delete: dropped, a late 202 deleted went unseen)."""
        self.promises = {
            uid: p for uid, p in self.promises.items() if p.key != key or p.ready is not None or p.eta < now
        }


def promise_figures(promises: Iterable[Promised], factor: float) -> dict[str, Any]:
    """The 202s' figures (`etas_kept`, `eta_mean_slack_s` and the same against the last ETA shown), each
    incarnation's promise once, and of the first promises kept the slack their quantile alone leaves
    (`eta_quantile_slack_s`: the promise less the median then); slack in uncompressed seconds."""
    scored = list(promises)
    figures: dict[str, Any] = {"answered_202": len(scored)}
    for suffix, etas in (("", [p.eta for p in scored]), ("_last", [p.last for p in scored])):
        slack = [(eta - p.ready) * factor for p, eta in zip(scored, etas, strict=True) if p.ready and p.ready <= eta]
        figures[f"etas_kept{suffix}"] = round(len(slack) / len(scored), 3) if scored else None
        figures[f"eta_mean_slack{suffix}_s"] = round(sum(slack) / len(slack), 1) if slack else None
    kept = [(p, p.median, p.ready) for p in scored if p.median is not None and p.ready and p.ready <= p.eta]
    spread = [(p.eta - median) * factor for p, median, _ in kept]
    figures["eta_quantile_slack_s"] = round(sum(spread) / len(spread), 1) if spread else None
    early: dict[str, list[tuple[str, float | None, float]]] = {}
    for p, median, ready in kept:
        cause, node, delay = p.cause or ("not traced", "", None)
        early.setdefault(cause, []).append((node, delay, (median - ready) * factor))
    # Promises served by one node share its draw: the nodes say how many draws a mean stands on, and the delays
    # drawn how much of it is their luck (against the prior's median) rather than the rule's bias.
    figures["eta_early_by_cause"] = {cause: _early_figures(e) for cause, e in sorted(early.items())}
    return figures | _bound_figures([p for p in scored if p.law], factor)


KEPT = 0.95
"""The share of first promises the issue asks kept."""


def _bound_figures(scored: Sequence[Promised], factor: float) -> dict[str, Any]:
    """What the first promises' slack is bounded by, from each answer's law (`Promised.law`): knowing the true
    delay law, the queue, the orders and the nodes registered at each answer, but not the later draws or POSTs,
    `eta_bound_slack_s` is the least mean slack over those kept that any rule keeping `KEPT` of them in
    expectation leaves (`least_mean_slack`); `eta_bound_q95_slack_s` the same for the rule that promises each
    answer the point of its own law that keeps 0.95 of it (`_slack`), and `eta_bound_q95_kept`,
    `eta_bound_q95_realized_slack_s` that rule's promises scored against this run's Ready times (later POSTs
    and draws make them kept more, with more slack). Uncompressed seconds; all None without a law."""
    if not scored:
        return dict.fromkeys(("eta_bound_slack_s", "eta_bound_q95_slack_s", "eta_bound_q95_kept",
                              "eta_bound_q95_realized_slack_s"))  # fmt: skip
    # Each answer promised the point that keeps KEPT of its law (all laws have as many points, ascending).
    m = round(KEPT * len(scored[0].law))
    kept = [(p.law[m - 1] - p.ready) * factor for p in scored if p.ready and p.ready <= p.law[m - 1]]
    own = sum(_slack(p.law, m) for p in scored) / (len(scored) * m / len(scored[0].law))
    return {
        "eta_bound_slack_s": round(least_mean_slack([p.law for p in scored], KEPT) * factor, 1),
        "eta_bound_q95_slack_s": round(own * factor, 1),
        "eta_bound_q95_kept": round(len(kept) / len(scored), 3),
        "eta_bound_q95_realized_slack_s": round(sum(kept) / len(kept), 1) if kept else None,
    }


def _slack(law: Sequence[float], m: int) -> float:
    """The expected slack of promising the m-th point of `law` (ascending, equally likely): each of the m points
    kept by it, its distance to it, over all the points."""
    return sum(law[m - 1] - t for t in law[:m]) / len(law) if m else 0.0


def least_mean_slack(laws: Sequence[Sequence[float]], kept: float) -> float:
    """The least mean slack over the promises kept of any rule that promises each law (equally likely ready
    times, ascending) a time of its own and keeps the share `kept` of them in expectation. Promising a law's m-th point
    keeps m of its points with the slack `_slack`; the rule spends its misses where each saves the most slack:
    along each law's lower convex hull of (points kept, slack), the segments that cost the least slack a
    point kept first, until `kept` of all points are kept (the last one in part: a promise drawn between two
    points)."""
    segments: list[tuple[float, float, float]] = []
    for law in laws:
        n = len(law)
        hull = [(0.0, 0.0)]
        for m in range(1, n + 1):
            point = (m / n, _slack(law, m))
            while len(hull) >= 2 and _turns_down(hull[-2], hull[-1], point):
                hull.pop()
            hull.append(point)
        segments += [((s1 - s0) / (k1 - k0), k1 - k0, s1 - s0) for (k0, s0), (k1, s1) in itertools.pairwise(hull)]
    need, slack = kept * len(laws), 0.0
    for _, points, cost in sorted(segments):
        take = min(1.0, need / points)
        slack, need = slack + take * cost, need - take * points
        if need <= 1e-12:
            break
    return slack / (kept * len(laws))


def _turns_down(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> bool:
    """Whether `b` lies on or above the line from `a` to `c` (it is not on the lower convex hull)."""
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]) <= 0


def _early_figures(served: Sequence[tuple[str, float | None, float]]) -> dict[str, Any]:
    """Of (node, its delay drawn if ordered, seconds Ready before the median) per promise: how many promises
    and nodes, the mean seconds early, and the mean delay drawn where the nodes were ordered."""
    delays = [d for _, d, _ in served if d is not None]
    figures = {
        "promises": len(served),
        "nodes": len({node for node, _, _ in served}),
        "mean_early_s": round(sum(s for _, _, s in served) / len(served), 1),
    }
    return figures | ({"mean_delay_drawn_s": round(sum(delays) / len(delays), 1)} if delays else {})


ANSWERED = re.compile(
    r"POST (\S+): \w+, ETA in \S+ s \(at ([\d.]+), its median at ([\d.]+)\).*?(?:; law ([\d.]+) \+ \[([^\]]*)\])?$",
    re.MULTILINE,
)
"""`egs api`'s debug line for a POST it answered 202 (`autoscaler.adapters.api`)."""


def answered(api_log: str) -> dict[tuple[str, int], tuple[float, tuple[float, ...]]]:
    """(endpoint, the ETA answered: to the second, rounded up as written) -> the median the same ETA rule gave
    it then, and the law of when its queue serves (`autoscaler.admission.waiting_law`, in its clock; () where
    the line has none), read from `egs api`'s debug log."""
    return {
        (m[1], math.ceil(float(m[2]))): (
            float(m[3]),
            tuple(float(m[4]) + float(t) for t in m[5].split(",")) if m[4] else (),
        )
        for m in ANSWERED.finditer(api_log)
    }


def workload_cost(d: Mapping[str, Any], catalog: Catalog) -> float:
    """$/h of a Deployment's replicas at the shape recorded on it (`scheduler.manifests`)."""
    return serving_cost(read_owned([d], catalog), catalog)


def _shape(d: Mapping[str, Any]) -> tuple[str, str]:
    a = d["metadata"].get("annotations") or {}
    return a.get("egs.io/variant", ""), a.get("egs.io/gpu-class", "")


def settled_figures(kube: KubeCluster, catalog: Catalog) -> dict[str, Any]:
    statuses: dict[str, dict[str, Any]] = {
        f"{e['metadata']['namespace']}/{e['metadata']['name']}": e["status"]
        for e in kube.all(ENDPOINTS)
        if isinstance(e.get("status"), dict)
    }
    intended = sum(float(s.get("costPerHour") or 0.0) for s in statuses.values())
    applied, stale = 0.0, 0
    by_endpoint: dict[str, list[dict[str, Any]]] = {}
    for d in kube.all(DEPLOYMENTS):
        a = d["metadata"].get("annotations") or {}
        if "egs.io/request-name" in a:
            applied += workload_cost(d, catalog)
            by_endpoint.setdefault(f"{d['metadata']['namespace']}/{a['egs.io/request-name']}", []).append(d)
    for key, workloads in by_endpoint.items():
        # An endpoint may run replicas of several shapes (incumbents kept, new ones elsewhere): its workloads
        # count, those of the status's shape first, until they hold its desired replicas; the rest are stale.
        status = statuses.get(key) or {}
        shape = (status.get("variant"), status.get("gpuClass"))
        workloads.sort(key=lambda d: (_shape(d) != shape, -int((d.get("spec") or {}).get("replicas", 0))))
        held = 0
        for d in workloads:
            if status and held < int(status.get("desiredReplicas") or 0):
                held += int((d.get("spec") or {}).get("replicas", 0))
                continue
            stale += 1
            log(f"stale: {d['metadata']['namespace']}/{d['metadata']['name']} ({d['spec'].get('replicas')} x "
                f"{_shape(d)}; its endpoint: {status.get('desiredReplicas')} x {shape})")  # fmt: skip
    return {"applied": applied, "intended": intended, "stale": stale, "statuses": statuses}


# -- the run --------------------------------------------------------------------------------------


@dataclass
class Run:
    args: argparse.Namespace
    workdir: Path
    kube: KubeCluster
    play: Play
    prometheus: PrometheusStandIn
    api: str
    controller_command: list[str]
    controller: subprocess.Popen[bytes]
    t0: float
    tally: Tally = field(default_factory=Tally)
    session: requests.Session = field(default_factory=requests.Session)
    tick_s: list[float] = field(default_factory=list)
    """How long each step of the play took (real seconds)."""
    loops: tuple[float, float] = (0.0, 0.0)
    """The controller's reconcile seconds (real) and loops, as it last exported them."""
    loops_before: tuple[float, float] = (0.0, 0.0)
    """The same of the controller replicas that ran before it (`hand_over`)."""
    metrics_url: str = ""
    script_rng: random.Random = field(default_factory=random.Random)
    """Draws what the script leaves to the moment (which Ready endpoints change class)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    """The tally, between a burst's POSTs and the play's steps."""
    relabelled: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    """Node -> (label, its value before) while it cannot be read (`unreadable_label`)."""
    cordoned: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Node -> its taints before, while it is cordoned (`cordon`)."""
    last_read: float = 0.0
    """When the play last read the endpoints: an endpoint first read Ready became Ready since then."""
    replicas: int = 1
    """Controller replicas started so far (a handover starts one): each has its own token (`replica_kubeconfig`)."""
    handed_over: float | None = None
    """When the old replica got its SIGTERM in the handover."""
    other_apis: tuple[str, ...] = ()
    """The other `egs api` replicas (`Shape.api_replicas`): each POST goes to the next in turn."""
    spread: itertools.count[int] = field(default_factory=itertools.count)
    restart_at: float | None = None
    """When the kubelet restarts the controller the play killed (`kill_controller`); None: not killed."""

    def minutes(self) -> float:
        return (time.time() - self.t0) * self.factor / MINUTE

    def at(self, minute: float) -> float:
        return self.t0 + minute * MINUTE / self.factor

    @property
    def factor(self) -> float:
        return float(self.args.factor)

    def tick(self) -> None:
        now = time.time()
        self.play.step(now)
        self.tick_s.append(time.time() - now)
        if self.controller.poll() is not None and self.restart_at is None:
            self.tally.exits += 1
            log(f"the controller exited with {self.controller.returncode}: restarted")
            self.controller = _start(self.controller_command, self.workdir / "controller.log")
        elif self.restart_at is not None and now >= self.restart_at:
            self.restart_at = None
            self.controller = _start(self.controller_command, self.workdir / "controller.log")
            log(f"minute {self.minutes():.1f}: the killed controller restarted in its pod")
        with self.lock:
            self._observe(now)

    def hand_over(self) -> None:
        """A rolling update of the controller: a new replica starts, the old one is stopped (SIGTERM: it
        hands the Lease back after its loop) and the new one leads from what the cluster holds."""
        while self.restart_at is not None:  # a replica killed just before: the kubelet restarts it first
            self.tick()
            time.sleep(self.args.tick_s)
        self.fold_loops()
        old, port = self.controller, free_port()
        self.replicas += 1
        command = list(self.controller_command)
        command[command.index("--kubeconfig") + 1] = replica_kubeconfig(self.kube, self.workdir, self.replicas)
        command[command.index("--identity") + 1] = f"churn-controller-{self.replicas}"
        self.controller_command = [*command[:-1], f"127.0.0.1:{port}"]
        self.metrics_url = f"http://127.0.0.1:{port}/metrics"
        own = os.getpriority(os.PRIO_PROCESS, 0)
        starting = STARTING_NICE if own < STARTING_NICE and may_renice(own) else 0
        self.controller = _start(self.controller_command, self.workdir / "controller.log", nice=starting)
        # Kubernetes' default rolling update (maxSurge and maxUnavailable 25% of one replica: one more, none
        # less) stops the old pod once the new one is Ready (its /readyz: its first loop, a follower's, ran);
        # stopped at once, the old one handed the Lease back while the new one still started, and nobody led.
        ready_by = time.monotonic() + HANDOVER_S
        while not answers(f"http://127.0.0.1:{port}/readyz"):
            if self.controller.poll() is not None or time.monotonic() > ready_by:
                raise StackError(f"the new controller replica was not Ready in {HANDOVER_S:.0f} s (controller.log)")
            self.tick()
            time.sleep(self.args.tick_s)
        old.terminate()
        self.handed_over = time.time()
        stopped_by = time.monotonic() + HANDOVER_S
        while old.poll() is None:
            if time.monotonic() > stopped_by:
                old.kill()  # as the kubelet does once terminationGracePeriodSeconds has passed
            self.tick()
            time.sleep(self.args.tick_s)
        if starting:  # it leads now: back to the play's own niceness, as the old replica ran
            renice(self.controller.pid, own)
        log(f"minute {self.minutes():.1f}: a new controller replica took over (the old one ended {old.returncode})")

    def kill_controller(self) -> None:
        """The leading controller killed at once (SIGKILL: the OOM killer, a node's kernel, a crash), wherever
        its loop is, its Lease not handed back; the kubelet restarts its container in the same pod after its
        back-off, under the same identity (`POD_NAME`), so it leads again at once from what the cluster holds."""
        self.fold_loops()
        self.controller.kill()
        self.controller.wait()
        self.restart_at = time.time() + RESTART_BACKOFF_S / self.factor
        log(f"minute {self.minutes():.1f}: the controller killed (SIGKILL)")

    def burst(self, bodies: list[tuple[tuple[str, dict[str, Any]], bool]], kills: Sequence[float] = ()) -> None:
        """POST `bodies` ((namespace, body), twice), each namespace's team at once, while the cluster runs;
        those marked twice twice at once (a client that retries on its own timeout, a double submit); the
        controller killed once each share of `kills` of the POSTs is answered and it runs again (restarted after
        a kill before: a kill then would only lengthen its back-off)."""
        kills = sorted(kills)
        with ThreadPoolExecutor(max(1, len({namespace for (namespace, _), _ in bodies}))) as pool:
            posts = [
                pool.submit(self.post, namespace, body, twice)
                for (namespace, body), twice in bodies
                for _ in range(2 if twice else 1)
            ]
            while True:
                done = sum(p.done() for p in posts)
                if kills and done >= kills[0] * len(posts) and self.restart_at is None:
                    kills.pop(0)
                    self.kill_controller()
                if done == len(posts):
                    if kills:
                        log(f"minute {self.minutes():.1f}: {len(kills)} kill(s) not played: the burst ended first")
                    break
                self.tick()
                time.sleep(self.args.tick_s)
            for p in posts:
                p.result()

    def _observe(self, now: float) -> None:
        tally = self.tally
        read, since = time.time(), self.last_read or now
        self.last_read = read
        answered: dict[str, dict[str, Any]] = {}  # the 201s held to their answer; read once a pod is bound
        excused = tally.changed | tally.demoted | tally.lost_capacity
        for e in self.kube.all(ENDPOINTS):
            key, uid = f"{e['metadata']['namespace']}/{e['metadata']['name']}", str(e["metadata"].get("uid"))
            if tally.incarnation.get(key, uid) != uid:
                continue  # a read of an incarnation deleted since: its status is not the repost's
            status: dict[str, Any] = e["status"] if isinstance(e.get("status"), dict) else {}
            promise = tally.promises.get(uid)  # this incarnation's, if a 202
            if status.get("phase") == "Ready":
                held = key not in tally.changed and key not in tally.lost_capacity
                if key not in tally.ready_at and key in tally.answered_201 and held:
                    self._served(key, e, status)
                tally.ready_at.setdefault(key, (since + read) / 2)  # the middle of when it can have become Ready
                if promise is not None and promise.ready is None:
                    promise.ready = tally.ready_at[key]
            elif promise is not None and promise.ready is None and status.get("estimatedReadyTime"):
                eta = parse_time(str(status["estimatedReadyTime"]))
                if eta > promise.last + 1.0 and not _said_why(status):
                    tally.unexplained += 1
                    log(f"promise revised without a reason: {key} to {status['estimatedReadyTime']}: {status}")
                promise.last = eta
            demoted = status.get("phase") == "Provisioning" and key not in excused
            if key in tally.answered_201 and demoted:
                tally.demoted.add(key)
                tally.demotions += 1
                self._log_demoted(key, status)
            if key in tally.answered_201 and key not in excused:
                answered[key] = e
        for pod in self.play.pods.values():
            if pod.node and pod.endpoint in answered and pod.key not in tally.bound:
                tally.bound.add(pod.key)
                answer = _answer(answered[pod.endpoint])
                nodes = _answered_nodes(answer)
                if pod.node not in nodes:
                    tally.off_answer += 1
                    classes = sorted({p.get("gpuClass") for p in answer.get("placements") or ()})
                    log(
                        f"off its answer: {pod.key}@{pod.node} ({pod.gpu_class}), answered {sorted(nodes)} {classes}; "
                        f"bound there: {self._bound_on(nodes)}"
                    )
        ready: dict[str, set[str]] = {}
        for pod in self.play.pods.values():
            if pod.ready:
                ready.setdefault(pod.endpoint, set()).add(pod.key)
        for endpoint, before in tally.ready_pods.items():
            gone = before - ready.get(endpoint, set()) - tally.lost_pods
            if gone and endpoint not in tally.changed:
                if self._consolidated(endpoint):
                    tally.consolidations += len(gone)
                else:
                    tally.disruptions += len(gone)
                    now_at = sorted(f"{p.name}@{p.node or 'pending'}" for p in self.play.pods.values()
                                    if p.endpoint == endpoint)  # fmt: skip
                    log(f"disrupted: {endpoint} lost {sorted(gone)} at minute {self.minutes():.1f}; now {now_at}")
        tally.ready_pods = ready
        tally.lost_pods -= {key for keys in ready.values() for key in keys}

    def _served(self, key: str, endpoint: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        """A 201 Ready for the first time: in a variant and class it was answered (its replicas may have been
        answered in several: the status names one), or otherwise (counted)."""
        answer = _answer(endpoint)
        shapes = {(answer.get("variant"), answer.get("gpuClass"))}
        shapes |= {(p.get("variant"), p.get("gpuClass")) for p in answer.get("placements") or ()}
        if (status.get("variant"), status.get("gpuClass")) not in shapes:
            self.tally.served_otherwise += 1
            pods = sorted(f"{p.name}@{p.node}" for p in self.play.pods.values() if p.endpoint == key)
            log(f"201 served otherwise: {key} answered {answer}, Ready as {status.get('variant')} on "
                f"{status.get('gpuClass')}: {status.get('conditions')}; pods {pods}")  # fmt: skip

    def _log_demoted(self, key: str, status: Mapping[str, Any]) -> None:
        """A 201 reported Provisioning: what it was promised, what it is told now, and where its pods are."""
        pods = [f"{p.name}@{p.node or 'pending'}{'' if p.ready else ' (not Ready)'}"
                for p in self.play.pods.values() if p.endpoint == key]  # fmt: skip
        said = [f"{c.get('type')}={c.get('status')} {c.get('reason')}: {c.get('message')}"
                for c in status.get("conditions") or () if c.get("status") == "False"]  # fmt: skip
        log(f"demoted 201: {key} at minute {self.minutes():.1f}: promise {status.get('promise')}, now "
            f"{status.get('variant')} on {status.get('gpuClass')}; {said}; pods {pods}")  # fmt: skip
        # What the API answered (annotated on the endpoint when it created it), and who holds those nodes now.
        answered = _answer(self.kube.get(ENDPOINTS, *key.split("/", 1)) or {})
        log(f"  answered {answered}; bound on its nodes: {self._bound_on(_answered_nodes(answered))}")

    def _bound_on(self, nodes: set[str]) -> list[str]:
        """The pods bound on `nodes`, with when: who took what a 201 was answered."""
        return sorted(f"{p.key}@{p.node} (bound at minute {(p.bound_at - self.t0) * self.factor / MINUTE:.1f})"
                      for p in self.play.pods.values() if p.node in nodes)  # fmt: skip

    def _consolidated(self, endpoint: str) -> bool:
        namespace, name = endpoint.split("/", 1)
        return any(
            "onsolidat" in str(e.get("reason", ""))
            and (e.get("regarding") or {}).get("name") == name
            and (e.get("regarding") or {}).get("namespace") == namespace
            for e in self.kube.all(EVENTS)
        )

    def post(self, namespace: str, body: dict[str, Any], twice: bool = False) -> None:
        """POST one endpoint and tally its answer; of a pair POSTed at once (`twice`), the one answered 201 or
        202 is tallied, the other must be refused 409 (`Tally.answered_twice` counts it where it was not)."""
        url = f"{self.answering()}/v1/namespaces/{namespace}/endpoints"
        for _ in range(5):  # as a client does on 503 (the API server failed it) or 429, after Retry-After
            answer = self.session.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
            if answer.status_code not in (429, 503):
                break
            log(f"POST {namespace}/{body['name']}: {answer.status_code}, tried again")
            time.sleep(min(float(answer.headers.get("Retry-After", 1)), 1.0))
        key = f"{namespace}/{body['name']}"
        with self.lock:
            if twice and answer.status_code == 409:
                return  # the other POST of the pair created it
            if twice and key in self.tally.doubled:
                self.tally.answered_twice += 1
                log(f"POST {key} answered twice: {answer.status_code} {answer.text[:300]}")
                return
            if twice:
                self.tally.doubled.add(key)
            self.tally.posted[key] = time.time()
            self.tally.ready_at.pop(key, None)
            self.tally.changed.discard(key)  # a new endpoint of that name: unchanged from here on
            self.tally.lost_capacity.discard(key)
            if answer.status_code in (201, 202):
                self.prometheus.demand[body["model"]] += DEMAND_RPS
                created = self.kube.get(ENDPOINTS, namespace, body["name"]) or {}
                self.tally.incarnation[key] = str((created.get("metadata") or {}).get("uid"))
            if answer.status_code == 201:
                self.tally.answered_201.add(key)
                self.tally.answers_201 += 1
            elif answer.status_code == 202:
                at = parse_time(answer.json()["estimatedReadyTime"])
                self.tally.promises[self.tally.incarnation[key]] = Promised(key, self.tally.posted[key], at, at)
            else:
                log(f"POST {key}: {answer.status_code} {answer.text[:200]}")

    def answering(self) -> str:
        """The `egs api` replica the next request goes to: each in turn."""
        apis = (self.api, *self.other_apis)
        return apis[next(self.spread) % len(apis)]

    def delete(self, namespace: str, name: str, model: str) -> None:
        model = ((self.kube.get(ENDPOINTS, namespace, name) or {}).get("spec") or {}).get("model", model)
        url = f"{self.answering()}/v1/namespaces/{namespace}/endpoints/{name}"
        answer = self.session.delete(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        if answer.status_code != 204:
            log(f"DELETE {namespace}/{name}: {answer.status_code} {answer.text[:200]}")
        else:
            self.prometheus.demand[model] = max(0.0, self.prometheus.demand[model] - DEMAND_RPS)
        key = f"{namespace}/{name}"
        self.tally.changed.add(key)
        self.tally.drop_waiting(key, time.time())
        self.tally.ready_at.pop(key, None)
        self.tally.answered_201.discard(key)
        self.tally.demoted.discard(key)
        self.tally.ready_pods.pop(key, None)

    def until(self, minute: float) -> None:
        while time.time() < self.at(minute):
            self.tick()
            time.sleep(self.args.tick_s)
            if len(self.tick_s) % 20 == 0:
                self.sample_loop()

    def metrics(self, timeout: float = 2.0) -> list[Metric]:
        """The controller's own /metrics, parsed (none while it does not answer)."""
        try:
            text = self.session.get(self.metrics_url, timeout=timeout).text
        except requests.RequestException:
            return []
        return list(text_string_to_metric_families(text))

    def fold_loops(self) -> None:
        """The stopping replica's loops so far into `loops_before`: the next one's /metrics counts from 0."""
        self.sample_loop()
        self.loops_before = (self.loops_before[0] + self.loops[0], self.loops_before[1] + self.loops[1])
        self.loops = (0.0, 0.0)

    def sample_loop(self, families: Iterable[Metric] | None = None) -> None:
        """The controller's reconcile durations so far (sum, count), from `families` (its /metrics read now
        when not given)."""
        for family in self.metrics() if families is None else families:
            if family.name != LOOP:
                continue
            found = {x.name: x.value for x in family.samples}
            if f"{LOOP}_count" in found:
                self.loops = (found[f"{LOOP}_sum"], found[f"{LOOP}_count"])


def _said_why(status: Mapping[str, Any]) -> bool:
    """Whether the status says why its promise was revised: PromiseKept False, with a reason."""
    return any(c.get("type") == PROMISE_KEPT and c.get("status") == "False" and c.get("reason")
               for c in status.get("conditions") or ())  # fmt: skip


def _answer(endpoint: Mapping[str, Any]) -> dict[str, Any]:
    """What the API answered, as it annotated the endpoint when it created it."""
    annotations = (endpoint.get("metadata") or {}).get("annotations") or {}
    answer: dict[str, Any] = json.loads(annotations.get(PROMISE_ANNOTATION, "{}"))
    return answer


def _answered_nodes(answer: Mapping[str, Any]) -> set[str]:
    """The nodes a 201 was answered on."""
    return {w.get("node") for p in answer.get("placements") or () for w in p.get("workers") or ()}


def replica_kubeconfig(kube: KubeCluster, workdir: Path, replica: int) -> str:
    """Controller replica `replica`'s kubeconfig: a token of its own tells its requests from the other
    replica's and the API's."""
    return str(kube.kubeconfig(workdir / f"controller-{replica}.kubeconfig", token=f"controller-{replica}"))


def handover_gaps(run: Run) -> dict[str, float | None]:
    """Across the controller's handover, in uncompressed seconds (None without one): `handover_read_gap_s`, from
    the old replica's last read of the endpoints before its SIGTERM (a loop in flight then writes nothing) to the
    new replica's first, the time a change (a 202's pods turning Ready) may wait on the handover, a loop at most
    in steady state; and `handover_status_gap_s`, from
    the old replica's last status write to the new one's first, that and the quiet loops around it. Logged with
    the Lease's release and the new replica's claim, timed from the SIGTERM."""
    gaps: dict[str, float | None] = {"handover_read_gap_s": None, "handover_status_gap_s": None}
    if run.handed_over is None:
        return gaps
    old, new = f"Bearer controller-{run.replicas - 1}", f"Bearer controller-{run.replicas}"
    seen: dict[tuple[str, str], list[float]] = {}
    for r in run.kube.requests():
        token = next((v for k, v in r.headers.items() if k.lower() == "authorization"), "")
        at, plural = run.kube.emulator.arrived[r.id], r.resource.plural if r.resource else ""
        if token not in (old, new):
            continue
        listed = plural == "inferenceendpoints" and r.action == "LIST" and "limit" not in r.params  # not a watch's
        if listed and (token == new or at < run.handed_over):
            seen.setdefault((token, "read"), []).append(at)
        elif plural == "inferenceendpoints" and r.subresource == "status" and r.method == "PATCH":
            seen.setdefault((token, "status"), []).append(at)
        elif plural == "leases" and r.method in ("POST", "PATCH") and at >= run.handed_over:
            seen.setdefault((token, "lease"), []).append(at)

    def since(times: list[float] | None, pick: Any) -> str:
        return f"{(pick(times) - run.handed_over) * run.factor:+.1f} s" if times else "none"

    for what in ("read", "status"):
        before, after = seen.get((old, what)), seen.get((new, what))
        if before and after:
            gaps[f"handover_{what}_gap_s"] = round((min(after) - max(before)) * run.factor, 1)
    log(
        "handover, from the SIGTERM (uncompressed): the old replica's last read of the endpoints before it "
        f"{since(seen.get((old, 'read')), max)} and status write {since(seen.get((old, 'status')), max)}, its Lease "
        f"handed back {since(seen.get((old, 'lease')), max)}; the new replica's claim "
        f"{since(seen.get((new, 'lease')), min)}, first read {since(seen.get((new, 'read')), min)} and status write "
        f"{since(seen.get((new, 'status')), min)}"
    )
    return gaps


def _start(command: list[str], log_path: Path, nice: int = 0) -> subprocess.Popen[bytes]:
    """`egs <command>`, its niceness `nice` above this process's (19 at most) from its first instruction, so
    for every thread it starts too."""
    niced = ["nice", "-n", str(nice)] if nice else []
    return subprocess.Popen([*niced, sys.executable, "-m", "egs.cli", *command], stdout=subprocess.DEVNULL,
                            stderr=log_path.open("ab"))  # fmt: skip


def may_renice(nice: int) -> bool:
    """Whether this process may give a niced child back niceness `nice` (root, or RLIMIT_NICE up to it):
    where it may not, a replica started niced would lead niced, slower than the old one, so it is not niced."""
    return os.geteuid() == 0 or 20 - nice <= resource.getrlimit(resource.RLIMIT_NICE)[0]


def renice(pid: int, nice: int) -> None:
    """Each thread of `pid` at `nice` (Linux keeps a niceness per thread, and `setpriority` sets one)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):  # a thread that ended since it was listed
            os.setpriority(os.PRIO_PROCESS, int(task.name), nice)


def refuses_unloadable(workdir: Path, catalog: Catalog) -> bool:
    """`egs controller --once` given a registry with int8 from a 16-bit checkpoint exits 2, naming it."""
    raw = yaml.safe_load((REPO / "examples" / "models.yaml").read_text())
    raw["models"][0]["variants"].append({"name": "int8-unloadable", "precision": "int8"})
    bad = workdir / "unloadable-models.yaml"
    bad.write_text(yaml.safe_dump(raw))
    config = workdir / "unloadable.yaml"
    config.write_text(yaml.safe_dump({"models": str(bad)}))
    done = subprocess.run([sys.executable, "-m", "egs.cli", "controller", "--config", str(config), "--once"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    where = f"models[0].variants[{len(raw['models'][0]['variants']) - 1}]"
    return done.returncode == 2 and str(bad) in done.stderr and where in done.stderr


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=49, help="endpoints POSTed (default %(default)s)")
    parser.add_argument("--factor", type=float, default=20.0, help="time compression (default %(default)s)")
    parser.add_argument(
        "--settle", type=float, default=30.0, help="uncompressed minutes to settle at most (default %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="draws the fleet, the delays and the scenario (default %(default)s)"
    )
    parser.add_argument("--quick", action="store_true", help="16 endpoints, factor 40")
    parser.add_argument("--tick-s", type=float, default=0.25, help=argparse.SUPPRESS)
    knobs = parser.add_argument_group(
        "the scenario's shape (ranges LEAST-MOST, minutes uncompressed; the defaults are today's)"
    )
    for name, what in SHAPE_HELP.items():
        default = getattr(Shape(), name.replace("-", "_"))
        knobs.add_argument(f"--{name}", type=_knob(default), default=default, help=f"{what} ({_shown(default)})")
    args = parser.parse_args()
    if args.quick:
        args.endpoints, args.factor = 16, 40.0
    try:
        shape = Shape(**{name.replace("-", "_"): getattr(args, name.replace("-", "_")) for name in SHAPE_HELP})
    except ValueError as e:
        parser.error(str(e))
    rng = random.Random(args.seed)
    catalog = Catalog.load(prices=PRICES)
    workdir = Path(tempfile.mkdtemp(prefix="egs-churn-"))
    log(f"churn: {args.endpoints} endpoints, time compressed {args.factor:g}x, seed {args.seed}; logs in {workdir}")
    refused = refuses_unloadable(workdir, catalog)
    registry = compressed_registry(workdir / "models.yaml", args.factor, catalog)
    namespaces = teams(shape.namespaces)
    bodies = endpoint_bodies(args.endpoints, rng, "ep", namespaces)
    bodies += endpoint_bodies(LATE, random.Random(f"churn-late-{args.seed}"), "late", namespaces)
    nodes = fleet(catalog, rng, args.endpoints, shape)
    kind = FLEETS[shape.fleet]
    plan = script(args.seed, args.endpoints, shape, [n["metadata"]["name"] for n in nodes])
    log(f"shape: {shape}")
    log(f"script: {plan}")
    kube = KubeCluster().start()
    prometheus = PrometheusStandIn(
        dict.fromkeys(sorted({body["model"] for _, body in bodies}), 0.0), partial(kube.all, NODES)
    )
    kube.emulator.tokens[TOKEN] = ("churn", ())
    for verb in ("create", "get", "list", "delete"):
        kube.emulator.grants.add(("churn", verb, "*"))
    log(f"fleet: {', '.join(n['metadata']['name'] for n in nodes)}")
    late = {name for _, name in plan.late_fleet}
    at_start = [n for n in nodes if n["metadata"]["name"] not in late]
    for node in at_start:
        kube.put(NODES, node)
    others = occupying(at_start, shape.occupied, random.Random(f"churn-occupied-{args.seed}"))
    for other in others:
        kube.put(PODS, other)
    if others:
        log(f"occupied by another team: {', '.join(sorted({p['spec']['nodeName'] for p in others}))}")
    f = args.factor
    config = workdir / "egs.yaml"
    config.write_text(yaml.safe_dump({
        "models": str(workdir / "models.yaml"),
        "prices": PRICES,
        "sharing": dict(kind.sharing),
        "gpu_classes": {name: {"gpus_per_node": n, "policy": "static", "static_nodes": 0}
                        for name, n in kind.provisionable.items()},
        "eta": {"prior_delay_s": [d / f for d in shape.provision_s], "step_s": LOOP_S / f},
        "scaleDownStabilizationSeconds": 300.0 / f,
        "writeRetryDelaysSeconds": [d / f for d in Settings().write_retry_delays_s],
        **({"consolidation": {"enabled": True, "minSavingFraction": shape.consolidation,
                              "interval": CONSOLIDATION.interval_s / f}} if shape.consolidation else {}),
    }))  # fmt: skip
    kubeconfig = str(kube.kubeconfig(workdir / "kubeconfig"))  # the API's
    ports, metrics_port = [free_port() for _ in range(shape.api_replicas)], free_port()
    api_command = [
        "api", "--kubeconfig", kubeconfig, "--config", str(config),
        "--capacity-ttl", f"{CAPACITY_TTL_S / f:g}", "--prometheus", prometheus.url,
        # api.log says per POST what its answer came from (capacity, queues, orders), beside play.log.
        "--log-level", "debug",
    ]  # fmt: skip
    controller_command = [
        "controller", "--kubeconfig", replica_kubeconfig(kube, workdir, 1), "--config", str(config),
        "--prometheus", prometheus.url,
        # Its pod's name (`POD_NAME` in the chart): a container the kubelet restarts leads again at once.
        "--identity", "churn-controller-1",
        "--interval", f"{LOOP_S / f:g}",
        # How soon a new replica leads once the old one hands the Lease back. The Lease's duration and renew
        # deadline stay: they bound real reads and writes (the Prometheus timeout, each write's deadline),
        # which are not compressed, and only a holder that never hands it back is waited out for them.
        "--retry-period", f"{LeaderSettings().retry_period_s / f:g}",
        "--metrics-listen", f"127.0.0.1:{metrics_port}",  # last: `Run.hand_over` gives a new replica its own
    ]  # fmt: skip
    apis = [
        _start([*api_command, "--listen", f"127.0.0.1:{port}"], workdir / f"api{f'-{i + 1}' if i else ''}.log")
        for i, port in enumerate(ports)
    ]
    controller = _start(controller_command, workdir / "controller.log")
    play = Play(
        kube,
        catalog,
        registry,
        random.Random(args.seed + 1),
        f,
        startup_rng=random.Random(f"churn-startup-{args.seed}"),
        delay_s=shape.provision_s,
        kind=kind,
        others=others,
        journal=(workdir / "play.log").open("w", buffering=1),
    )
    run: Run | None = None
    try:
        for port, api in zip(ports, apis, strict=True):
            wait_http(f"http://127.0.0.1:{port}/openapi.json", 60, proc=api)
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        run = Run(args, workdir, kube, play, prometheus, urls[0], controller_command,
                  controller, time.time(), metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
                  script_rng=random.Random(f"churn-moment-{args.seed}"), other_apis=tuple(urls[1:]))  # fmt: skip
        scenario(run, bodies, catalog, plan, {n["metadata"]["name"]: n for n in nodes if n["metadata"]["name"] in late})
        figures = settled_figures(kube, catalog)
        quiet = quiet_writes(run)
        # Less a loop: a move's Event is written after the loop that began it decided, so two moves an interval
        # apart by the controller's clock (`Move.at`) may be written a loop's time less than that apart.
        moves = consolidation_moves(kube.all(EVENTS), (CONSOLIDATION.interval_s - LOOP_S) / f)
        families = run.metrics(timeout=10)
        stuck, unmetered = loose_ends(figures["statuses"], families)
        run.sample_loop(families)
    finally:
        for proc in (*apis, run.controller if run else controller):
            proc.terminate()
            proc.wait(10)
        prometheus.close()
        kube.stop()
        if play.journal is not None:
            play.journal.close()
    assert run is not None
    tally = run.tally
    api_log = "".join(path.read_text() for path in sorted(workdir.glob("api*.log")))  # each replica's
    answers = answered(api_log)
    for uid, p in sorted(tally.promises.items(), key=lambda promised: (promised[1].key, promised[1].posted)):
        p.median, p.law = answers.get((p.key, math.ceil(p.eta)), (None, ()))
        p.cause = play.early_cause(uid, p.posted, p.ready) if p.ready else None
        when = f"Ready {(p.ready - p.posted) * f:.0f} s" if p.ready else "never Ready"
        first, bound = play.seen.get(uid, (0.0, 0.0))
        when += f" (pods {(first - p.posted) * f:.0f} s, bound {(bound - p.posted) * f:.0f} s)"
        revised = f" (last {(p.last - p.posted) * f:.0f} s)" if p.last != p.eta else ""
        median = f" (its median {(p.median - p.posted) * f:.0f} s)" if p.median is not None else ""
        served = f"; served by {p.cause[0]} ({p.cause[1]})" if p.cause else ""
        log(f"202 {p.key}: promised {(p.eta - p.posted) * f:.0f} s after its POST{median}{revised}, {when}{served}")
        if p.ready is None or p.ready > p.eta:
            log(f"  late; bound after pods created after its own: {play.overtaken(uid, p.posted) or 'none'}")
    result = {
        "applied_over_intended": round(figures["applied"] / figures["intended"], 3) if figures["intended"] else None,
        "applied_usd_per_hour": round(figures["applied"], 2),
        "intended_usd_per_hour": round(figures["intended"], 2),
        "stale_workloads": figures["stale"],
        "disruptions_outside_consolidation": tally.disruptions,
        "consolidation_disruptions": tally.consolidations,
        **moves,
        **promise_figures(tally.promises.values(), f),
        "promises_revised_without_reason": tally.unexplained,
        "answered_201": tally.answers_201,
        "demoted_201": tally.demotions,
        "pods_201_off_answer": tally.off_answer,
        "served_201_otherwise": tally.served_otherwise,
        "controller_exits": tally.exits,
        "quiet_reconcile_writes": quiet,
        "posts_answered_twice": tally.answered_twice,
        "ready_with_conditions_stuck": stuck,
        "endpoints_without_metrics": unmetered,
        **handover_gaps(run),
        "unloadable_variant_refused": refused,
        "endpoints": args.endpoints,
        "factor": f,
        "seed": args.seed,
        "shape": {k: v for k, v in asdict(shape).items() if v != getattr(Shape(), k)},  # the knobs not today's
    }
    ticks = sorted(run.tick_s) or [0.0]
    seconds, loops = (a + b for a, b in zip(run.loops, run.loops_before, strict=True))
    loop_s = seconds / loops if loops else 0.0
    log(
        f"controller: {loops:.0f} loops of {loop_s:.2f} s on average (real; {loop_s * f:.0f} s uncompressed, "
        f"one every {LOOP_S:g} s uncompressed); the play's step: median {ticks[len(ticks) // 2]:.2f} s"
    )
    result["controller_loop_s"] = round(loop_s, 2)
    not_ready = [k for k, s in figures["statuses"].items() if s.get("phase") != "Ready"]
    log(f"not Ready at the end: {len(not_ready)}; nodes ordered: {play.ordered}")
    for key in not_ready[:8]:
        status = figures["statuses"][key]
        condition: dict[str, Any] = next(iter(status.get("conditions") or ()), {})
        pods = [p for p in play.pods.values() if p.endpoint == key]
        where = [f"{p.name}@{p.node or 'pending'}" for p in pods]
        log(f"  {key}: {status.get('phase')} {condition.get('reason')}: {condition.get('message', '')[:160]}; {where}")
        for pod in [p for p in pods if not p.node][:1]:
            spec = pod.template["spec"]
            log(
                f"    asks {asked_of(pod.obj())} {kai_share(pod.obj()) or ''}, selects {spec.get('nodeSelector')} "
                f"{json.dumps(spec.get('affinity', {}).get('nodeAffinity'))[:300]}"
            )
    print(json.dumps(result))
    return 0


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
SHAPE_HELP = {
    "namespaces": "how many namespaces the endpoints are posted from, in turn",
    "bursts": "how many bursts the --endpoints POSTs come in, the first at minute 0 with a third of them or more",
    "burst-minutes": "when the bursts after the first come",
    "deleted": "shares of the endpoints, one drawn, deleted through the API and posted again 2-5 minutes later "
    "(all, or all but one or two)",
    "class-changes": "Ready endpoints whose GPU class is changed",
    "malformed": f"InferenceEndpoints the API would refuse, applied directly (at most {len(MALFORMED)})",
    "schema-refused": f"InferenceEndpoints the CRD's schema refuses, applied directly (at most {len(MORE_MALFORMED)})",
    "bad-nodes": f"Nodes with a label that cannot be read (at most {len(BAD_LABELS)})",
    "late-nodes": "GPU nodes nobody ordered that join late",
    "late-minutes": "when the late nodes join, and the fleet's late share",
    "late-fleet": "the share of the fleet's nodes, drawn, that join late instead of being there at the start",
    "provision-minutes": "an ordered node's delay until Ready, drawn per order (the ETA's prior is configured to it)",
    "prometheus-outage": "how long Prometheus is unreachable, once, from a minute drawn within 4-18 (0: never)",
    "cordons": "Ready nodes that serve replicas cordoned for maintenance within 6-18, for 2-6 minutes",
    "fleet": f"the fleet's kind: {', '.join(FLEETS)}",
    "fleet-size": "the nodes at the start, a multiple of today's (0: only those tainted for another team)",
    "occupied": "the share of the untainted nodes at the start whose GPUs another team's pods hold",
    "occupied-minutes": "when another team's pods end and give their GPUs back (0: never)",
    "consolidation": "consolidation switched on with this least saving, a share of an endpoint's $/h (0: off)",
    "api-replicas": "egs api replicas the POSTs are spread over, in turn, as a Service spreads them (the chart runs 2)",
    "controller-kills": "times the leading controller is killed (SIGKILL) amid a burst of POSTs, a share of them "
    "answered, and restarted in the same pod after the kubelet's back-off",
    "linger": "minutes played on once settled, before the quiet loops (room for scale-down and consolidation)",
}
"""`Shape`'s knobs on the command line, and what each says in --help."""


def _knob(default: object) -> Callable[[str], object]:
    """The parser of a knob's value, of its default's kind: `N`, `LEAST-MOST` (or `N` for N-N), or shares `A,B`."""

    def parse(text: str) -> object:
        if isinstance(default, tuple) and len(default) == 2:
            low, _, high = text.partition("-")
            kind = float if isinstance(default[0], float) else int
            return kind(low), kind(high or low)
        if isinstance(default, tuple):
            return tuple(float(share) for share in text.split(","))
        if isinstance(default, str):
            return text
        return float(text) if isinstance(default, float) else int(text)

    return parse


def _shown(default: object) -> str:
    """A knob's default as it is typed."""
    if isinstance(default, tuple) and len(default) == 2:
        return f"{default[0]:g}-{default[1]:g}"
    if isinstance(default, tuple):
        return ",".join(f"{share:.3g}" for share in default)
    return default if isinstance(default, str) else f"{default:g}"


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


def scenario(
    run: Run,
    bodies: list[tuple[str, dict[str, Any]]],
    catalog: Catalog,
    plan: Script,
    late_fleet: Mapping[str, dict[str, Any]],
) -> None:
    """Play `plan`; `late_fleet` holds the fleet's nodes that join late, by name."""
    events: list[tuple[float, str, Any]] = [
        *((m, "burst", ids) for m, ids in plan.bursts),
        *((m, "malformed", k) for m, k in plan.malformed + plan.more_malformed),
        *((m, "bad-node", (label, value)) for m, label, value in plan.bad_nodes),
        (plan.bad_samples, "bad-samples", True),
        (plan.bad_samples + 3, "bad-samples", False),
        *((m, "late-node", kind) for m, kind in plan.late_nodes),
        *((m, "fleet-node", name) for m, name in plan.late_fleet),
        (plan.class_changes[0], "class-change", plan.class_changes[1]),
        (plan.deleted[0], "delete", plan.deleted[1]),
        (plan.reposted[0], "repost", plan.reposted[1]),
        (plan.handover, "handover", None),
        (plan.lost_nodes[0], "lose-nodes", plan.lost_nodes[1]),
        (plan.replica_changes[0], "more-replicas", plan.replica_changes[1]),
        (plan.early_deletes[0], "early-delete", plan.early_deletes[1]),
        (plan.model_change, "model-change", None),
        (plan.api_trouble, "api-trouble", None),
        (plan.late_burst[0], "burst", plan.late_burst[1]),
        (plan.unreadable[0], "unreadable", True),
        (sum(plan.unreadable), "unreadable", False),
        *(((plan.prometheus_outage[0], "outage", True), (sum(plan.prometheus_outage), "outage", False))
          if plan.prometheus_outage[1] else ()),
        *(((plan.cordons[0], "cordon", plan.cordons[2]), (sum(plan.cordons[:2]), "cordon", 0))
          if plan.cordons[2] else ()),
        *(((plan.released, "release", None),) if plan.released else ()),
    ]  # fmt: skip
    namespaces = sorted({namespace for namespace, _ in bodies})
    kills: dict[float, list[float]] = {}
    for minute, share in plan.controller_kills:
        kills.setdefault(minute, []).append(share)
    run.tick()
    for i, (minute, what, arg) in enumerate(sorted(events, key=lambda e: (e[0], e[1]))):
        run.until(minute)
        if what == "burst":
            run.burst([(bodies[j], j in plan.twice) for j in arg], kills.pop(minute, []))
            answered = f"{run.tally.answers_201} x 201, {len(run.tally.promises)} x 202 so far"
            log(f"burst of {len(arg)} posted by minute {run.minutes():.1f}: {answered}")
        elif what == "malformed":
            meta = {"name": f"malformed-{arg}", "namespace": namespaces[i % len(namespaces)]}
            run.kube.put(ENDPOINTS, {"apiVersion": "egs.dev/v1alpha1", "kind": "InferenceEndpoint", "metadata": meta,
                                     "spec": (MALFORMED | MORE_MALFORMED)[arg]})  # fmt: skip
        elif what == "bad-node":
            bad = gpu_node(f"h100-badlabel-{i}", catalog.get("H100-80GB"), 8)
            bad["metadata"]["labels"][arg[0]] = arg[1]
            run.kube.put(NODES, bad)
        elif what == "bad-samples":
            models = sorted(run.prometheus.demand)
            broken = zip(((DEMAND, "+Inf"), (KV_CACHE, "NaN"), (WAITING, "many")), models, strict=False)
            run.prometheus.bad = {(query, model): raw for (query, raw), model in broken} if arg else {}
        elif what == "late-node":
            gpu_class, gpus, kw = run.play.kind.unordered[arg]
            run.kube.put(NODES, play_node(catalog, f"{arg}-late-{i}", gpu_class, gpus, run.play.kind.sharing, **kw))
            run.play.arrived[f"{arg}-late-{i}"] = time.time()
            log(f"minute {run.minutes():.1f}: {arg}-late-{i} joined")
        elif what == "fleet-node":
            run.kube.put(NODES, late_fleet[arg])
            run.play.arrived[arg] = time.time()
            log(f"minute {run.minutes():.1f}: {arg} joined")
        elif what == "class-change":
            change_class(run, bodies, arg)
        elif what == "handover":
            run.hand_over()
        elif what == "lose-nodes":
            lose_nodes(run, arg)
        elif what == "more-replicas":
            more_replicas(run, bodies, arg)
        elif what == "model-change":
            change_model(run, bodies)
        elif what == "api-trouble":
            for method, status, times, path in API_TROUBLE:
                run.kube.fail(method, status, times, path)
            log(f"minute {run.minutes():.1f}: the API server fails {len(API_TROUBLE)} kinds of request for a while")
        elif what == "unreadable":
            unreadable_label(run, arg)
        elif what == "cordon":
            cordon(run, arg)
        elif what == "release":
            for other in run.play.others:
                run.kube.delete(PODS, OTHER_TEAM, other["metadata"]["name"])
            run.play.others = []
            log(f"minute {run.minutes():.1f}: another team's pods ended, their GPUs free")
        elif what == "outage":
            run.prometheus.down = arg
            log(f"minute {run.minutes():.1f}: Prometheus " + ("unreachable" if arg else "answers again"))
        elif what == "early-delete":
            delete_waiting(run, bodies, [j for j in range(len(bodies)) if j not in plan.deleted[1]], arg)
        elif what == "delete":
            for j in arg:
                run.delete(bodies[j][0], bodies[j][1]["name"], bodies[j][1]["model"])
        else:
            run.burst([(bodies[j], False) for j in arg], kills.pop(minute, []))
            log(f"minute {run.minutes():.1f}: {len(plan.deleted[1])} deleted, {len(arg)} posted again")
    deadline = plan.last + run.args.settle
    while run.minutes() < deadline:
        run.until(run.minutes() + 1)
        statuses = [s for e in run.kube.all(ENDPOINTS) if isinstance(s := e.get("status"), dict)]
        if statuses and all(s.get("phase") in ("Ready", "Failed") for s in statuses):
            break
    log(f"settled at minute {run.minutes():.1f}")
    if run.args.linger:
        run.until(run.minutes() + run.args.linger)
        log(f"played on until minute {run.minutes():.1f}")


def _draw_ready(run: Run, bodies: list[tuple[str, dict[str, Any]]], count: int) -> list[str]:
    """`count` of the posted endpoints that are Ready and whose spec nobody changed yet, drawn."""
    posted = {f"{namespace}/{body['name']}" for namespace, body in bodies}
    ready = sorted(k for k in run.tally.ready_at if k in posted and k not in run.tally.changed)
    return run.script_rng.sample(ready, min(count, len(ready)))


def _change_spec(run: Run, key: str, spec: dict[str, Any]) -> None:
    """Patch the spec of endpoint `key` through the API server, as a user would; its replicas may move now."""
    from kubernetes import client

    namespace, name = key.split("/", 1)
    client.CustomObjectsApi(run.kube.api_client()).patch_namespaced_custom_object(
        "egs.dev", "v1alpha1", namespace, "inferenceendpoints", name, {"spec": spec}
    )
    run.tally.changed.add(key)


def change_class(run: Run, bodies: list[tuple[str, dict[str, Any]]], count: int) -> None:
    """The GPU class of `count` Ready endpoints, drawn, changed to another class that can be provisioned."""
    for key in _draw_ready(run, bodies, count):
        status = (run.kube.get(ENDPOINTS, *key.split("/", 1)) or {}).get("status") or {}
        other = run.script_rng.choice(sorted(c for c in run.play.kind.provisionable if c != status.get("gpuClass")))
        _change_spec(run, key, {"gpuClasses": [other]})
        log(f"minute {run.minutes():.1f}: {key} moved from {status.get('gpuClass')} to {other}")


def lose_nodes(run: Run, count: int) -> None:
    """`count` Ready nodes that serve replicas, drawn, are lost: deleted (spot capacity reclaimed, a node
    scaled in: their pods go at once) or, as often, NotReady for good (the kubelet stopped posting: their pods
    stop being Ready and are evicted `EVICTION_S` later). Their replicas there may move (no other replica of
    their endpoints), and an endpoint not Ready yet with a pod bound there, or a 201 answered there, may wait
    again (its capacity went: no promise broken)."""
    serving, on, there = _held_on(run)
    for node in run.script_rng.sample(sorted(serving), min(count, len(serving))):
        if run.script_rng.random() < 0.5:
            run.kube.delete(NODES, None, node)
            how = "went away"
        else:
            went = {"type": "Ready", "status": "Unknown", "lastTransitionTime": rfc3339(time.time())}
            run.kube.patch(NODES, None, node, {"status": {"conditions": [went]}})
            run.play.down[node] = time.time()
            how = "went NotReady"
        run.tally.lost_pods |= on[node]
        _capacity_gone(run, there[node])
        log(f"minute {run.minutes():.1f}: node {node} {how}, serving {sorted(serving[node])}")


def _held_on(run: Run) -> tuple[dict[str, set[str]], dict[str, set[str]], dict[str, set[str]]]:
    """Per node: the endpoints with a Ready pod there, the pods bound there, and the endpoints with a pod bound
    there or a 201 answered there."""
    serving: dict[str, set[str]] = {}
    on: dict[str, set[str]] = {}
    there: dict[str, set[str]] = {}
    for pod in run.play.pods.values():
        on.setdefault(pod.node, set()).add(pod.key)
        there.setdefault(pod.node, set()).add(pod.endpoint)
        if pod.ready:
            serving.setdefault(pod.node, set()).add(pod.endpoint)
    for e in run.kube.all(ENDPOINTS):
        key = f"{e['metadata']['namespace']}/{e['metadata']['name']}"
        if key in run.tally.answered_201:
            for answered in _answered_nodes(_answer(e)):
                there.setdefault(answered, set()).add(key)
    return serving, on, there


def _capacity_gone(run: Run, endpoints: set[str]) -> None:
    """`endpoints` had capacity on a node that went or was cordoned: one not Ready yet may wait again (a 201
    demoted, a 202 not held to a promise made on that capacity), no promise broken."""
    run.tally.lost_capacity |= endpoints
    for key in endpoints:
        run.tally.drop_waiting(key, time.time())


UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
"""The taint the node lifecycle controller puts on a cordoned node."""


def cordon(run: Run, count: int) -> None:
    """`count` Ready nodes that serve replicas, drawn, cordoned for maintenance (`kubectl cordon`, or a drain that
    waits on the endpoints' PodDisruptionBudgets: a budget of `replicas.min` lets no pod of an endpoint at its
    minimum go), or with `count` 0 the cordoned ones uncordoned. Nothing of them went: their replicas stay, and
    nothing new is bound there meanwhile; an endpoint with a pod there not Ready yet, or a 201 answered there,
    may wait again (its capacity is cordoned: no promise broken)."""
    if not count:
        for node, taints in run.cordoned.items():
            if run.kube.get(NODES, None, node):  # unless it was lost meanwhile (`lose_nodes`)
                run.kube.patch(NODES, None, node, {"spec": {"unschedulable": False, "taints": taints}})
                log(f"minute {run.minutes():.1f}: node {node} uncordoned")
        run.cordoned.clear()
        return
    serving, _, there = _held_on(run)
    rng = random.Random(f"churn-cordon-{run.args.seed}")
    up = sorted(serving.keys() - run.play.down.keys())  # a node gone NotReady (`lose_nodes`) is no one's to cordon
    for node in rng.sample(up, min(count, len(up))):
        taints = list(((run.kube.get(NODES, None, node) or {}).get("spec") or {}).get("taints") or ())
        run.cordoned[node] = taints
        cordoned = [*taints, {**UNSCHEDULABLE_TAINT, "timeAdded": rfc3339(time.time())}]
        run.kube.patch(NODES, None, node, {"spec": {"unschedulable": True, "taints": cordoned}})
        _capacity_gone(run, {key for key in there[node] if key not in run.tally.ready_at})
        log(f"minute {run.minutes():.1f}: node {node} cordoned, serving {sorted(serving[node])}")


def unreadable_label(run: Run, broken: bool) -> None:
    """A label of one NVIDIA node that serves Ready replicas, drawn, made unreadable (`BAD_LABELS`), or mended
    again: nothing of it went, so none of its replicas may move."""
    if not broken:
        for node, (label, value) in run.relabelled.items():
            if run.kube.get(NODES, None, node):  # unless it was lost meanwhile (`lose_nodes`)
                run.kube.patch(NODES, None, node, {"metadata": {"labels": {label: value}}})
                log(f"minute {run.minutes():.1f}: the labels of node {node} mended")
        run.relabelled.clear()
        return
    rng = random.Random(f"churn-unreadable-{run.args.seed}")
    serving = {p.node for p in run.play.pods.values() if p.ready}
    nvidia = sorted(n for n in serving if "nvidia.com/gpu.count" in run.play.labels.get(n, {}))
    for node in rng.sample(nvidia, min(1, len(nvidia))):
        label, value = rng.choice(BAD_LABELS)
        run.relabelled[node] = (label, run.play.labels[node].get(label))
        run.kube.patch(NODES, None, node, {"metadata": {"labels": {label: value}}})
        log(f"minute {run.minutes():.1f}: node {node} labelled {label}={value!r}, serving "
            f"{sorted({p.endpoint for p in run.play.pods.values() if p.node == node})}")  # fmt: skip


def delete_waiting(run: Run, bodies: list[tuple[str, dict[str, Any]]], among: list[int], count: int) -> None:
    """`count` endpoints of `among`, drawn of those posted and not Ready yet, deleted for good while they wait."""
    waiting = [
        j
        for j in among
        if f"{bodies[j][0]}/{bodies[j][1]['name']}" in run.tally.posted.keys() - run.tally.ready_at.keys()
    ]
    for j in run.script_rng.sample(waiting, min(count, len(waiting))):
        namespace, body = bodies[j]
        run.delete(namespace, body["name"], body["model"])
        log(f"minute {run.minutes():.1f}: {namespace}/{body['name']} deleted while it waits")


def change_model(run: Run, bodies: list[tuple[str, dict[str, Any]]]) -> None:
    """One Ready endpoint, drawn, made to serve another model (its demand moves with it)."""
    for key in _draw_ready(run, bodies, 1):
        was = ((run.kube.get(ENDPOINTS, *key.split("/", 1)) or {}).get("spec") or {}).get("model", "")
        model = run.script_rng.choice(sorted(m for m in run.prometheus.demand if m != was))
        _change_spec(run, key, {"model": model})
        run.prometheus.demand[was] = max(0.0, run.prometheus.demand[was] - DEMAND_RPS)
        run.prometheus.demand[model] += DEMAND_RPS
        log(f"minute {run.minutes():.1f}: {key} now serves {model} (was {was})")


def more_replicas(run: Run, bodies: list[tuple[str, dict[str, Any]]], count: int) -> None:
    """The minimum replicas of `count` Ready endpoints, drawn, raised by one (the maximum with it if need be)."""
    for key in _draw_ready(run, bodies, count):
        spec = (run.kube.get(ENDPOINTS, *key.split("/", 1)) or {}).get("spec") or {}
        low, high = int(spec["replicas"]["min"]) + 1, int(spec["replicas"]["max"])
        _change_spec(run, key, {"replicas": {"min": low, "max": max(low, high)}})
        log(f"minute {run.minutes():.1f}: {key} wants at least {low} replicas")


STUCK = {("Ready", "False"), ("Degraded", "True"), (SCALING_ACTIVE, "False"), (PROMISE_KEPT, "False")}
"""A condition that says something is wrong, which a Ready endpoint, once settled, should no longer show."""


def loose_ends(statuses: Mapping[str, Mapping[str, Any]], families: Iterable[Metric]) -> tuple[int, int]:
    """Once settled: the Ready endpoints whose status still shows a condition of `STUCK`, and the endpoints
    with no `egs_endpoint_ready` series in the controller's /metrics (`families`)."""
    stuck = 0
    for key, status in sorted(statuses.items()):
        wrong = [c for c in status.get("conditions") or () if (c.get("type"), c.get("status")) in STUCK]
        if status.get("phase") == "Ready" and wrong:
            stuck += 1
            log(f"Ready with a condition stuck: {key}: {wrong}")
    metered: set[str] = set()
    for family in families:
        if family.name == "egs_endpoint_ready":
            metered |= {f"{x.labels['namespace']}/{x.labels['endpoint']}" for x in family.samples}
    for key in sorted(statuses.keys() - metered):
        log(f"no egs_endpoint_ready series: {key}")
    return stuck, len(statuses.keys() - metered)


def consolidation_moves(events: Iterable[Mapping[str, Any]], interval_s: float) -> dict[str, int]:
    """Moves consolidation began (its `Consolidating` Events, a series by its count) and the most of them begun
    within `interval_s` (real: the budget's interval less a loop) by each Event's first time: at most the
    configured `maxDisruptionsPerInterval` (`CONSOLIDATION`) when it keeps its budget."""
    mine = [e for e in events if e.get("reason") == "Consolidating"]
    starts = sorted(parse_time(str(e["eventTime"])) for e in mine)
    for e in sorted(mine, key=lambda e: str(e["eventTime"])):
        regarding, series = e.get("regarding") or {}, e.get("series") or {}
        log(f"consolidating {regarding.get('namespace')}/{regarding.get('name')} at {e['eventTime']} "
            f"({series.get('count', 1)}, last {series.get('lastObservedTime', '-')}): {e.get('note')}")  # fmt: skip
    return {
        "consolidation_moves": sum(int((e.get("series") or {}).get("count", 1)) for e in mine),
        "consolidation_moves_in_one_interval": max(
            (sum(1 for t in starts if start <= t < start + interval_s) for start in starts), default=0
        ),
    }


def quiet_writes(run: Run) -> int:
    """Writes to the API server over three controller loops with nothing changing (Leases, Events aside)."""
    run.until(run.minutes() + LOOP_S / MINUTE * 2)  # a loop in flight finishes
    before = len(run.kube.requests())
    run.until(run.minutes() + 3 * LOOP_S / MINUTE)
    writes = [
        r
        for r in run.kube.requests()[before:]
        if r.method in ("POST", "PUT", "PATCH", "DELETE")
        and not any(p in r.url.path for p in ("/leases/", "/leases", "/events", "reviews"))
    ]
    for r in writes[:10]:
        log(f"quiet loop wrote: {r.method} {r.url.path}")
    return len(writes)


if __name__ == "__main__":
    sys.exit(main())
