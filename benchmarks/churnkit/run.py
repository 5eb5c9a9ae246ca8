"""Churn's run: the `egs api` and `egs controller` processes and the play stepped between them
(benchmarks/churn.py).

`Run` posts, steps the play, hands the controller over to a new replica, kills and restarts it, and
tallies what the statuses said (`Tally`); `handover_gaps` and `quiet_writes` measure the run itself.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import random
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.decide.status import PROMISE_KEPT
from autoscaler.kubetime import parse_time
from benchmarks.churnkit.figures import Moved, Promised, Tally
from benchmarks.churnkit.kinds import ENDPOINTS, EVENTS, NODES, answer_of, answered_nodes, log
from benchmarks.churnkit.play import Play
from benchmarks.churnkit.prometheus import PrometheusStandIn
from benchmarks.churnkit.rest import in_flight
from benchmarks.churnkit.scenario import MINUTE
from localplay.demo_cluster import registry_with_loads
from localplay.kube_standin import KubeCluster
from localplay.localstack import StackError, answers, free_port
from scheduler.catalog import Catalog
from scheduler.registry import Registry

REPO = Path(__file__).resolve().parents[2]


TOKEN = "t-churn"
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
DEMAND_RPS = 0.05
"""Requests per second each endpoint adds to its model's demand: far below a replica's throughput."""
LOOP = "egs_autoscaler_reconcile_duration_seconds"


def compressed_registry(path: Path, factor: float, catalog: Catalog) -> Registry:
    """examples/models.yaml with every variant's load time divided by `factor`, written to `path`."""
    loads = registry_with_loads(path, lambda variant: round(variant.load_seconds / factor, 3), catalog)
    return Registry.load(loads, catalog)


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
        moved = {key for key, _ in tally.moves}  # a move's pods leave the answer's nodes, as consolidation may
        fleet: int | None = None  # the Nodes, counted once a poll where it sees a move begun
        current: dict[str, str] = {}  # endpoint -> the uid of its incarnation now
        for e in self.kube.all(ENDPOINTS):
            key, uid = f"{e['metadata']['namespace']}/{e['metadata']['name']}", str(e["metadata"].get("uid"))
            current[key] = uid
            if tally.incarnation.get(key, uid) != uid:
                continue  # a read of an incarnation deleted since: its status is not the repost's
            status: dict[str, Any] = e["status"] if isinstance(e.get("status"), dict) else {}
            if (move := status.get("consolidation")) and (key, str(move["at"])) not in tally.moves:
                fleet = len(self.kube.all(NODES)) if fleet is None else fleet
                off = frozenset(str(n) for n in move.get("nodes") or ())
                tally.moves[key, str(move["at"])] = Moved(parse_time(str(move["at"])), off, fleet, uid)
                moved.add(key)
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
            if key in tally.answered_201 and key not in excused and key not in moved:
                answered[key] = e
        for pod in self.play.pods.values():
            if pod.node and pod.endpoint in answered and pod.key not in tally.bound:
                tally.bound.add(pod.key)
                answer = answer_of(answered[pod.endpoint])
                nodes = answered_nodes(answer)
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
                tally.ready_uids[pod.key] = pod.uid
        for endpoint, before in tally.ready_pods.items():
            # A pod of an incarnation deleted since served no endpoint that is still there: one the API created and
            # deleted again, failing the POST it answered 503 (churn seed 3011: the client's retry made another).
            gone = {
                k
                for k in before - ready.get(endpoint, set()) - tally.lost_pods
                if tally.ready_uids.get(k, "") in ("", current.get(endpoint))
            }
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
        answer = answer_of(endpoint)
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
        answered = answer_of(self.kube.get(ENDPOINTS, *key.split("/", 1)) or {})
        log(f"  answered {answered}; bound on its nodes: {self._bound_on(answered_nodes(answered))}")

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

    def until_rest(self, bound_minutes: float, interval_s: float) -> dict[str, Any]:
        """Play on until nothing is in flight (`rest.in_flight`, a move's budget `interval_s` real) over two
        whole loops of one controller process, or `bound_minutes` (uncompressed) have passed: the settled
        figures are read then. Returns the minutes it took (`rest_minutes`), whether the bound was hit
        (`rest_bound_hit`) and what was still in flight if so (`in_flight_at_read`)."""
        start = self.minutes()
        calm_from: tuple[int, float] | None = None  # (the controller's pid, its loops) when all came to rest
        said: list[str] = []
        while True:
            flying = self.in_flight(interval_s)
            if flying and flying != said:
                said = flying
                log(f"minute {self.minutes():.1f}: in flight: {', '.join(flying[:4])}{' ...' * (len(flying) > 4)}")
            loops = None if flying else self.loops_run()
            if loops is None or calm_from is None or calm_from[0] != loops[0]:
                calm_from = loops
            elif loops[1] >= calm_from[1] + 3:  # the loop in flight then, and two whole ones after it
                break
            if self.minutes() >= start + bound_minutes:
                flying = flying or ["fewer than two whole controller loops at rest"]
                log(f"minute {self.minutes():.1f}: not at rest after {bound_minutes:g} minutes: {flying[:8]}")
                return {"rest_minutes": round(self.minutes() - start, 1), "rest_bound_hit": True,
                        "in_flight_at_read": flying}  # fmt: skip
            self.tick()
            time.sleep(self.args.tick_s)
        log(f"minute {self.minutes():.1f}: at rest, {self.minutes() - start:.1f} minutes after the play's end")
        return {"rest_minutes": round(self.minutes() - start, 1), "rest_bound_hit": False, "in_flight_at_read": []}

    def in_flight(self, interval_s: float) -> list[str]:
        """What is under way in the cluster and the play now (`rest.in_flight`)."""
        now = time.time()
        pods = [(p.key, bool(p.node), p.ready) for p in self.play.pods.values()]
        coming = [name for ready_at, _, name, _ in self.play.coming if ready_at > now]
        endpoints, events = self.kube.all(ENDPOINTS), self.kube.all(EVENTS)
        return in_flight(endpoints, events, pods, coming, now, interval_s, restarting=self.restart_at is not None)

    def loops_run(self) -> tuple[int, float] | None:
        """The leading controller process's id and the loops it ran so far (None while its /metrics does not
        answer)."""
        families = self.metrics()
        if not families:
            return None
        self.sample_loop(families)  # a stopped process's loops were folded away: these are this one's
        return self.controller.pid, self.loops[1]

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
    """Each thread of `pid` at `nice` (Linux keeps a niceness per thread, and `setpriority` sets one). A thread
    starts at the niceness of the thread that started it, so one that a thread not yet reniced starts while a
    pass runs is missed by it: pass again until a pass finds every thread at `nice` (threads that reniced
    threads start then are at `nice` already, so a process that keeps starting threads does not hold it)."""
    moved = True
    while moved:
        moved = False
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(ProcessLookupError):  # a thread that ended since it was listed
                if os.getpriority(os.PRIO_PROCESS, int(task.name)) != nice:
                    os.setpriority(os.PRIO_PROCESS, int(task.name), nice)
                    moved = True


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
