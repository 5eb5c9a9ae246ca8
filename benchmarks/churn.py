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
- scheduler: each Deployment's pods (`<name>-<template hash>-<i>`: a changed template rolled as its
  strategy says, `localplay.rollout`; scaled down, the pods not bound go first, then those not Ready, as
  a ReplicaSet's do) are bound, first in first out as
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
  Deployment's `readyReplicas` say so (`localplay.demo_cluster.pod_status`); a bound pod its ReplicaSet
  removes stays Terminating (`deletionTimestamp` set, its GPUs held) through its grace period
  (`terminationGracePeriodSeconds`, 30 s unless its spec says), its replacement made at once under another name;
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
cluster settles (until every endpoint is Ready or Failed, at most `--settle` minutes), plays on `--linger`
minutes if asked, then until it rests: nothing in flight (`churnkit.rest.in_flight`: every endpoint Ready or
Failed with its spec observed, none `Consolidating` or changing shape (`status.shapeChange`), no move begun
within consolidation's budget interval (so none could begin yet), no pod unbound or not Ready, no ordered node
coming, the controller not restarting) over
two whole loops of one controller process, at most `--rest` minutes; the settled figures are read then, so a
move, a class change, a node's join or a kill late in the play is read once done, not while under way; and
three controller loops run with nothing changing. Before the run, a registry holding a variant vLLM cannot load (int8
without a pre-quantised checkpoint) is given to `egs controller --once`: it must refuse it when it reads
it, naming the file and the field.

The last line of stdout is one JSON object:

- `applied_over_intended`: $/h of the replicas the workloads hold (each Deployment's replicas at its
  recorded shape, `autoscaler.decide.placement.serving_cost`) over $/h the statuses intend
  (`costPerHour`), once settled (target <= 1.02);
- `stale_workloads`: workloads whose endpoint is gone, or beyond those (of the status's shape first) that
  hold its desired replicas (0);
- `disruptions_outside_consolidation`: Ready replicas of endpoints whose spec did not change that went
  away (of the incarnation still there: not one `egs api` deleted again, failing its POST), unless an Event
  on the endpoint names consolidation (0); `consolidation_disruptions` those;
  `consolidation_moves` the moves it began (`Consolidating` Events), `consolidation_moves_in_one_interval`
  the most begun within one budget interval, `consolidation_nodes_in_one_interval` the most nodes moves took
  replicas off within one (by the statuses' `consolidation`: `at`, `nodes`), and `consolidation_moves_over_budget`
  the moves that took that beyond its `maxNodesPerInterval` (10% of the Nodes then, rounded up) (0),
  `consolidation_repeat_moves` the moves of an endpoint begun within `consolidateAfter` (or the interval,
  where longer) of its move before (0; `--consolidation`);
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
  class: a figure, not a target), but for those of an endpoint churn saw consolidation move;
  `served_201_otherwise`: 201s first Ready in a variant and GPU class none
  of their replicas was answered in, their spec unchanged (a figure: logged with their conditions);
- `rest_minutes`: minutes played after the settle and `--linger` until at rest (uncompressed), and
  `rest_bound_hit` whether `--rest` ran out first, `in_flight_at_read` then what was still under way (the
  settled figures and the quiet window read with it: a figure to judge them by; [] at rest);
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
(never by default); `--consolidation` switches consolidation on with that least saving (its budget as
configured by default: 10% of the nodes disrupted per 600 s, compressed), and `--linger` plays on for those
minutes once settled (before the rest and the quiet loops), so that it and the scale-down window may act.
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

This module is the command (`main`, the knobs' parsing); the rest lives in benchmarks/churnkit/, a module a
job: scenario.py (the fleet and the scenario drawn: `FLEETS`, `Shape`, `Script`, `script`), events.py (the
scenario's events played on a run: `scenario`, `lose_nodes`, `cordon`, ...), play.py (scheduler, kubelet and
node autoscaler: `Play`, `Pod`), prometheus.py (the Prometheus stand-in), run.py (the processes and the run:
`Run`, `handover_gaps`, `quiet_writes`), rest.py (what is in flight before the settled read: `in_flight`),
figures.py (the figures above: `promise_figures`,
`least_mean_slack`, `settled_figures`, ...) and kinds.py (what they share: the kinds' paths, `log`, a 201's
answer).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks/ and localplay/, run as a script

from autoscaler.adapters.api_limits import CAPACITY_TTL_S
from autoscaler.decide import Settings
from autoscaler.leader import LeaderSettings
from autoscaler.pods import kai_share
from autoscaler.pods import requests as asked_of
from benchmarks.churnkit.events import scenario
from benchmarks.churnkit.figures import (
    answered,
    consolidation_budget,
    consolidation_moves,
    consolidation_repeats,
    loose_ends,
    promise_figures,
    settled_figures,
)
from benchmarks.churnkit.kinds import EVENTS, NODES, PODS, log
from benchmarks.churnkit.play import Play
from benchmarks.churnkit.prometheus import PrometheusStandIn
from benchmarks.churnkit.run import (
    LOOP_S,
    TOKEN,
    Run,
    _start,
    compressed_registry,
    handover_gaps,
    quiet_writes,
    refuses_unloadable,
    replica_kubeconfig,
)
from benchmarks.churnkit.scenario import (
    BAD_LABELS,
    FLEETS,
    LATE,
    MALFORMED,
    MORE_MALFORMED,
    PRICES,
    Shape,
    endpoint_bodies,
    fleet,
    occupying,
    script,
    teams,
)
from localplay.kube_standin import KubeCluster
from localplay.localstack import free_port, wait_http
from scheduler.catalog import Catalog

CONSOLIDATION = Settings().consolidation
"""Consolidation's budget (`--consolidation` sets only its least saving): 10% of the nodes disrupted per 600 s, an
endpoint moved again after 3,600 s at the soonest."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=49, help="endpoints POSTed (default %(default)s)")
    parser.add_argument("--factor", type=float, default=20.0, help="time compression (default %(default)s)")
    parser.add_argument(
        "--settle", type=float, default=30.0, help="uncompressed minutes to settle at most (default %(default)s)"
    )
    parser.add_argument(
        "--rest",
        type=float,
        default=30.0,
        help="uncompressed minutes, after the settle and --linger, to play on at most until nothing is in flight "
        "(a consolidation move, its budget's interval, a rollout, a node ordered, a restart) over two whole "
        "controller loops, before the settled figures and the quiet loops are read (default %(default)s)",
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
                              "interval": CONSOLIDATION.interval_s / f,
                              "consolidateAfter": CONSOLIDATION.consolidate_after_s / f}}
            if shape.consolidation else {}),
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
        log("at the play's end (logged only, not the settled read):")
        early = settled_figures(kube, catalog)  # what the read would have been at the play's end
        log(f"at the play's end: applied {early['applied']:.2f} $/h over intended {early['intended']:.2f}, "
            f"{early['stale']} stale (read once at rest below)")  # fmt: skip
        rest = run.until_rest(args.rest, CONSOLIDATION.interval_s / f)
        figures = settled_figures(kube, catalog)
        quiet = quiet_writes(run)
        # Less a loop: a move's Event is written after the loop that began it decided, so two moves an interval
        # apart by the controller's clock (`Move.at`) may be written a loop's time less than that apart.
        moves = consolidation_moves(kube.all(EVENTS), (CONSOLIDATION.interval_s - LOOP_S) / f)
        moves |= consolidation_budget(
            run.tally.moves.values(), CONSOLIDATION.interval_s / f, CONSOLIDATION.nodes_allowed
        )
        moves |= consolidation_repeats(run.tally.moves, CONSOLIDATION.settled_s / f)
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
        **rest,
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


if __name__ == "__main__":
    sys.exit(main())
